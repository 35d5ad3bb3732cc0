"""Bank names customers gave that the bank directory does not know: a count per name and the first
and last day it was seen (bot/handoff/unknown_banks.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 10:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "unknown_banks",
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.Date(), nullable=False),
        sa.Column("last_seen", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_unknown_banks")),
    )
    op.create_index("ix_unknown_banks_count", "unknown_banks", ["count"])


def downgrade() -> None:
    op.drop_table("unknown_banks")

"""Conversation references: where a Slack / Teams conversation is reached, from verified requests only.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "conversation_refs",
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("reference", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_conversation_refs")),
    )


def downgrade() -> None:
    op.drop_table("conversation_refs")

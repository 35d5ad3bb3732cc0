"""Slack deliveries claimed in the database (retries answered once, across replicas and restarts);
outage reports marked verified / anonymous, with the reporting client's pseudonym.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "seen_events",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=True),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_at", _utc(), nullable=False),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.CheckConstraint("state IN ('claimed', 'done')", name=op.f("ck_seen_events_state")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_seen_events")),
    )
    op.create_index(op.f("ix_seen_events_expires_at"), "seen_events", ["expires_at"])
    with op.batch_alter_table("bank_signals") as batch:
        batch.add_column(sa.Column("verified", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("client_key", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bank_signals") as batch:
        batch.drop_column("client_key")
        batch.drop_column("verified")
    op.drop_table("seen_events")

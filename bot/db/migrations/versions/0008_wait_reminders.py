"""Reminders for customers told to wait a day: the bot checks back on their channel when due.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09 10:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "wait_reminders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("due_at", _utc(), nullable=False),
        sa.Column("sent_at", _utc(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wait_reminders")),
    )
    op.create_index(op.f("ix_wait_reminders_conversation_id"), "wait_reminders", ["conversation_id"])
    op.create_index(op.f("ix_wait_reminders_due_at"), "wait_reminders", ["due_at"])
    op.create_index(
        "uq_wait_reminders_pending",
        "wait_reminders",
        ["conversation_id"],
        unique=True,
        sqlite_where=sa.text("sent_at IS NULL"),
        postgresql_where=sa.text("sent_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("wait_reminders")

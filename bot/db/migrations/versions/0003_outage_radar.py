"""Outage radar: bank signals (reports and probes), suspected outages, back-online notices.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 17:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bank_signals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bank", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("conversation_id", sa.String(255), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.CheckConstraint("kind IN ('report', 'probe')", name=op.f("ck_bank_signals_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_signals")),
    )
    op.create_index("ix_bank_signals_bank_created_at", "bank_signals", ["bank", "created_at"])
    op.create_table(
        "outages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bank", sa.String(200), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("detected_at", _utc(), nullable=False),
        sa.Column("cleared_at", _utc(), nullable=True),
        sa.Column("report_count", sa.Integer(), nullable=False),
        sa.Column("probe_failures", sa.Integer(), nullable=False),
        sa.Column("last_signal_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outages")),
    )
    op.create_index(op.f("ix_outages_bank"), "outages", ["bank"])
    op.create_index(
        "uq_outages_open_bank",
        "outages",
        ["bank"],
        unique=True,
        sqlite_where=sa.text("cleared_at IS NULL"),
        postgresql_where=sa.text("cleared_at IS NULL"),
    )
    op.create_table(
        "outage_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("bank", sa.String(200), nullable=False),
        sa.Column("probe_url", sa.String(2000), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("next_check_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("sent_at", _utc(), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.CheckConstraint("outcome IS NULL OR outcome IN ('bank_back', 'expired')", name=op.f("ck_outage_notices_outcome")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outage_notices")),
    )
    op.create_index(op.f("ix_outage_notices_conversation_id"), "outage_notices", ["conversation_id"])
    op.create_index(op.f("ix_outage_notices_next_check_at"), "outage_notices", ["next_check_at"])
    op.create_index(
        "uq_outage_notices_pending",
        "outage_notices",
        ["conversation_id", "bank"],
        unique=True,
        sqlite_where=sa.text("sent_at IS NULL"),
        postgresql_where=sa.text("sent_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("outage_notices")
    op.drop_table("outages")
    op.drop_table("bank_signals")

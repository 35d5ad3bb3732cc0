"""Initial hand-off schema: agents, sessions, tickets, messages, events, outcomes.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00

Written by hand (and frozen): it must not import the models, which describe the latest schema.
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OPEN_TICKET_CONDITION = "status IN ('waiting', 'assigned')"


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("last_seen_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("username", name=op.f("uq_agents_username")),
        sa.CheckConstraint("username = lower(username)", name=op.f("ck_agents_username_lower")),
    )

    op.create_table(
        "agent_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_agent_sessions_token_hash")),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_agent_sessions_agent_id_agents"), ondelete="CASCADE"),
    )
    op.create_index(op.f("ix_agent_sessions_agent_id"), "agent_sessions", ["agent_id"])

    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("diagnosis", sa.Text(), nullable=True),
        sa.Column("bank", sa.Text(), nullable=True),
        sa.Column("error_code", sa.Text(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("check_results", sa.JSON(), nullable=False),
        sa.Column("steps_tried", sa.JSON(), nullable=False),
        sa.Column("transcript", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("assigned_agent_id", sa.Integer(), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.Column("closed_by", sa.String(20), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("assigned_at", _utc(), nullable=True),
        sa.Column("returned_at", _utc(), nullable=True),
        sa.Column("closed_at", _utc(), nullable=True),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.ForeignKeyConstraint(["assigned_agent_id"], ["agents.id"], name=op.f("fk_tickets_assigned_agent_id_agents")),
        sa.CheckConstraint("status IN ('waiting', 'assigned', 'returned_to_bot', 'closed')", name=op.f("ck_tickets_status")),
        sa.CheckConstraint("closed_by IS NULL OR closed_by IN ('agent', 'user', 'system')", name=op.f("ck_tickets_closed_by")),
    )
    op.create_index(op.f("ix_tickets_conversation_id"), "tickets", ["conversation_id"])
    op.create_index(op.f("ix_tickets_status_created_at"), "tickets", ["status", "created_at"])
    # At most one open (waiting or assigned) ticket per conversation.
    op.create_index(
        op.f("uq_tickets_open_conversation"),
        "tickets",
        ["conversation_id"],
        unique=True,
        sqlite_where=sa.text(OPEN_TICKET_CONDITION),
        postgresql_where=sa.text(OPEN_TICKET_CONDITION),
    )

    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("sender", sa.String(20), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_messages_ticket_id_tickets"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_messages_agent_id_agents")),
        sa.CheckConstraint("sender IN ('user', 'agent', 'bot', 'system')", name=op.f("ck_messages_sender")),
    )
    op.create_index(op.f("ix_messages_ticket_id"), "messages", ["ticket_id"])

    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("conversation_id", sa.String(255), nullable=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(100), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.CheckConstraint(
            "type IN ('ticket_created', 'ticket_assigned', 'message_created', 'ticket_returned', "
            "'ticket_closed', 'outcome_recorded')",
            name=op.f("ck_events_type"),
        ),
    )

    op.create_table(
        "outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("resolved_by", sa.String(20), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcomes")),
        sa.CheckConstraint("resolved_by IN ('bot', 'human', 'user_cancelled')", name=op.f("ck_outcomes_resolved_by")),
    )
    op.create_index(op.f("ix_outcomes_conversation_id"), "outcomes", ["conversation_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_outcomes_conversation_id"), table_name="outcomes")
    op.drop_table("outcomes")
    op.drop_table("events")
    op.drop_index(op.f("ix_messages_ticket_id"), table_name="messages")
    op.drop_table("messages")
    op.drop_index(op.f("uq_tickets_open_conversation"), table_name="tickets")
    op.drop_index(op.f("ix_tickets_status_created_at"), table_name="tickets")
    op.drop_index(op.f("ix_tickets_conversation_id"), table_name="tickets")
    op.drop_table("tickets")
    op.drop_index(op.f("ix_agent_sessions_agent_id"), table_name="agent_sessions")
    op.drop_table("agent_sessions")
    op.drop_table("agents")

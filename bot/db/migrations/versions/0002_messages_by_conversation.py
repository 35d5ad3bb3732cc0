"""Index messages by conversation, for channels that poll for a specialist's messages (REST).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 16:40:00
"""

from typing import Sequence, Union

from alembic import op

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_messages_conversation_id", "messages", ["conversation_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_messages_conversation_id", table_name="messages")

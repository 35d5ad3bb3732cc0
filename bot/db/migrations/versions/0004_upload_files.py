"""Manual upload assistant: converted files waiting for their one download (any replica serves them).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "upload_files",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("conversation_id", sa.String(255), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("downloaded_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_upload_files")),
    )
    op.create_index(op.f("ix_upload_files_expires_at"), "upload_files", ["expires_at"])


def downgrade() -> None:
    op.drop_table("upload_files")

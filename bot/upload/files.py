"""Converted upload files kept for download, in the product database (table ``upload_files``).

A store on ``bot.db.engine.Database``, shared by every server replica: a file is behind a random
token (256 bits), of which only the sha256 is stored; it can be downloaded once (``downloaded_at`` is
set and the bytes are dropped in the same transaction; the guarded UPDATE makes two simultaneous
downloads give one file and one miss) and for ``ttl`` seconds at most; expired rows are deleted
whenever a new file is stored. The uploaded file itself is never stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Optional, Tuple

from sqlalchemy import delete, func, select, update

from bot.db.engine import Database
from bot.db.models import UploadFile

__all__ = ["Download", "UploadFiles"]

DEFAULT_TTL = 3600

Download = Tuple[str, bytes, str]  # filename, content, content type


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class UploadFiles:
    """Converted files in the product database (blocking calls: run them in a thread from async code)."""

    def __init__(self, db: Database, ttl: float = DEFAULT_TTL):
        self.db = db
        self.ttl = ttl

    def purge(self) -> int:
        """Deletes expired rows; returns how many."""
        with self.db.writing() as s:
            return s.execute(delete(UploadFile).where(UploadFile.expires_at <= self.db.now())).rowcount or 0

    def put(self, filename: str, content: bytes, content_type: str = "text/csv", sender: Optional[str] = None) -> str:
        """Keeps a file (filed under the conversation ``sender``, if any); returns its download token."""
        token = secrets.token_urlsafe(32)
        now = self.db.now()
        with self.db.writing() as s:
            s.execute(delete(UploadFile).where(UploadFile.expires_at <= now))  # opportunistic clean-up
            s.add(
                UploadFile(
                    token_hash=_token_hash(token),
                    filename=filename[:255],
                    content=content,
                    content_type=(content_type or "text/csv")[:100],
                    conversation_id=(sender or None),
                    created_at=now,
                    expires_at=now + dt.timedelta(seconds=self.ttl),
                    downloaded_at=None,
                )
            )
        return token

    def take(self, token: str) -> Optional[Download]:
        """The file behind ``token`` (then marked downloaded), or None when unknown, used or expired."""
        digest = _token_hash(token)
        now = self.db.now()
        with self.db.writing() as s:
            row = s.execute(
                select(UploadFile.filename, UploadFile.content, UploadFile.content_type).where(
                    UploadFile.token_hash == digest, UploadFile.downloaded_at.is_(None), UploadFile.expires_at > now
                )
            ).first()
            if row is None:
                return None
            claimed = s.execute(
                update(UploadFile)
                .where(UploadFile.token_hash == digest, UploadFile.downloaded_at.is_(None))
                .values(downloaded_at=now, content=b"")
            ).rowcount
            if claimed != 1:
                return None  # someone else downloaded it a moment ago
            return row.filename, bytes(row.content), row.content_type

    def __len__(self) -> int:
        """Files that can still be downloaded."""
        with self.db.reading() as s:
            return s.execute(
                select(func.count())
                .select_from(UploadFile)
                .where(UploadFile.downloaded_at.is_(None), UploadFile.expires_at > self.db.now())
            ).scalar_one()

"""The one flow for a file shared in a chat (a Slack file share, a Teams attachment): the manual
upload assistant checks it and the answer goes back into the conversation.

:meth:`FileShare.handle`, for a message carrying files or for the answer to a date-order question:

1. While a specialist holds (or is about to take) the conversation nothing is checked: ``handle``
   returns False and the channel passes the message on as usual (a message with files and no text
   as ``file_replies.shared_note``, "(shared a file: ...)", so the specialist sees that a file came).
2. Each file, up to ``file_replies.MAX_FILES_PER_MESSAGE`` (a note says how many were left out): a
   declared size over the cap is refused before anything is fetched; a file with no URL we may fetch
   (a link to another site, a deleted file) gets ``NOT_A_FILE``; otherwise the channel downloads it
   (``FileChat.download``: its own credentials, through the outbound policy, capped while streaming)
   and ``file_replies.check_file`` runs the assistant on it.
3. The report is the answer, with the converted CSV(s) attached the channel's way
   (``FileChat.send_report``). When the dates could be either order, the answer is a question with
   two buttons (``/upload_date_order MDY`` / ``DMY``) instead, and the file waits in memory
   (``file_replies.PendingFiles``, 15 minutes, with the region it was checked for); the chosen order
   re-checks the kept bytes (no second download), and an answer after the file expired says so.
4. An unexpected failure while checking one file (or re-checking it) is logged and answered with
   ``UNREACHABLE``; the other files of the message are still checked.

What differs per channel (how a file is downloaded, how each kind of answer is posted, the key of
the conversation's pending file, the region) comes in a :class:`FileChat` the channel builds per
message. File names, contents and message text are never logged.

Set-up: docs/slack.md and docs/teams.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence

from bot.server.channels import file_replies
from bot.server.channels.file_replies import FileRefused, FileReply

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SharedFile:
    """One file of a message, as the channel describes it."""

    name: str
    url: Optional[str]  # None: nothing we may fetch (a link to another site, a deleted file)
    size: Optional[int] = None  # the size the channel declares, when it does


@dataclass
class FileChat:
    """One conversation's side of the flow: where answers go and how files are fetched."""

    key: str  # the conversation's pending file (the one waiting for the date-order answer)
    send_text: Callable[[str], Awaitable[Any]]
    send_question: Callable[[str, List[Dict[str, str]]], Awaitable[Any]]  # text + the date-order buttons
    send_report: Callable[[FileReply], Awaitable[Any]]  # the report with the converted file(s)
    download: Callable[[SharedFile], Awaitable[bytes]]  # raises FileRefused(what the user is told)
    region: str = "US"  # the assistant's region (``file_replies.region_from_locale``)


class FileShare:
    """The file-share flow of one channel (``channel`` names it in the log: "Slack", "Teams")."""

    def __init__(self, channel: str, max_file_bytes: int, pending: Optional[file_replies.PendingFiles] = None):
        self.channel = channel
        self.max_file_bytes = max_file_bytes
        self.pending = pending if pending is not None else file_replies.PendingFiles()

    async def handle(
        self,
        router: Any,
        conversation_id: str,
        chat: FileChat,
        files: Sequence[SharedFile] = (),
        date_order: Optional[str] = None,
    ) -> bool:
        """Checks ``files`` (or re-checks the pending file with ``date_order``) and answers in ``chat``.

        False when a specialist holds the conversation: nothing was checked or sent, and the channel
        passes the message on (``router`` is the channel's hand-off router)."""
        if await file_replies.handed_off(router, conversation_id):
            return False
        if files:
            await self.check_files(files, chat)
        elif date_order:
            await self.answer_date_order(date_order, chat)
        return True

    async def check_files(self, files: Sequence[SharedFile], chat: FileChat) -> None:
        limit = file_replies.MAX_FILES_PER_MESSAGE
        for shared in files[:limit]:
            try:
                await self._check(shared, chat)
            except Exception:
                logger.exception("Checking a file shared in %s failed.", self.channel)
                await chat.send_text(file_replies.UNREACHABLE)
        if len(files) > limit:
            await chat.send_text(file_replies.more_files_text(len(files) - limit))

    async def answer_date_order(self, order: str, chat: FileChat) -> None:
        pending = self.pending.take(chat.key)
        if pending is None:
            await chat.send_text(file_replies.EXPIRED)
            return
        name, data, extra = pending
        try:
            await self._reply(data, name, order, extra.get("region", chat.region), chat)
        except Exception:
            logger.exception("Re-checking a file shared in %s failed.", self.channel)
            await chat.send_text(file_replies.UNREACHABLE)

    async def _check(self, shared: SharedFile, chat: FileChat) -> None:
        size = shared.size
        if isinstance(size, int) and not isinstance(size, bool) and size > self.max_file_bytes:
            await chat.send_text(file_replies.too_large_text(self.max_file_bytes, size))
            return
        if not isinstance(shared.url, str):
            await chat.send_text(file_replies.NOT_A_FILE)
            return
        try:
            data = await chat.download(shared)
        except FileRefused as refused:
            await chat.send_text(str(refused))
            return
        await self._reply(data, shared.name, None, chat.region, chat)

    async def _reply(self, data: bytes, name: str, order: Optional[str], region: str, chat: FileChat) -> None:
        reply = await file_replies.check_file(data, name, date_order=order, region=region)
        if reply.buttons:
            self.pending.put(chat.key, name, data, region=region)
            await chat.send_question(reply.text, reply.buttons)
            return
        await chat.send_report(reply)

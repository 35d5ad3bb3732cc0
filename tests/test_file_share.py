"""The file-share flow both chat channels use (bot/server/channels/file_share.py), in process: real files
through the real upload assistant; the channel's side (download, answers) is a small recording chat.

Slack and Teams each test the flow end to end over their fakes (tests/test_slack_channel.py,
tests/test_teams_channel.py); here are the rules the two copies of the flow used to disagree on, and
the flow's edges."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from bot.server.channels import file_replies
from bot.server.channels.file_replies import FileRefused, FileReply
from bot.server.channels.file_share import FileChat, FileShare, SharedFile
from tests import servers

EXPORTS = servers.ROOT / "tests" / "fixtures" / "bank_exports"
BROKEN = (EXPORTS / "parentheses_negatives.csv").read_bytes()
AMBIGUOUS = (EXPORTS / "ambiguous_dates.csv").read_bytes()


class Chat:
    """What a channel would post, in order: ("text", text), ("question", text, payloads), ("report", reply)."""

    def __init__(self, files: Dict[str, Any], key: str = "conversation-1", region: str = "US", failing_reports: int = 0):
        self.files, self.key, self.region = files, key, region
        self.failing_reports = failing_reports
        self.posted: List[Tuple[Any, ...]] = []
        self.downloads: List[str] = []

    async def send_text(self, text: str) -> None:
        self.posted.append(("text", text))

    async def send_question(self, text: str, buttons: List[Dict[str, str]]) -> None:
        self.posted.append(("question", text, [b["payload"] for b in buttons]))

    async def send_report(self, reply: FileReply) -> None:
        if self.failing_reports:
            self.failing_reports -= 1
            raise RuntimeError("the channel could not post")
        self.posted.append(("report", reply))

    async def download(self, shared: SharedFile) -> bytes:
        self.downloads.append(shared.name)
        found = self.files[shared.name]
        if isinstance(found, Exception):
            raise found
        return found

    def chat(self) -> FileChat:
        return FileChat(self.key, self.send_text, self.send_question, self.send_report, self.download, self.region)


class NoHandoff:
    """A channel's router on a server without the hand-off service: files are the bot's."""

    service: Optional[Any] = None


def kinds(chat: Chat) -> List[str]:
    return [p[0] for p in chat.posted]


async def test_an_unexpected_failure_on_one_file_is_told_and_the_others_are_still_checked():
    # Slack told the user and went on with the next file; Teams said nothing and dropped the rest
    chat = Chat({"a.csv": RuntimeError("boom"), "b.csv": BROKEN})
    flow = FileShare("Test", 200_000)
    files = [SharedFile("a.csv", "https://files.example/a"), SharedFile("b.csv", "https://files.example/b")]
    assert await flow.handle(NoHandoff(), "conversation-1", chat.chat(), files=files) is True
    assert chat.posted[0] == ("text", file_replies.UNREACHABLE)
    assert chat.posted[1][0] == "report" and "parentheses" in chat.posted[1][1].text
    assert chat.posted[1][1].converted and chat.downloads == ["a.csv", "b.csv"]


async def test_a_failing_re_check_is_told_too():
    chat = Chat({"dates.csv": AMBIGUOUS}, failing_reports=1)
    flow = FileShare("Test", 200_000)
    await flow.handle(NoHandoff(), chat.key, chat.chat(), files=[SharedFile("dates.csv", "https://files.example/d")])
    assert kinds(chat) == ["question"]
    await flow.handle(NoHandoff(), chat.key, chat.chat(), date_order="DMY")
    assert chat.posted[-1] == ("text", file_replies.UNREACHABLE)


async def test_the_date_order_question_keeps_the_file_and_its_region_and_the_answer_converts():
    chat = Chat({"dates.csv": AMBIGUOUS}, region="CA")  # Canada: dates either way, written day first
    flow = FileShare("Test", 200_000)
    await flow.handle(NoHandoff(), chat.key, chat.chat(), files=[SharedFile("dates.csv", "https://files.example/d")])
    (question,) = chat.posted
    assert question[0] == "question" and question[2] == ["/upload_date_order MDY", "/upload_date_order DMY"]
    assert len(flow.pending) == 1

    other = Chat({}, key="someone-else")  # another conversation's answer finds nothing of this one
    await flow.handle(NoHandoff(), other.key, other.chat(), date_order="DMY")
    assert other.posted == [("text", file_replies.EXPIRED)] and len(flow.pending) == 1

    # answered from a message of another locale: the file is converted for the region it was shared in
    answer = Chat({}, key=chat.key, region="US")
    await flow.handle(NoHandoff(), answer.key, answer.chat(), date_order="DMY")
    ((kind, report),) = answer.posted
    assert kind == "report"
    assert report.converted[0].content.startswith(b"Date,Description,Amount\r\n03/04/2024,Coffee shop,-4.50")
    assert chat.downloads == ["dates.csv"]  # the kept bytes, not a second download
    assert answer.downloads == []

    await flow.handle(NoHandoff(), chat.key, chat.chat(), date_order="DMY")  # answered again: the file is gone
    assert chat.posted[-1] == ("text", file_replies.EXPIRED)


async def test_declared_size_links_and_refusals_are_answered_without_checking():
    chat = Chat({"refused.csv": FileRefused(file_replies.NOT_A_FILE)})
    flow = FileShare("Test", 1000)
    await flow.handle(
        NoHandoff(),
        chat.key,
        chat.chat(),
        files=[
            SharedFile("big.csv", "https://files.example/big", size=5_000_000),  # refused before any download
            SharedFile("elsewhere.csv", None),
            SharedFile("refused.csv", "https://files.example/r"),
        ],
    )
    assert [p[1] for p in chat.posted] == [
        file_replies.too_large_text(1000, 5_000_000),
        file_replies.NOT_A_FILE,
        file_replies.NOT_A_FILE,
    ]
    assert chat.downloads == ["refused.csv"]


async def test_more_files_than_the_limit_get_a_note():
    names = [f"f{i}.csv" for i in range(5)]
    chat = Chat({name: BROKEN for name in names})
    flow = FileShare("Test", 200_000)
    await flow.handle(NoHandoff(), chat.key, chat.chat(), files=[SharedFile(n, f"https://files.example/{n}") for n in names])
    assert kinds(chat) == ["report"] * file_replies.MAX_FILES_PER_MESSAGE + ["text"]
    assert chat.posted[-1][1] == file_replies.more_files_text(5 - file_replies.MAX_FILES_PER_MESSAGE)
    assert chat.downloads == names[: file_replies.MAX_FILES_PER_MESSAGE]

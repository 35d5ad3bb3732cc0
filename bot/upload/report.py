"""The answer: :class:`UploadReport`, its JSON form and what the bot says about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from bot.upload.limits import QBO_MAX_FILE_BYTES, human_size
from bot.upload.model import ERROR, INFO, WARNING, ConvertedFile, Problem

#: Problem codes shown before others of the same severity (the ones users trip over most).
PRIORITY = (
    "check_failed",
    "too_large",
    "empty",
    "binary",
    "rejected_type",
    "unreadable",
    "extension",
    "qbo_size",
    "no_date_column",
    "no_amount_column",
    "columns",
    "preamble",
    "delimiter",
    "header_names",
)
_SEVERITY_RANK = {ERROR: 0, WARNING: 1, INFO: 2}
PLAIN_TEXT_GROUPS = 4


@dataclass
class UploadReport:
    ok: bool
    file_type: str
    encoding: Optional[str] = None
    problems: List[Problem] = field(default_factory=list)
    needs_date_order: Optional[Dict[str, Any]] = None
    summary: Dict[str, Any] = field(default_factory=dict)
    converted: List[ConvertedFile] = field(default_factory=list)
    filename: str = ""

    # ------------------------------------------------------------------ views
    @property
    def errors(self) -> List[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> List[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    def ordered_problems(self) -> List[Problem]:
        def rank(p: Problem):
            code_rank = PRIORITY.index(p.code) if p.code in PRIORITY else len(PRIORITY)
            return (_SEVERITY_RANK.get(p.severity, 3), p.row is not None, code_rank, p.row or 0)

        return sorted(self.problems, key=rank)

    def to_dict(self, include_content: bool = True) -> Dict[str, Any]:
        """JSON-ready. Converted files carry ``content_base64`` or ``content_omitted: true``."""
        return {
            "ok": self.ok,
            "filename": self.filename,
            "file_type": self.file_type,
            "encoding": self.encoding,
            "problems": [p.to_dict() for p in self.ordered_problems()],
            "counts": {
                "errors": len(self.errors),
                "warnings": len(self.warnings),
                "info": sum(1 for p in self.problems if p.severity == INFO),
            },
            "needs_date_order": self.needs_date_order,
            "summary": self.summary,
            "converted": [c.to_dict(include_content) for c in self.converted],
            "message": self.plain_text(),
        }

    # ------------------------------------------------------------------ what the bot says
    def plain_text(self) -> str:
        name = self.filename or "your file"
        lines: List[str] = []
        if self.needs_date_order:
            q = self.needs_date_order
            lines.append(
                f"Before I convert {name}, one question: the dates could be month/day/year or "
                f"day/month/year. {q.get('question', '')}"
            )
        rows = self.summary.get("rows")
        span = ""
        if self.summary.get("date_from") and self.summary.get("date_to"):
            span = f" from {self.summary['date_from']} to {self.summary['date_to']}"
        errors = self.errors
        money_read = ""
        if rows and self.summary.get("money_in") is not None:
            money_read = f" (money in {self.summary['money_in']}, money out {self.summary['money_out']})"
        check = self.summary.get("check") or {}
        source = self.summary.get("source") or {}
        if check and not check.get("passed") and source:
            lines.append(
                f"I read {source.get('rows')} transactions in {name} (money in {source.get('money_in')}, money out "
                f"{source.get('money_out')}), but the copy I made didn't match them, so I'm not giving you one."
            )
        elif self.ok:
            lines.append(f"{name} looks ready for QuickBooks: {rows or 0} transactions{span}{money_read}.")
        elif rows:
            lines.append(
                f"QuickBooks would reject {name} as it is ({len(errors)} problem"
                f"{'s' if len(errors) != 1 else ''} to fix). It has {rows} transactions{span}{money_read}."
            )
        elif errors:
            lines.append(errors[0].message if errors[0].row is None else f"I couldn't use {name}.")

        shown, rest = self._grouped_lines(skip_first=not rows and bool(errors) and errors[0].row is None)
        lines += [f"- {line}" for line in shown]
        if rest:
            lines.append(f"...and {rest} more problem{'s' if rest != 1 else ''} (see the full list).")

        main = [c for c in self.converted if c.kind == "all"]
        fresh = [c for c in self.converted if c.kind == "new_only"]
        if main:
            if self.ok and self.file_type in ("qbo", "qfx", "ofx"):
                lines.append(f"You can upload {name} as it is; if QuickBooks refuses it, use the CSV copy below.")
            if len(main) == 1:
                c = main[0]
                lines.append(f"I've made a clean copy for Upload from file: {c.filename} ({c.rows} rows).")
            else:
                lines.append(
                    f"The clean copy is over {human_size(QBO_MAX_FILE_BYTES)}, so I split it by date into "
                    f"{len(main)} files (upload each one): " + ", ".join(c.filename for c in main) + "."
                )
            if fresh:
                lines.append(
                    "There is also a copy without the rows that may already be in QuickBooks: "
                    + ", ".join(c.filename for c in fresh)
                    + "."
                )
            how = self.how_read()
            if how:
                lines.append(how)
            order = self.summary.get("output_date_format", "MM/dd/yyyy")
            lines.append(
                f"When QuickBooks asks: the first row is a header, the date format is {order}, and "
                "amounts are in one column (negative = money out)."
            )
        return "\n".join(line for line in lines if line)

    def how_read(self) -> str:
        """One line: the sign convention, why the dates were read in this order, the description column."""
        if self.file_type != "csv":
            return ""
        parts = []
        said = {p.code for p in self.problems}
        sign = (self.summary.get("sign_convention") or {}).get("description")
        if sign and not said & {"direction", "sign_convention"}:
            parts.append(sign)
        reason = self.summary.get("date_order_reason")
        if reason and "date_order" not in said:
            parts.append(reason)
        column = self.summary.get("description_column")
        if column:
            extra = self.summary.get("description_extra_columns") or []
            parts.append(f"Descriptions come from '{column}'" + (f" (with {', '.join(extra)})" if extra else "") + ".")
        return ("How I read it: " + " ".join(parts)) if parts else ""

    def _grouped_lines(self, skip_first: bool):
        """One line per kind of problem (first row shown, others counted); how many are not shown."""
        ordered = [
            p for p in self.ordered_problems() if p.severity != INFO or p.code in ("date_order", "direction", "sign_convention")
        ]
        if skip_first and ordered:
            ordered = ordered[1:]
        groups: Dict[str, List[Problem]] = {}
        for p in ordered:
            groups.setdefault(p.code or p.message, []).append(p)
        shown: List[str] = []
        hidden = 0
        for items in groups.values():
            if len(shown) >= PLAIN_TEXT_GROUPS:
                hidden += len(items) if items[0].severity != INFO else 0
                continue
            first = items[0]
            line = first.message if first.row is None or first.message.startswith("Row") else f"Row {first.row}: {first.message}"
            more = len(items) - 1
            if more:
                line += f" (same on {more} more row{'s' if more != 1 else ''})"
            shown.append(line)
        return shown, hidden

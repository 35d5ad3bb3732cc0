"""The small value types shared by the upload modules."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Optional

ERROR = "error"  # QuickBooks will reject the file as it is (or the row can't be converted)
WARNING = "warning"  # worth checking; QuickBooks may accept it
INFO = "info"  # what the assistant did, e.g. which column was taken as money out
SEVERITIES = (ERROR, WARNING, INFO)


@dataclass(frozen=True)
class Problem:
    """One finding. ``row`` is the spreadsheet row (1-based, as Excel shows it) or None for the
    whole file; ``code`` is a stable machine-readable name (e.g. ``parentheses``)."""

    row: Optional[int]
    severity: str
    message: str
    code: str = ""

    def to_dict(self) -> dict:
        return {"row": self.row, "severity": self.severity, "message": self.message, "code": self.code}


@dataclass(frozen=True)
class Transaction:
    """One bank transaction as read from the file. ``amount`` is negative for money out."""

    row: int  # spreadsheet row in a CSV, position (1-based) in an OFX statement
    date: dt.date
    description: str
    amount: Decimal
    key: tuple = ()  # the raw cells, for spotting rows that are exact copies


@dataclass(frozen=True)
class ConvertedFile:
    """A clean file ready for QuickBooks' "Upload from file"."""

    filename: str
    content: bytes
    rows: int
    date_from: Optional[dt.date]
    date_to: Optional[dt.date]
    kind: str = "all"  # "all": every transaction; "new_only": without rows already in QuickBooks

    def to_dict(self, include_content: bool = True) -> dict:
        import base64

        out = {
            "filename": self.filename,
            "rows": self.rows,
            "date_from": self.date_from.isoformat() if self.date_from else None,
            "date_to": self.date_to.isoformat() if self.date_to else None,
            "kind": self.kind,
            "size": len(self.content),
            "content_type": "text/csv",
        }
        if include_content:
            out["content_base64"] = base64.b64encode(self.content).decode("ascii")
        else:
            out["content_omitted"] = True
        return out


def money(value: Decimal) -> str:
    """A plain two-decimal string for JSON (no floats)."""
    from bot.upload.amounts import format_amount

    return format_amount(value)

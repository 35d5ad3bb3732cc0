"""Finds the header row (past any account-details preamble) and what each column holds: date,
description, amount or debit/credit, balance, extras worth folding into the description, and
columns to drop. Works from header names, or from the content when there is no header."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from bot.upload.amounts import parse_amount
from bot.upload.csv_reader import Record
from bot.upload.dates import parse_date
from bot.upload.limits import HEADER_SEARCH_ROWS

DATE_NAMES = (
    "date",
    "transaction date",
    "trans date",
    "txn date",
    "date of transaction",
    "transaction posted date",
    "posting date",
    "posted date",
    "post date",
    "date posted",
    "booking date",
    "value date",
    "effective date",
    "completed date",
    "started date",
    "process date",
    "processed date",
    "date completed",
    "date started",
    "created",
    "date time",
    "datetime",
    "transaction date time",
    "date processed",
    "processed",
    "transaction posted",
    "posted",
    "completed",
    "date of entry",
    "entry date",
    "settlement date",
    # German, Swiss, Austrian
    "datum",
    "buchungstag",
    "buchungsdatum",
    "buchung",
    "belegdatum",
    "transaktionsdatum",
    "abschlussdatum",
    "valuta",
    "valutadatum",
    "wertstellung",
    "wertstellungsdatum",
    "wertstellungstag",
    "valuta datum",
    # Dutch, Belgian
    "transactiedatum",
    "boekingsdatum",
    "boekdatum",
    "uitvoeringsdatum",
    "rentedatum",
    "valutadatum",
    # French
    "date operation",
    "date de l operation",
    "date d operation",
    "date de operation",
    "date comptable",
    "date de comptabilisation",
    "date de valeur",
    "date valeur",
    # Spanish, Italian, Portuguese
    "fecha",
    "fecha operacion",
    "fecha de operacion",
    "f operacion",
    "fecha contable",
    "fecha valor",
    "f valor",
    "data",
    "data operazione",
    "data contabile",
    "data valuta",
    "data movimento",
    "data lancamento",
    "data do movimento",
)
DESCRIPTION_NAMES = (
    "description",
    "transaction description",
    "desc",
    "description 1",
    "transaction details",
    "details",
    "narrative",
    "narration",
    "payee",
    "payee name",
    "name",
    "merchant",
    "merchant name",
    "memo",
    "particulars",
    "transaction",
    "counterparty",
    "counterparty name",
    "other party",
    "partner name",
    "beneficiary",
    # German, Swiss
    "beguenstigter zahlungspflichtiger",
    "begunstigter zahlungspflichtiger",
    "auftraggeber empfanger",
    "auftraggeber empfaenger",
    "empfanger",
    "empfaenger",
    "zahlungsempfanger",
    "name zahlungsbeteiligter",
    "auftraggeber",
    "verwendungszweck",
    "beschreibung",
    "buchungsdetails",
    "avisierungstext",
    "text",
    "buchungstext",
    # Dutch, French, Spanish, Italian, Portuguese
    "naam omschrijving",
    "naam",
    "omschrijving",
    "tegenpartij",
    "libelle",
    "libelle operation",
    "libelle de l operation",
    "intitule",
    "concepto",
    "descripcion",
    "movimiento",
    "beneficiario",
    "descrizione",
    "descrizione operazione",
    "causale",
    "descricao",
    "historico",
)
FOLD_NAMES = (
    "description 2",
    "memo",
    "notes",
    "note",
    "notes and tags",
    "reference",
    "ref",
    "payment reference",
    "payee",
    "payee name",
    "name",
    "merchant",
    "merchant name",
    "counterparty",
    "counterparty name",
    "additional info",
    "check number",
    "cheque number",
    "check",
    "cheque",
    "check no",
    "cheque no",
    "check or slip",
    "check num",
    "chq no",
    "verwendungszweck",
    "mededelingen",
    "omschrijving",
    "communication",
    "communicatie",
    "concepto",
    "beschreibung",
    "zahlungszweck",
    "informations complementaires",
    "causale",
    "reason",
    "purpose",
    "additional details",
)
CHECK_NAMES = (
    "check number",
    "cheque number",
    "check",
    "cheque",
    "check no",
    "cheque no",
    "check or slip",
    "check num",
    "chq no",
)
#: Never a description: ids, account numbers (the account's own IBAN), addresses, categories, times.
NOT_DESCRIPTION_NAMES = (
    "id",
    "transaction id",
    "transaction reference",
    "reference number",
    "ref no",
    "tx id",
    "txn id",
    "uuid",
    "iban",
    "bic",
    "swift",
    "account",
    "account number",
    "account no",
    "account name",
    "account type",
    "sort code",
    "rekening",
    "tegenrekening",
    "iban bban",
    "auftragskonto",
    "kontonummer",
    "konto",
    "blz",
    "kontonummer iban",
    "glaubiger id",
    "mandatsreferenz",
    "kundenreferenz end to end",
    "numero de compte",
    "address",
    "adresse",
    "adres",
    "direccion",
    "indirizzo",
    "card number",
    "card no",
    "card member",
    "cardholder",
    "category",
    "categorie",
    "kategorie",
    "categoria",
    "currency",
    "wahrung",
    "waehrung",
    "devise",
    "valuta code",
    "time",
    "status",
    "code",
    "mutatiesoort",
    "emoji",
    "receipt",
    "local currency",
    "local amount",
)
DEBIT_NAMES = (
    "debit",
    "debits",
    "debit amount",
    "debit amt",
    "amount debit",
    "withdrawal",
    "withdrawals",
    "withdrawal amount",
    "money out",
    "paid out",
    "out",
    "outflow",
    "amount out",
    "spent",
    "charges",
    "soll",
    "belastung",
    "belastungen",
    "lastschrift",
    "ausgang",
    "ausgaben",
    "debet",
    "af",
    "uitgaven",
    "cargo",
    "cargos",
    "dare",
    "uscite",
    "addebiti",
    "debito",
)
CREDIT_NAMES = (
    "credit",
    "credits",
    "credit amount",
    "credit amt",
    "amount credit",
    "deposit",
    "deposits",
    "deposit amount",
    "money in",
    "paid in",
    "in",
    "inflow",
    "amount in",
    "received",
    "receipts",
    "haben",
    "gutschrift",
    "gutschriften",
    "eingang",
    "einnahmen",
    "bij",
    "inkomsten",
    "abono",
    "abonos",
    "ingreso",
    "ingresos",
    "avere",
    "entrate",
    "accrediti",
    "credito",
)
AMOUNT_NAMES = (
    "amount",
    "amt",
    "transaction amount",
    "value",
    "net amount",
    "sum",
    "billing amount",
    "betrag",
    "umsatz",
    "bedrag",
    "montant",
    "importe",
    "importo",
    "valor",
    "monto",
    "kwota",
)
CURRENCY_HEADERS = ("cad", "usd", "gbp", "eur", "aud", "nzd")
#: Currency codes and words that banks add to a heading ("Withdrawals (SGD)", "Betrag in EUR").
CURRENCY_WORDS = (
    "usd",
    "cad",
    "gbp",
    "eur",
    "aud",
    "nzd",
    "sgd",
    "chf",
    "hkd",
    "inr",
    "jpy",
    "sek",
    "nok",
    "dkk",
    "pln",
    "czk",
    "huf",
    "zar",
    "mxn",
    "brl",
    "myr",
    "php",
    "idr",
    "thb",
    "cny",
    "rmb",
    "aed",
    "euro",
    "euros",
    "dollars",
    "pounds",
    "sterling",
)
BALANCE_WORDS = ("balance", "running bal", "bal", "saldo", "kontostand", "solde", "balans")
DIRECTION_NAMES = (
    "type",
    "transaction type",
    "dr cr",
    "debit credit",
    "credit debit",
    "cr dr",
    "details",
    "d c",
    "c d",
    "af bij",
    "soll haben",
    "s h",
    "sign",
    "direction",
    "indicator",
    "debit or credit",
    "credit or debit",
    "dc",
    "drcr",
    "crdr",
    "debit credit indicator",
    "cr dr indicator",
    "sens",
    "tipo",
    "movement",
    "umsatzart",
)
DIRECTION_OUT = {"dr", "debit", "d", "withdrawal", "db", "out", "af", "s", "soll", "debet", "debito", "cargo"}
DIRECTION_IN = {"cr", "credit", "c", "deposit", "in", "bij", "h", "haben", "credito", "abono"}
#: Markers that say it on their own, without a heading: a column of only these is a direction column.
STRONG_MARKERS = {"dr", "cr", "debit", "credit", "af", "bij", "soll", "haben", "debet"}
#: Headings in a language whose banks write dates day first.
DAY_FIRST_WORDS = {
    "datum",
    "buchungstag",
    "buchungsdatum",
    "valuta",
    "valutadatum",
    "wertstellung",
    "betrag",
    "umsatz",
    "verwendungszweck",
    "buchungstext",
    "soll",
    "haben",
    "saldo",
    "kontostand",
    "belastung",
    "gutschrift",
    "beguenstigter zahlungspflichtiger",
    "auftraggeber empfanger",
    "wahrung",
    "waehrung",
    "bedrag",
    "naam omschrijving",
    "omschrijving",
    "mededelingen",
    "af bij",
    "rekening",
    "tegenrekening",
    "transactiedatum",
    "boekingsdatum",
    "date operation",
    "date de valeur",
    "libelle",
    "montant",
    "solde",
    "debit euros",
    "fecha",
    "fecha valor",
    "concepto",
    "importe",
    "cargo",
    "abono",
    "data",
    "importo",
    "descrizione",
    "dare",
    "avere",
    "data valuta",
    "data operazione",
    "historico",
    "descricao",
    "valor",
}


def _fold(text: str) -> str:
    import unicodedata

    text = text.replace("ß", "ss").replace("ø", "o").replace("æ", "ae")
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def normalize_header(text: str) -> str:
    s = _fold(text.strip().lower()).replace("#", " ")
    s = re.sub(r"\([^)]*\)", lambda m: " " + m.group(0)[1:-1] + " ", s)
    s = re.sub(r"[^a-z0-9]+", " ", s)
    return re.sub(r"\s+", " ", s).strip()


def _currency_free(n: str) -> List[str]:
    """Readings of a heading without its currency: "withdrawals sgd" -> "withdrawals", "betrag in eur" ->
    "betrag in" / "betrag", "money in usd" -> "money in"."""
    words = [w for w in n.split(" ") if w not in CURRENCY_WORDS]
    if len(words) == len(n.split(" ")) or not words:
        return []
    out = [" ".join(words)]
    if len(words) > 1 and words[-1] in ("in", "en", "em", "im"):
        out.append(" ".join(words[:-1]))
    return out


def _without_currency(n: str) -> str:
    readings = _currency_free(n)
    for reading in readings:
        if _role(reading) is not None:
            return reading
    return readings[-1] if readings else n


def header_role(text: str) -> Optional[str]:
    n = normalize_header(text)
    if not n:
        return None
    role = _role(n)
    if role is None:
        for reading in _currency_free(n):
            role = _role(reading)
            if role is not None:
                break
    return role


def _role(n: str) -> Optional[str]:
    if n in DATE_NAMES:
        return "date"
    if n in DEBIT_NAMES:
        return "debit"
    if n in CREDIT_NAMES:
        return "credit"
    if any(n == w or n.startswith(w + " ") or n.endswith(" " + w) for w in BALANCE_WORDS):
        return "balance"
    if (
        n in AMOUNT_NAMES
        or n.startswith("amount ")
        or n in CURRENCY_HEADERS
        or (n.split(" ")[0] in AMOUNT_NAMES and len(n.split(" ")) == 2 and n.split(" ")[1] in CURRENCY_HEADERS)
    ):
        return "amount"
    if n in NOT_DESCRIPTION_NAMES:
        return "other"
    if n in DESCRIPTION_NAMES:
        return "description"
    if n in FOLD_NAMES:
        return "fold"
    words = n.split(" ")
    if words[-1] in ("date", "datum", "fecha", "data") or words[0] in ("date", "fecha") or n.endswith("datum"):
        return "date"  # "Date Processed", "Transaktionsdatum", "Fecha de la operación"
    if words[-1] in ("amount", "betrag", "bedrag", "montant", "importe", "importo") and len(words) <= 3:
        return "amount"  # "Transaction Amount", "Billing Amount"
    return None


def core_name(text: str) -> str:
    """The heading without accents, punctuation and currency (what the name lists are matched against)."""
    n = normalize_header(text)
    return _without_currency(n)


@dataclass
class Layout:
    header_row: Optional[int]  # spreadsheet row of the header, None when headerless
    header: Tuple[str, ...]  # header cells (empty when headerless)
    width: int  # number of columns the data rows should have
    date: Optional[int] = None
    description: Optional[int] = None
    amount: Optional[int] = None
    amount_alt: Optional[int] = None  # a second amount column (e.g. RBC's USD$), used when the first is blank
    debit: Optional[int] = None
    credit: Optional[int] = None
    direction: Optional[int] = None  # a DR/CR column giving the sign of unsigned amounts
    balance: List[int] = field(default_factory=list)
    fold: List[int] = field(default_factory=list)
    checks: List[int] = field(default_factory=list)  # fold columns that hold check numbers
    dropped: List[int] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)  # how the layout was worked out
    assumed_direction: bool = False  # headerless debit/credit pair: which is which was assumed

    def name(self, index: Optional[int]) -> str:
        if index is None:
            return ""
        if self.header and index < len(self.header) and self.header[index].strip():
            return self.header[index].strip()
        return f"column {index + 1}"


# ---------------------------------------------------------------------------- header present
def find_header(records: Sequence[Record]) -> Optional[Record]:
    """The first record (among the first rows) naming a date column and an amount-like column; failing that,
    a row naming a date column and another known column, directly above a row with a date in that column."""
    seen = 0
    candidates: List[Record] = []
    for rec in records:
        if rec.blank:
            continue
        seen += 1
        if seen > HEADER_SEARCH_ROWS:
            break
        candidates.append(rec)
        roles = [header_role(c) for c in rec.cells]
        if "date" in roles and any(r in ("amount", "debit", "credit") for r in roles):
            # a data row never looks like this: its date cell would parse as a date
            if not any(parse_date(c) for c in rec.cells):
                return rec
    for n, rec in enumerate(candidates[:-1]):
        roles = [header_role(c) for c in rec.cells]
        if "date" not in roles or sum(1 for r in roles if r) < 2 or any(parse_date(c) for c in rec.cells):
            continue
        following = candidates[n + 1]
        if parse_date(_cell(following, roles.index("date"))):
            return rec
    return None


def _first(indexed: Sequence[Tuple[int, str]], priority: Sequence[str]) -> Optional[int]:
    best = None
    for i, n in indexed:
        if n in priority:
            rank = priority.index(n)
            if best is None or rank < best[0]:
                best = (rank, i)
    return best[1] if best else None


def layout_from_header(header: Record, data: Sequence[Record]) -> Layout:
    cells = header.cells
    layout = Layout(header_row=header.row, header=cells, width=len(cells))
    normalized = [(i, core_name(c)) for i, c in enumerate(cells)]
    roles = {i: header_role(c) for i, c in enumerate(cells)}
    layout.date = _first([(i, n) for i, n in normalized if roles[i] == "date"], DATE_NAMES)
    amounts = [i for i in roles if roles[i] == "amount"]
    debits = [i for i in roles if roles[i] == "debit"]
    credits = [i for i in roles if roles[i] == "credit"]
    filled = [i for i in amounts if any(_cell(r, i).strip() for r in data[:2000])]
    amounts = filled or amounts
    exact = [
        i
        for i in amounts
        if _role(core_name(cells[i])) == "amount"
        and (
            core_name(cells[i]) in AMOUNT_NAMES
            or core_name(cells[i]).startswith("amount")
            or core_name(cells[i]) in CURRENCY_HEADERS
        )
    ]
    if (debits or credits) and not exact:
        amounts = []  # "Transfer Amount" beside Debit/Credit columns is not the transaction's amount
    amounts.sort(key=lambda i: i not in exact)
    if amounts:
        layout.amount = amounts[0]
        if len(amounts) > 1:
            layout.amount_alt = amounts[1]
    elif debits or credits:
        layout.debit = debits[0] if debits else None
        layout.credit = credits[0] if credits else None
    elif layout.date is not None:
        _money_from_content(layout, data, roles)
    described = [
        (i, n)
        for i, n in normalized
        if n in DESCRIPTION_NAMES
        and i != layout.date
        and roles[i] not in ("other", "amount", "debit", "credit", "balance", "date")
    ]
    layout.description = _first(described, DESCRIPTION_NAMES)
    if layout.description is not None and not _telling(data, layout.description):
        # an empty Description column, or one saying the same on every row (the account's name): the next named
        # one that tells the transactions apart
        telling = [(i, n) for i, n in described if _telling(data, i)]
        layout.description = _first(telling, DESCRIPTION_NAMES) if telling else layout.description
    used = {layout.date, layout.amount, layout.amount_alt, layout.debit, layout.credit, layout.description}
    used |= set(layout.balance)
    for i, n in normalized:
        if i in used:
            continue
        role = roles[i]
        if role == "balance":
            layout.balance.append(i)
        elif n in FOLD_NAMES and role != "other" and (n in CHECK_NAMES or not _codes_only(data, i)):
            layout.fold.append(i)
            if n in CHECK_NAMES:
                layout.checks.append(i)
        else:
            layout.dropped.append(i)
    if layout.description is None:
        never = {i for i in roles if roles[i] == "other"}
        layout.description = _guess_description(data, exclude=used | set(layout.balance) | never)
        if layout.description is not None:
            if layout.description in layout.dropped:
                layout.dropped.remove(layout.description)
            if layout.description in layout.fold:
                layout.fold.remove(layout.description)
    if layout.amount is not None and layout.debit is None and layout.credit is None:
        find_direction_column(layout, data)
    return layout


def _telling(data: Sequence[Record], i: int) -> bool:
    values = [_cell(r, i).strip() for r in data[:2000]]
    values = [v for v in values if v]
    return bool(values) and (len(values) < 3 or len(set(values)) > 1)


def _codes_only(data: Sequence[Record], i: int) -> bool:
    """A column of short transaction-type codes (MST, ITR, POS): noise in a description."""
    values = {_cell(r, i).strip() for r in data[:2000]} - {""}
    return bool(values) and all(len(v) <= 4 and " " not in v and not v.isdigit() for v in values)


def _money_from_content(layout: Layout, data: Sequence[Record], roles: Dict[int, Optional[str]]) -> None:
    """Headings the name lists don't know: the money columns are the ones whose cells are amounts."""
    data = [r for r in data[:2000] if parse_date(_cell(r, layout.date))]
    if not data:
        return
    money_cols = []
    for i in range(layout.width):
        if i == layout.date or roles.get(i) in ("description", "other", "fold"):
            continue
        filled = [_cell(r, i) for r in data if _cell(r, i).strip()]
        if (
            filled
            and sum(1 for c in filled if _money_like(c) or parse_amount(c)) >= 0.9 * len(filled)
            and any(_money_like(c) for c in filled)
        ):
            money_cols.append(i)
    balances = [i for i in money_cols if roles.get(i) == "balance"]
    money_cols = [i for i in money_cols if i not in balances]
    layout.balance += balances
    if len(money_cols) >= 2:
        x, y = money_cols[0], money_cols[1]
        exclusive = sum(1 for r in data if bool(_cell(r, x).strip()) != bool(_cell(r, y).strip()))
        if exclusive >= 0.9 * len(data):
            layout.debit, layout.credit = x, y
            layout.assumed_direction = True
            layout.balance += money_cols[2:]
            layout.notes.append("pair")
            return
    if money_cols:
        layout.amount = money_cols[0]
        layout.balance += money_cols[1:]


def marker_word(text: str) -> str:
    return normalize_header(text)


def find_direction_column(layout: Layout, data: Sequence[Record]) -> None:
    """A column saying DR/CR (debit/credit, Af/Bij, S/H) beside the amounts: use it for the sign. Found by its
    heading, or by its values alone when they are words that can only mean that (DR, CR, Debit, Credit)."""
    data = data[:2000]
    used = {layout.date, layout.amount, layout.amount_alt, layout.description}
    for i in range(layout.width):
        if i in used or i in layout.balance:
            continue
        heading = layout.header[i].strip() if layout.header and i < len(layout.header) else ""
        named = bool(heading) and core_name(heading) in DIRECTION_NAMES
        words = {marker_word(_cell(r, i)) for r in data if parse_date(_cell(r, layout.date))} - {""}
        if not words or not words <= (DIRECTION_OUT | DIRECTION_IN):
            continue
        if not named and not (words <= STRONG_MARKERS and len(words) >= 2 and words & DIRECTION_OUT and words & DIRECTION_IN):
            # a column with no heading holding only DR (or CR and DR) beside the amounts says the same
            if not (not heading and words <= STRONG_MARKERS and words & DIRECTION_OUT):
                continue
        if not words & DIRECTION_OUT and not named:
            continue
        layout.direction = i
        if i in layout.dropped:
            layout.dropped.remove(i)
        if i in layout.fold:
            layout.fold.remove(i)
        return


# ---------------------------------------------------------------------------- no header
def _cell(rec: Record, i: Optional[int]) -> str:
    if i is None or i >= len(rec.cells):
        return ""
    return rec.cells[i]


def _money_like(text: str) -> bool:
    s = text.strip()
    return bool(parse_amount(s)) and bool(re.search(r"[.,]\d{1,2}\s*\)?\s*(?:-|CR|DR|cr|dr)?$|[$£€]|^\(|-", s))


_ID_LIKE = re.compile(r"^(?=[^ ]*\d)[A-Za-z0-9_\-./:#*]{6,}$")
_IBAN_LIKE = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9 ]{10,32}$")


def _guess_description(data: Sequence[Record], exclude) -> Optional[int]:
    """The column of payee/description text: words with letters, varying from row to row. Never a column of
    ids (tx_0000...), account numbers or IBANs, or one value repeated on every row (the account's own name,
    number or address)."""
    width = max((len(r.cells) for r in data), default=0)
    best = None
    for i in range(width):
        if i in exclude:
            continue
        texts = [_cell(r, i).strip() for r in data]
        texts = [t for t in texts if t]
        if not texts:
            continue
        letters = sum(1 for t in texts if re.search(r"[^\W\d_]{2,}", t))
        if letters < len(texts) * 0.5:
            continue
        ids = sum(1 for t in texts if _ID_LIKE.match(t) or _IBAN_LIKE.match(t.upper()))
        if ids >= len(texts) * 0.5:
            continue
        if len(texts) >= 3 and len(set(texts)) == 1:
            continue
        spaced = sum(1 for t in texts if " " in t) / len(texts)
        avg = sum(len(t) for t in texts) / len(texts)
        score = (spaced >= 0.3, avg)
        if best is None or score > best[0]:
            best = (score, i)
    return best[1] if best else None


def layout_from_content(records: Sequence[Record]) -> Layout:
    """For files without a header row (Wells Fargo, TD, HSBC...): judge each column by its values."""
    rows = [r for r in records if not r.blank]
    widths: Dict[int, int] = {}
    for r in rows:
        widths[len(r.cells)] = widths.get(len(r.cells), 0) + 1
    width = max(widths.items(), key=lambda kv: (kv[1], kv[0]))[0] if widths else 0
    layout = Layout(header_row=None, header=(), width=width)
    if not rows or width < 2:
        return layout
    date_scores = []
    for i in range(width):
        filled = [_cell(r, i) for r in rows if _cell(r, i).strip()]
        good = sum(1 for c in filled if parse_date(c))
        date_scores.append(good / len(rows))
    best_date = max(range(width), key=lambda i: (date_scores[i], -i))
    if date_scores[best_date] < 0.5:
        return layout
    layout.date = best_date
    data = [r for r in rows if parse_date(_cell(r, best_date))]
    money_cols = []
    for i in range(width):
        if i == best_date:
            continue
        filled = [_cell(r, i) for r in data if _cell(r, i).strip()]
        if not filled:
            continue
        money = sum(1 for c in filled if _money_like(c))
        if money >= 0.8 * len(filled) and money >= 1:
            money_cols.append(i)
    pair = None
    for x in money_cols[:6]:
        for y in money_cols[:6]:
            if y <= x:
                continue
            exclusive = sum(1 for r in data if bool(_cell(r, x).strip()) != bool(_cell(r, y).strip()))
            if exclusive >= 0.9 * len(data):
                pair = (x, y)
                break
        if pair:
            break
    if pair:
        layout.debit, layout.credit = pair
        layout.assumed_direction = True
        layout.balance = [i for i in money_cols if i not in pair]
    elif money_cols:
        layout.amount = money_cols[0]
        layout.balance = money_cols[1:]
    used = {layout.date, layout.amount, layout.debit, layout.credit, *layout.balance}
    layout.description = _guess_description(data, exclude=used)
    used.add(layout.description)
    for i in range(width):
        if i in used:
            continue
        values = [_cell(r, i).strip() for r in data]
        filled = [v for v in values if v]
        if filled and all(re.fullmatch(r"\d{3,8}", v) for v in filled):
            layout.fold.append(i)
            layout.checks.append(i)
        else:
            layout.dropped.append(i)
    if layout.amount is not None:
        find_direction_column(layout, data)
    return layout

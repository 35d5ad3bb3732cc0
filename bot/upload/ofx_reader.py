"""Reads the OFX files banks really send: the header (OFX 1 ``KEY:VALUE`` lines or the OFX 2 ``<?OFX ...?>``
declaration, whatever the spelling of its character set), the bytes decoded the way the bank really wrote them,
and the body as an :class:`xml.etree.ElementTree.Element` tree built by a tolerant SGML reader.

Why not the library's parser: in OFX 1 (SGML) an element with no value (``<NAME>`` then ``<MEMO>``) looks like
the start of an aggregate, so everything after it nests inside it and is lost to a reader of the statement's
transaction list; CDATA values and unknown character-set spellings (``CHARSET:8859-1``) are refused. Here the
aggregates are the ones the OFX specification defines (taken from ofxtools' models), every other tag is a value,
and an end tag closes whatever was left open inside it.
"""

from __future__ import annotations

import codecs
import functools
import html
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple
from xml.etree import ElementTree as ET

MAX_DEPTH = 40

#: CHARSET / ENCODING / XML encoding spellings seen in bank files -> Python codec.
_CHARSETS = {
    "1252": "cp1252",
    "CP1252": "cp1252",
    "WINDOWS1252": "cp1252",
    "WIN1252": "cp1252",
    "ANSI": "cp1252",
    "MSCP1252": "cp1252",
    "XWINDOWS1252": "cp1252",
    "88591": "latin-1",
    "ISO88591": "latin-1",
    "LATIN1": "latin-1",
    "L1": "latin-1",
    "ISOLATIN1": "latin-1",
    "885915": "iso8859-15",
    "ISO885915": "iso8859-15",
    "LATIN9": "iso8859-15",
    "UTF8": "utf-8",
    "UNICODE": "utf-8",
    "NONE": None,
    "USASCII": None,
    "ASCII": None,
    "": None,
}
_HEADER_LINE = re.compile(r"^\s*([A-Za-z]+)\s*:\s*(.*?)\s*$")
_XML_ENCODING = re.compile(r"""<\?xml[^>]*?encoding\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_OFX_PI_VERSION = re.compile(r"""<\?OFX[^>]*?VERSION\s*=\s*["']?(\d+)""", re.IGNORECASE)
_OFX_START = re.compile(rb"<\s*OFX\s*>", re.IGNORECASE)
_TOKEN = re.compile(
    r"<!\[CDATA\[(?P<cdata>.*?)\]\]>"
    r"|<!--.*?-->"
    r"|<\?.*?\?>"
    r"|<(?P<close>/?)\s*(?P<tag>[A-Za-z][A-Za-z0-9._:-]*)\s*/?>"
    r"|(?P<text>[^<]+|<)",
    re.DOTALL,
)


class OfxReadError(Exception):
    """The file can't be read as OFX; ``str(exc)`` says why in words a customer can act on."""


@dataclass
class OfxHeader:
    version: Optional[int] = None
    fields: Dict[str, str] = field(default_factory=dict)
    declared: str = ""  # the character set the file says it uses, as written
    codec: str = "utf-8"  # what the body was really decoded with
    notes: List[str] = field(default_factory=list)  # what was odd about the header or the bytes


def charset_codec(name: str) -> Tuple[bool, Optional[str]]:
    """``(known, codec)`` for a declared character set; codec None means "ASCII / not said"."""
    key = re.sub(r"[^A-Z0-9]", "", (name or "").upper())
    if key in _CHARSETS:
        return True, _CHARSETS[key]
    try:
        return True, codecs.lookup(name).name
    except (LookupError, TypeError, ValueError):
        return False, None


def decode_body(data: bytes, declared: Optional[str]) -> Tuple[str, str, List[str]]:
    """The text of ``data``, the codec used, and notes. Valid UTF-8 with non-ASCII bytes is UTF-8 whatever the
    header says (banks label UTF-8 files "1252"); otherwise the declared single-byte set, then Windows-1252."""
    notes: List[str] = []
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="replace"), "utf-8", notes
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace"), "utf-16", notes
    ascii_only = all(b < 0x80 for b in data)
    if ascii_only:
        return data.decode("ascii"), declared or "utf-8", notes
    try:
        text = data.decode("utf-8")
        if declared and declared not in ("utf-8",):
            notes.append("utf8_not_declared")
        return text, "utf-8", notes
    except UnicodeDecodeError:
        pass
    codec = declared if declared and declared != "utf-8" else "cp1252"
    if declared == "utf-8":
        notes.append("not_utf8")
    if codec == "latin-1":
        codec = "cp1252"  # what "ISO-8859-1" files really are (the euro sign and curly quotes of Windows)
    try:
        return data.decode(codec), codec, notes
    except (UnicodeDecodeError, LookupError):
        return data.decode("latin-1"), "latin-1", notes


def read_header(data: bytes) -> Tuple[OfxHeader, int]:
    """The header and the byte offset where the body (``<OFX>``) starts."""
    m = _OFX_START.search(data)
    if not m:
        raise OfxReadError("it has an OFX header but no <OFX> section with the statement in it")
    start = m.start()
    raw = data[:start]
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[3:]
    head = raw.decode("latin-1")
    header = OfxHeader()
    for line in re.split(r"[\r\n]+", head):
        hm = _HEADER_LINE.match(line)
        if hm:
            header.fields[hm.group(1).upper()] = hm.group(2)
    if "OFXHEADER" not in header.fields and "VERSION" in header.fields:
        header.fields["OFXHEADER"] = "100"
    if header.fields.get("VERSION", "").isdigit():
        header.version = int(header.fields["VERSION"])
    pi = _OFX_PI_VERSION.search(head)
    if pi:
        header.version = int(pi.group(1))
    xml_enc = _XML_ENCODING.search(head)
    declared = header.fields.get("CHARSET", "")
    encoding = header.fields.get("ENCODING", "")
    if xml_enc:
        declared = xml_enc.group(1)
    elif encoding.upper().replace("-", "") in ("UTF8", "UNICODE") and declared.upper() in ("", "NONE", "CSUNICODE"):
        declared = "UTF-8"
    header.declared = declared
    known, codec = charset_codec(declared)
    if not known:
        header.notes.append("unknown_charset")
    header.codec = codec or "utf-8"
    return header, start


@functools.lru_cache(maxsize=1)
def _spec() -> Tuple[frozenset, frozenset]:
    """(aggregate tags, value tags) of the OFX specification, from ofxtools' models."""
    import ofxtools.models  # noqa: F401  (registers every model)
    from ofxtools import Types
    from ofxtools.models.base import Aggregate

    aggregates, elements = set(), set()
    todo = [Aggregate]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if sub.__name__.isupper():
                aggregates.add(sub.__name__)
            for klass in sub.__mro__:
                for attr, value in vars(klass).items():
                    if isinstance(value, Types.Element) and not isinstance(
                        value, (Types.SubAggregate, Types.ListAggregate, Types.ListElement)
                    ):
                        elements.add(attr.upper())
    aggregates |= {"STMTTRN", "BANKTRANLIST", "INVBANKTRAN", "PAYEE", "CURRENCY", "ORIGCURRENCY", "BANKACCTTO", "CCACCTTO"}
    elements -= aggregates
    return frozenset(aggregates), frozenset(elements)


def build_tree(body: str) -> Tuple[ET.Element, int]:
    """The element tree of an OFX body (SGML or XML) and how many stray end tags were ignored."""
    aggregates, elements = _spec()
    tokens = list(_TOKEN.finditer(body))
    closes_later: Dict[str, int] = {}  # tag -> index of its last end tag
    for n, tok in enumerate(tokens):
        if tok.group("tag") and tok.group("close"):
            closes_later[tok.group("tag").upper()] = n
    root = ET.Element("DOCUMENT")
    stack: List[ET.Element] = [root]
    stray = 0
    n = 0
    while n < len(tokens):
        tok = tokens[n]
        n += 1
        tag = tok.group("tag")
        if tag is None:
            continue  # text outside a value, comments, processing instructions
        tag = tag.upper()
        if tok.group("close"):
            for depth in range(len(stack) - 1, 0, -1):
                if stack[depth].tag == tag:
                    del stack[depth:]
                    break
            else:
                stray += 1
            continue
        # the value: text and CDATA up to the next tag
        parts: List[str] = []
        while n < len(tokens) and tokens[n].group("tag") is None:
            t = tokens[n]
            if t.group("cdata") is not None:
                parts.append(t.group("cdata"))
            elif t.group("text") is not None:
                parts.append(html.unescape(t.group("text")))
            n += 1
        value = "".join(parts).strip()
        aggregate = tag in aggregates or (
            not value
            and tag not in elements
            and closes_later.get(tag, -1) >= n
            and not (n < len(tokens) and tokens[n].group("close") and (tokens[n].group("tag") or "").upper() == tag)
        )
        if aggregate and not value:
            for depth in range(len(stack) - 1, 0, -1):  # an aggregate left open is closed by the next of its kind
                if stack[depth].tag == tag:
                    del stack[depth:]
                    break
            if len(stack) > MAX_DEPTH:
                raise OfxReadError("its tags are nested far too deep")
            node = ET.SubElement(stack[-1], tag)
            stack.append(node)
            continue
        node = ET.SubElement(stack[-1], tag)
        node.text = value
        # an explicit end tag right after a value belongs to it
        if n < len(tokens) and tokens[n].group("close") and (tokens[n].group("tag") or "").upper() == tag:
            n += 1
    ofx = root.find("OFX")
    if ofx is None:
        raise OfxReadError("it has no <OFX> section with the statement in it")
    return ofx, stray


def read(data: bytes) -> Tuple[OfxHeader, ET.Element, str]:
    """Header, tree and decoded body text. Raises :class:`OfxReadError` with a reason."""
    header, start = read_header(data)
    text, codec, notes = decode_body(data[start:], header.codec if header.declared else None)
    header.codec = codec
    header.notes += notes
    root, _ = build_tree(text)
    return header, root, text

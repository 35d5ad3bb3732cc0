"""Directory of banks and card issuers the assistant knows, loaded from ``data/banks.yml``.

Plain Python (no Rasa imports) so the NLU pipeline builder, the custom actions and the tests can all
use it. The file format is::

    version: 1
    bank_directory:
      - name: Chase                     # canonical display name, unique
        country: US                     # US | CA | UK
        kind: bank                      # bank | card_issuer | credit_union | fintech
        online_banking_url: https://secure.chase.com/
        aliases: [JPMorgan Chase, chase.com]

Lookups:

* :meth:`BankDirectory.get` matches a canonical name or alias after :func:`normalise_name`
  (case, accents, surrounding/repeated whitespace and punctuation are ignored).
* :meth:`BankDirectory.from_url` matches a URL, host name or e-mail address on its host: the host
  must equal, or end with ``"." +``, a bank's online-banking host or one of its domain-like aliases
  (``chase.com``). The longest (most specific) match wins.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

import yaml

__all__ = [
    "Bank",
    "BankDirectory",
    "BankDirectoryError",
    "COUNTRIES",
    "DEFAULT_PATH",
    "ENV_VAR",
    "KINDS",
    "normalise_name",
]

ENV_VAR = "BANK_DIRECTORY_PATH"
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "data" / "banks.yml"
FILE_VERSION = 1
TOP_LEVEL_KEY = "bank_directory"

COUNTRIES = frozenset({"US", "CA", "UK"})
KINDS = frozenset({"bank", "card_issuer", "credit_union", "fintech"})
_REQUIRED_FIELDS = ("name", "country", "kind", "online_banking_url")
_KNOWN_FIELDS = frozenset(_REQUIRED_FIELDS + ("aliases",))

# Characters removed outright, so "U.S." == "US" and "Lloyd's" == "Lloyds".
_JOINING_PUNCTUATION = re.compile(r"[.'\u2018\u2019`\u00b4]")
# Everything else that is not a letter or digit separates words ("Wells-Fargo" == "Wells Fargo").
_SEPARATORS = re.compile(r"[^0-9a-z]+")
# A bare domain name: at least two labels, alphabetic TLD ("chase.com", "halifax-online.co.uk", "53.com").
_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_HOST_CHARS = re.compile(r"^[a-z0-9.-]+$")

PathLike = Union[str, os.PathLike]


class BankDirectoryError(ValueError):
    """The bank directory file (or the banks given to :class:`BankDirectory`) is malformed."""


def normalise_name(text: str) -> str:
    """The key :meth:`BankDirectory.get` compares on.

    Lower-cases (``casefold``), strips accents, reads ``&`` as ``and`` (so "M&T", "M & T" and
    "M and T" agree), deletes ``.`` and apostrophes (so "U.S. Bank" == "US Bank"), turns any other
    punctuation into a space and collapses whitespace::

        >>> normalise_name("  Bank Of  America! ")
        'bank of america'
        >>> normalise_name("U.S. Bank"), normalise_name("M&T")
        ('us bank', 'm and t')
    """
    decomposed = unicodedata.normalize("NFKD", text)
    without_accents = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    lowered = without_accents.casefold().replace("&", " and ")
    joined = _JOINING_PUNCTUATION.sub("", lowered)
    return " ".join(_SEPARATORS.sub(" ", joined).split())


def _domain_of_alias(alias: str) -> Optional[str]:
    """``alias`` lower-cased if it looks like a domain name ("Chase.com"), else None."""
    candidate = alias.strip().lower().rstrip(".")
    if candidate.startswith("www."):
        candidate = candidate[4:]
    return candidate if len(candidate) <= 253 and _DOMAIN.match(candidate) else None


def _host_of(url_or_host: str) -> Optional[str]:
    """Lower-case host name of a URL, bare host ("www.chase.com/login") or e-mail address."""
    text = url_or_host.strip()
    if not text:
        return None
    if "://" not in text:
        text = "//" + text.lstrip("/")
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.rstrip(".")
    return host if _HOST_CHARS.match(host) and "." in host else None


@dataclass(frozen=True)
class Bank:
    name: str
    country: str
    kind: str
    online_banking_url: str
    aliases: Tuple[str, ...] = ()

    @property
    def host(self) -> str:
        """Host name of :attr:`online_banking_url`, lower-case ("secure.chase.com")."""
        return (urlsplit(self.online_banking_url).hostname or "").lower()

    def names(self) -> Tuple[str, ...]:
        """Canonical name followed by the aliases, as written in the file."""
        return (self.name,) + tuple(self.aliases)

    def alias_domains(self) -> Tuple[str, ...]:
        """Aliases that look like domain names, lower-case, without a leading ``www.``."""
        found: List[str] = []
        for alias in self.aliases:
            domain = _domain_of_alias(alias)
            if domain and domain not in found:
                found.append(domain)
        return tuple(found)

    def domains(self) -> Tuple[str, ...]:
        """Host of the online-banking URL followed by :meth:`alias_domains`."""
        return tuple(dict.fromkeys((self.host,) + self.alias_domains()))


def _check_fields(bank: Bank, where: str) -> None:
    """Value checks applied to every entry of a directory *file* (see :meth:`BankDirectory.load`)."""
    if bank.country not in COUNTRIES:
        raise BankDirectoryError(
            f"{where}: country {bank.country!r} is not one of {', '.join(sorted(COUNTRIES))}"
            + (" (use UK, not GB)" if str(bank.country).upper() == "GB" else "")
        )
    if bank.kind not in KINDS:
        raise BankDirectoryError(f"{where}: kind {bank.kind!r} is not one of {', '.join(sorted(KINDS))}")
    url = bank.online_banking_url
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise BankDirectoryError(f"{where}: online_banking_url {url!r} does not parse: {exc}") from None
    if host in LOOPBACK_HOSTS:
        return  # a site on this machine (test servers, local demos): plain http is fine
    if parts.scheme != "https":
        raise BankDirectoryError(f"{where}: online_banking_url {url!r} must use https://")
    if not host or "." not in host or not _HOST_CHARS.match(host) or any(ch.isspace() for ch in url):
        raise BankDirectoryError(f"{where}: online_banking_url {url!r} has no valid host name")


# Online-banking sites on this machine: test servers and local demos may use http and share a host.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _check_identity(bank: Any, where: str) -> None:
    """What :class:`BankDirectory` needs of any bank, however it was built."""
    if not isinstance(bank, Bank):
        raise BankDirectoryError(f"{where}: expected a Bank, got {type(bank).__name__}")
    if not isinstance(bank.name, str) or not bank.name.strip():
        raise BankDirectoryError(f"{where}: 'name' must be a non-empty string")
    if not isinstance(bank.online_banking_url, str):
        raise BankDirectoryError(f"{where}: 'online_banking_url' must be a string")
    if not isinstance(bank.aliases, tuple):
        raise BankDirectoryError(f"{where}: 'aliases' must be a tuple of strings")
    for alias in bank.aliases:
        if not isinstance(alias, str):
            raise BankDirectoryError(f"{where}: alias {alias!r} is a {type(alias).__name__}, not a string (quote it in YAML)")
    for text in bank.names():
        if not normalise_name(text):
            raise BankDirectoryError(f"{where}: name or alias {text!r} is empty once punctuation is removed")


class BankDirectory:
    """The banks of ``data/banks.yml`` with name/alias and URL lookups."""

    def __init__(self, banks: Iterable[Bank]) -> None:
        """Index ``banks``; raises :class:`BankDirectoryError` if a name or alias is ambiguous.

        Only uniqueness is checked here: canonical names, names/aliases after :func:`normalise_name`,
        and domain-like aliases must each belong to one bank. Field values (https, country, kind)
        are checked by :meth:`load`, so code and tests may build banks on local ``http://`` test
        servers. An online-banking host shared by several banks built this way is left out of the
        URL index (``from_url`` will not guess between them); in a file it is an error.
        """
        self._banks: Tuple[Bank, ...] = tuple(banks)
        self._by_key: Dict[str, Bank] = {}
        self._by_domain: Dict[str, Bank] = {}
        self._ambiguous_hosts: set[str] = set()
        seen_names: Dict[str, int] = {}
        hosts: Dict[str, List[Bank]] = {}
        for index, bank in enumerate(self._banks):
            where = f"bank #{index + 1} ({bank.name!r})" if isinstance(bank, Bank) else f"bank #{index + 1}"
            _check_identity(bank, where)
            if bank.name in seen_names:
                raise BankDirectoryError(
                    f"duplicate bank name {bank.name!r} (banks #{seen_names[bank.name] + 1} and #{index + 1})"
                )
            seen_names[bank.name] = index
            for text in bank.names():
                key = normalise_name(text)
                owner = self._by_key.setdefault(key, bank)
                if owner is not bank:
                    raise BankDirectoryError(
                        f"{where}: name/alias {text!r} (normalised {key!r}) already belongs to {owner.name!r}"
                    )
            for domain in bank.alias_domains():
                owner = self._by_domain.setdefault(domain, bank)
                if owner is not bank:
                    raise BankDirectoryError(f"{where}: domain alias {domain!r} already belongs to {owner.name!r}")
            if bank.host:
                hosts.setdefault(bank.host, []).append(bank)
        for host, owners in hosts.items():
            alias_owner = self._by_domain.get(host)
            if alias_owner is not None and any(owner is not alias_owner for owner in owners):
                other = next(owner for owner in owners if owner is not alias_owner)
                raise BankDirectoryError(
                    f"bank {other.name!r}: online-banking host {host!r} is a domain alias of {alias_owner.name!r}"
                )
            if alias_owner is None:
                if len(owners) == 1:
                    self._by_domain[host] = owners[0]
                else:
                    self._ambiguous_hosts.add(host)

    # -- loading -----------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Optional[PathLike] = None) -> "BankDirectory":
        """Read a directory file; default ``$BANK_DIRECTORY_PATH``, else ``<repo>/data/banks.yml``."""
        if path is None:
            path = os.environ.get(ENV_VAR) or DEFAULT_PATH
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as exc:
            raise BankDirectoryError(f"cannot read bank directory {source}: {exc.strerror or exc}") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BankDirectoryError(f"{source}: invalid YAML: {exc}") from exc
        try:
            return cls(_parse(data))
        except BankDirectoryError as exc:
            raise BankDirectoryError(f"{source}: {exc}") from None

    @classmethod
    def default(cls) -> "BankDirectory":
        """:meth:`load` of the default path (``$BANK_DIRECTORY_PATH``, else ``<repo>/data/banks.yml``),
        read once per path for the life of the process: for what Rasa and spaCy build themselves (the
        NLU components, the pipeline builder). The action server's actions get theirs from
        ``bot.desk.ActionServices``."""
        return _load_once(os.environ.get(ENV_VAR) or str(DEFAULT_PATH))

    # -- lookups -----------------------------------------------------------------------------------

    def get(self, text: str) -> Optional[Bank]:
        """The bank whose canonical name or alias is ``text`` (see :func:`normalise_name`)."""
        if not isinstance(text, str):
            return None
        key = normalise_name(text)
        return self._by_key.get(key) if key else None

    def from_url(self, url_or_host: str) -> Optional[Bank]:
        """The bank owning the host of ``url_or_host`` (URL, bare host or e-mail address).

        The host matches a bank when it equals, or ends with ``"." +``, the bank's online-banking
        host or one of its domain-like aliases; the most specific match wins, so
        ``https://secure.chase.com/web/auth``, ``chase.com`` and ``www.chase.com`` all give Chase.
        """
        if not isinstance(url_or_host, str):
            return None
        host = _host_of(url_or_host)
        if host is None:
            return None
        labels = host.split(".")
        for start in range(len(labels) - 1):
            suffix = ".".join(labels[start:])
            if suffix in self._ambiguous_hosts:
                return None
            bank = self._by_domain.get(suffix)
            if bank is not None:
                return bank
        return None

    def __iter__(self) -> Iterator[Bank]:
        return iter(self._banks)

    def __len__(self) -> int:
        return len(self._banks)

    def __repr__(self) -> str:
        return f"BankDirectory({len(self._banks)} banks)"


def _parse(data: Any) -> List[Bank]:
    """Banks of a decoded directory file, with every field checked (uniqueness: BankDirectory())."""
    if not isinstance(data, Mapping):
        raise BankDirectoryError(f"top level must be a mapping with 'version' and {TOP_LEVEL_KEY!r}, got {type(data).__name__}")
    version = data.get("version")
    if version != FILE_VERSION:
        raise BankDirectoryError(f"unsupported or missing 'version': {version!r} (expected {FILE_VERSION})")
    unexpected = sorted(str(key) for key in data if key not in ("version", TOP_LEVEL_KEY))
    if unexpected:
        raise BankDirectoryError(f"unexpected top-level key(s): {', '.join(unexpected)}")
    entries = data.get(TOP_LEVEL_KEY)
    if not isinstance(entries, list) or not entries:
        raise BankDirectoryError(f"{TOP_LEVEL_KEY!r} must be a non-empty list of banks")
    banks: List[Bank] = []
    for index, entry in enumerate(entries):
        where = f"{TOP_LEVEL_KEY}[{index}]"
        if not isinstance(entry, Mapping):
            raise BankDirectoryError(f"{where}: expected a mapping, got {type(entry).__name__}")
        if isinstance(entry.get("name"), str):
            where += f" ({entry['name']!r})"
        missing = [field for field in _REQUIRED_FIELDS if entry.get(field) in (None, "")]
        if missing:
            raise BankDirectoryError(f"{where}: missing required field(s): {', '.join(missing)}")
        unknown = sorted(str(key) for key in entry if key not in _KNOWN_FIELDS)
        if unknown:
            raise BankDirectoryError(f"{where}: unknown field(s): {', '.join(unknown)}")
        for field in _REQUIRED_FIELDS:
            if not isinstance(entry[field], str):
                raise BankDirectoryError(
                    f"{where}: {field!r} must be a string, got {type(entry[field]).__name__} {entry[field]!r}"
                )
        aliases = entry.get("aliases")
        if aliases is None:
            aliases = []
        if not isinstance(aliases, list):
            raise BankDirectoryError(f"{where}: 'aliases' must be a list, got {type(aliases).__name__}")
        for alias in aliases:
            if not isinstance(alias, str) or not alias.strip():
                raise BankDirectoryError(f"{where}: alias {alias!r} must be a non-empty string (quote numbers in YAML)")
        banks.append(
            Bank(
                name=entry["name"].strip(),
                country=entry["country"].strip(),
                kind=entry["kind"].strip(),
                online_banking_url=entry["online_banking_url"].strip(),
                aliases=tuple(alias.strip() for alias in aliases),
            )
        )
        _check_fields(banks[-1], where)
    host_owner: Dict[str, str] = {}
    for bank in banks:
        if bank.host in LOOPBACK_HOSTS:
            continue  # test and demo directories serve many banks from one local server
        first = host_owner.setdefault(bank.host, bank.name)
        if first != bank.name:
            raise BankDirectoryError(
                f"{TOP_LEVEL_KEY} ({bank.name!r}): online-banking host {bank.host!r} is already used by {first!r}"
            )
    return banks


@functools.lru_cache(maxsize=None)
def _load_once(path: str) -> BankDirectory:
    return BankDirectory.load(path)

"""Tests for bot.banks.directory and the real data/banks.yml."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from bot.banks.directory import (
    DEFAULT_PATH,
    ENV_VAR,
    Bank,
    BankDirectory,
    BankDirectoryError,
    normalise_name,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
BANKS_FILE = REPO_ROOT / "data" / "banks.yml"


@pytest.fixture(scope="module")
def directory() -> BankDirectory:
    return BankDirectory.load(BANKS_FILE)


def write(tmp_path: Path, text: str, name: str = "banks.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


VALID_ENTRY = """\
  - name: Example Bank
    country: US
    kind: bank
    online_banking_url: https://secure.example.com/login
    aliases: [Example, example.com]
"""


# ------------------------------------------------------------------------------- the real file


def test_default_path_is_repo_data_file():
    assert DEFAULT_PATH == BANKS_FILE
    assert BANKS_FILE.is_file()


def test_real_file_loads_with_enough_banks(directory):
    assert len(directory) >= 48
    assert len(list(directory)) == len(directory)
    assert all(isinstance(bank, Bank) for bank in directory)


def test_real_file_covers_countries_and_kinds(directory):
    countries = Counter(bank.country for bank in directory)
    kinds = Counter(bank.kind for bank in directory)
    assert set(countries) == {"US", "CA", "UK"}
    assert countries["US"] >= 20 and countries["CA"] >= 8 and countries["UK"] >= 12
    assert kinds["card_issuer"] >= 5
    assert kinds["credit_union"] >= 1
    assert set(kinds) <= {"bank", "card_issuer", "credit_union", "fintech"}


def test_real_file_is_not_rasa_training_data():
    data = yaml.safe_load(BANKS_FILE.read_text(encoding="utf-8"))
    assert set(data) == {"version", "bank_directory"}
    assert data["version"] == 1


@pytest.mark.parametrize(
    "name",
    [
        "Chase",
        "Bank of America",
        "Wells Fargo",
        "Citibank",
        "U.S. Bank",
        "PNC",
        "Truist",
        "Capital One",
        "TD Bank (US)",
        "Regions",
        "Citizens Bank",
        "Fifth Third",
        "KeyBank",
        "Huntington",
        "M&T Bank",
        "Ally",
        "Navy Federal Credit Union",
        "USAA",
        "American Express",
        "Discover",
        "Synchrony",
        "Silicon Valley Bank",
        "Mercury",
        "BMO (US)",
        "Santander US",
        "RBC Royal Bank",
        "TD Canada Trust",
        "Scotiabank",
        "BMO Bank of Montreal",
        "CIBC",
        "National Bank of Canada",
        "Desjardins",
        "Tangerine",
        "ATB Financial",
        "Barclays",
        "HSBC UK",
        "Lloyds Bank",
        "NatWest",
        "Santander UK",
        "Halifax",
        "Nationwide Building Society",
        "Monzo",
        "Starling Bank",
        "Metro Bank",
        "TSB",
        "Royal Bank of Scotland",
        "Tide",
        "Barclaycard",
    ],
)
def test_expected_banks_are_present(directory, name):
    bank = directory.get(name)
    assert bank is not None and bank.name == name


def test_every_url_is_https_and_parses(directory):
    for bank in directory:
        parts = urlsplit(bank.online_banking_url)
        assert parts.scheme == "https", bank.name
        assert parts.hostname and "." in parts.hostname, bank.name
        assert bank.host == parts.hostname.lower()
        assert " " not in bank.online_banking_url


def test_every_bank_is_found_by_its_own_url(directory):
    for bank in directory:
        assert directory.from_url(bank.online_banking_url) is bank, bank.name


def _registrable(host: str) -> str:
    labels = host.split(".")
    size = 3 if len(labels) >= 3 and labels[-2] in {"co", "com", "org", "ac"} and len(labels[-1]) == 2 else 2
    return ".".join(labels[-size:])


def test_every_bank_is_found_by_its_bare_domain(directory):
    # Users paste "chase.com" or "www.chase.com"; each entry needs its registrable domain as an alias.
    # The one deliberate exception: bmo.com is BMO Bank of Montreal's, www.bmo.com is BMO (US)'s host.
    for bank in directory:
        domain = _registrable(bank.host)
        expected = directory.get("BMO Bank of Montreal") if bank.name == "BMO (US)" else bank
        assert directory.from_url(domain) is expected, (bank.name, domain)


def test_names_and_aliases_are_unique_after_normalisation(directory):
    owners: dict[str, str] = {}
    for bank in directory:
        for text in bank.names():
            key = normalise_name(text)
            assert key, (bank.name, text)
            assert owners.setdefault(key, bank.name) == bank.name, f"{text!r} is used by {owners[key]} and {bank.name}"
            assert directory.get(text) is bank


def test_canonical_names_are_unique(directory):
    names = [bank.name for bank in directory]
    assert len(names) == len(set(names))


def test_no_generic_word_aliases(directory):
    for word in ["bank", "national", "citizens", "key", "metro", "credit union", "royal", "first"]:
        assert directory.get(word) is None, word


def test_bank_helpers(directory):
    chase = directory.get("Chase")
    assert chase.host == "secure.chase.com"
    assert chase.names()[0] == "Chase"
    assert "chase.com" in chase.names()
    assert isinstance(chase.aliases, tuple)
    with pytest.raises(AttributeError):
        chase.name = "Other"  # frozen


# ------------------------------------------------------------------------------- get()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("bank of america", "Bank of America"),
        ("Bank Of America!", "Bank of America"),
        ("  BANK   of\tAMERICA  ", "Bank of America"),
        ("bofa", "Bank of America"),
        ("BoA", "Bank of America"),
        ("Wells", "Wells Fargo"),
        ("wells-fargo", "Wells Fargo"),
        ("Amex", "American Express"),
        ("AMEX", "American Express"),
        ("cap one", "Capital One"),
        ("RBC", "RBC Royal Bank"),
        ("Royal Bank", "RBC Royal Bank"),
        ("RBS", "Royal Bank of Scotland"),
        ("TD", "TD Bank (US)"),
        ("td bank", "TD Bank (US)"),
        ("TD Canada", "TD Canada Trust"),
        ("td canada trust", "TD Canada Trust"),
        ("Santander", "Santander UK"),
        ("Santander US", "Santander US"),
        ("BMO", "BMO Bank of Montreal"),
        ("BMO Harris", "BMO (US)"),
        ("HSBC", "HSBC UK"),
        ("U.S. Bank", "U.S. Bank"),
        ("US Bank", "U.S. Bank"),
        ("u.s. bank.", "U.S. Bank"),
        ("M&T", "M&T Bank"),
        ("M & T Bank", "M&T Bank"),
        ("m and t bank", "M&T Bank"),
        ("BB&T", "Truist"),
        ("Lloyd's", "Lloyds Bank"),
        ("lloyds", "Lloyds Bank"),
        ("AccèsD", "Desjardins"),
        ("accesd", "Desjardins"),
        ("Nat West", "NatWest"),
        ("chase.com", "Chase"),
        ("Chase", "Chase"),
        ("Discover", "Discover"),
        ("Navy Federal", "Navy Federal Credit Union"),
    ],
)
def test_get_by_name_alias_case_and_punctuation(directory, text, expected):
    bank = directory.get(text)
    assert bank is not None, text
    assert bank.name == expected


@pytest.mark.parametrize("text", ["", "   ", "!!!", "Totally Unknown Credit Union", "bank of amerika", "chase bank of nowhere"])
def test_get_unknown_returns_none(directory, text):
    assert directory.get(text) is None


def test_get_non_string_returns_none(directory):
    assert directory.get(None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Bank Of America!", "bank of america"),
        ("  U.S.   Bank ", "us bank"),
        ("M&T", "m and t"),
        ("M & T", "m and t"),
        ("Lloyd\u2019s", "lloyds"),
        ("Wells-Fargo", "wells fargo"),
        ("AccèsD", "accesd"),
        ("chase.com", "chasecom"),
        ("", ""),
    ],
)
def test_normalise_name(text, expected):
    assert normalise_name(text) == expected


# ------------------------------------------------------------------------------- from_url()


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://secure.chase.com/web/auth", "Chase"),
        ("chase.com", "Chase"),
        ("www.chase.com", "Chase"),
        ("HTTPS://WWW.CHASE.COM/", "Chase"),
        ("chase.com/personal/checking", "Chase"),
        ("https://chase.com:443/x?y=1#z", "Chase"),
        ("alerts@chase.com", "Chase"),
        ("  https://secure.bankofamerica.com/login/sign-in/signOnV2Screen.go  ", "Bank of America"),
        ("bofa.com", "Bank of America"),
        ("https://onlinebanking.53.com/ib/", "Fifth Third"),
        ("http://www.wellsfargo.com", "Wells Fargo"),
        ("https://easyweb.td.com/waw/idp/login.htm", "TD Canada Trust"),
        ("td.com", "TD Canada Trust"),
        ("onlinebanking.tdbank.com", "TD Bank (US)"),
        ("https://www1.bmo.com/banking/digital/login", "BMO Bank of Montreal"),
        ("https://www.bmo.com/en-us/main/personal/", "BMO (US)"),
        ("https://business.revolut.com/", "Revolut"),
        ("online-business.lloydsbank.co.uk", "Lloyds Bank"),
        ("www.halifax-online.co.uk", "Halifax"),
        ("chase.com.", "Chase"),
    ],
)
def test_from_url(directory, url, expected):
    bank = directory.from_url(url)
    assert bank is not None, url
    assert bank.name == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "https://example.com/",
        "notchase.com",
        "chase.com.evil.example",
        "https://secure-chase.com/",
        "chase",
        "com",
        "http://[::1",
        "not a url at all",
    ],
)
def test_from_url_unknown_or_lookalike_returns_none(directory, url):
    assert directory.from_url(url) is None


# ------------------------------------------------------------------------------- malformed files


@pytest.mark.parametrize(
    "body, message",
    [
        # missing field
        (
            """\
            version: 1
            bank_directory:
              - name: Example Bank
                country: US
                online_banking_url: https://secure.example.com/
            """,
            "missing required field(s): kind",
        ),
        # non-https url
        (
            """\
            version: 1
            bank_directory:
              - name: Example Bank
                country: US
                kind: bank
                online_banking_url: http://secure.example.com/
            """,
            "must use https://",
        ),
        # bad country
        (
            """\
            version: 1
            bank_directory:
              - name: Example Bank
                country: GB
                kind: bank
                online_banking_url: https://secure.example.com/
            """,
            "country 'GB' is not one of CA, UK, US",
        ),
        # bad kind
        (
            """\
            version: 1
            bank_directory:
              - name: Example Bank
                country: US
                kind: building_society
                online_banking_url: https://secure.example.com/
            """,
            "kind 'building_society'",
        ),
        # duplicate canonical name
        (
            """\
            version: 1
            bank_directory:
              - name: Example Bank
                country: US
                kind: bank
                online_banking_url: https://secure.example.com/
              - name: Example Bank
                country: CA
                kind: bank
                online_banking_url: https://secure.example.ca/
            """,
            "duplicate bank name 'Example Bank'",
        ),
        # alias of one bank equal (after normalisation) to another bank's alias
        (
            """\
            version: 1
            bank_directory:
              - name: Example Bank
                country: US
                kind: bank
                online_banking_url: https://secure.example.com/
                aliases: [EX]
              - name: Other Bank
                country: CA
                kind: bank
                online_banking_url: https://secure.other.ca/
                aliases: ["e.x."]
            """,
            "name/alias 'e.x.' (normalised 'ex') already belongs to 'Example Bank'",
        ),
        # alias equal to another bank's canonical name
        (
            """\
            version: 1
            bank_directory:
              - name: Example Bank
                country: US
                kind: bank
                online_banking_url: https://secure.example.com/
              - name: Other Bank
                country: CA
                kind: bank
                online_banking_url: https://secure.other.ca/
                aliases: [example bank]
            """,
            "already belongs to 'Example Bank'",
        ),
        # domain shared by two banks
        (
            """\
            version: 1
            bank_directory:
              - name: Example Bank
                country: US
                kind: bank
                online_banking_url: https://secure.example.com/
              - name: Other Bank
                country: CA
                kind: bank
                online_banking_url: https://secure.example.com/other
            """,
            "online-banking host 'secure.example.com' is already used by 'Example Bank'",
        ),
        # unquoted number alias
        (
            """\
            version: 1
            bank_directory:
              - name: Example Bank
                country: US
                kind: bank
                online_banking_url: https://secure.example.com/
                aliases: [53]
            """,
            "alias 53 must be a non-empty string",
        ),
        # typo in a field name
        (
            """\
            version: 1
            bank_directory:
              - name: Example Bank
                country: US
                kind: bank
                online_banking_url: https://secure.example.com/
                alias: [EX]
            """,
            "unknown field(s): alias",
        ),
        # url without a host
        (
            """\
            version: 1
            bank_directory:
              - name: Example Bank
                country: US
                kind: bank
                online_banking_url: https:///login
            """,
            "has no valid host name",
        ),
        # wrong top level (looks like Rasa NLU data)
        (
            """\
            version: "3.1"
            nlu:
              - intent: greet
                examples: |
                  - hi
            """,
            "unsupported or missing 'version'",
        ),
        (
            """\
            version: 1
            nlu: []
            bank_directory: []
            """,
            "unexpected top-level key(s): nlu",
        ),
        (
            """\
            version: 1
            bank_directory: []
            """,
            "must be a non-empty list",
        ),
        (
            """\
            version: 1
            bank_directory:
              - just a string
            """,
            "bank_directory[0]: expected a mapping",
        ),
        ("- [unbalanced\n", "invalid YAML"),
        ("", "top level must be a mapping"),
    ],
)
def test_malformed_files_raise_with_useful_message(tmp_path, body, message):
    path = write(tmp_path, body)
    with pytest.raises(BankDirectoryError) as excinfo:
        BankDirectory.load(path)
    assert message in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_error_names_the_offending_entry(tmp_path):
    path = write(
        tmp_path,
        "version: 1\nbank_directory:\n" + VALID_ENTRY + "  - name: Broken Bank\n"
        "    country: US\n"
        "    kind: bank\n"
        "    online_banking_url: ftp://files.broken.com/\n",
    )
    with pytest.raises(BankDirectoryError, match=r"Broken Bank.*must use https://"):
        BankDirectory.load(path)


def test_missing_file_raises_bank_directory_error(tmp_path):
    with pytest.raises(BankDirectoryError, match="cannot read bank directory"):
        BankDirectory.load(tmp_path / "nope.yml")


def test_bank_directory_error_is_a_value_error():
    assert issubclass(BankDirectoryError, ValueError)


def test_constructor_checks_uniqueness():
    good = Bank("Example Bank", "US", "bank", "https://secure.example.com/", ("EX", "example.com"))
    assert len(BankDirectory([good])) == 1
    clash = Bank("Other Bank", "UK", "bank", "https://secure.other.co.uk/", ("ex",))
    with pytest.raises(BankDirectoryError, match="already belongs to 'Example Bank'"):
        BankDirectory([good, clash])
    with pytest.raises(BankDirectoryError, match="duplicate bank name 'Example Bank'"):
        BankDirectory([good, Bank("Example Bank", "CA", "bank", "https://secure.example.ca/")])
    www_clash = Bank("Other Bank", "UK", "bank", "https://secure.other.co.uk/", ("www.example.com",))
    with pytest.raises(BankDirectoryError, match="domain alias 'example.com' already belongs to 'Example Bank'"):
        BankDirectory([good, www_clash])
    host_is_alias = Bank("Other Bank", "UK", "bank", "https://example.com/login")
    with pytest.raises(BankDirectoryError, match="host 'example.com' is a domain alias of 'Example Bank'"):
        BankDirectory([good, host_is_alias])
    with pytest.raises(BankDirectoryError, match="expected a Bank"):
        BankDirectory([{"name": "Example Bank"}])  # type: ignore[list-item]
    with pytest.raises(BankDirectoryError, match="empty once punctuation is removed"):
        BankDirectory([Bank("Example Bank", "US", "bank", "https://secure.example.com/", ("--",))])


def test_constructor_accepts_local_http_test_banks_sharing_a_host():
    # Field values (https, country, kind) are a file concern: tests build banks on a local http server.
    banks = [
        Bank("Chase", "US", "bank", "http://127.0.0.1:8000/chase/healthy", ("JPMorgan Chase",)),
        Bank("Barclays", "UK", "bank", "http://127.0.0.1:8000/barclays/maintenance"),
        Bank("Solo", "US", "bank", "http://localhost.test:9000/solo"),
    ]
    directory = BankDirectory(banks)
    assert directory.get("jpmorgan chase") is banks[0]
    assert directory.from_url("http://127.0.0.1:8000/chase/healthy") is None  # shared host: no guessing
    assert directory.from_url("http://localhost.test:9000/") is banks[2]


def test_shared_host_does_not_fall_back_to_a_parent_domain():
    parent = Bank("Parent", "US", "bank", "https://www.parent.com/", ("parent.com",))
    first = Bank("First", "US", "bank", "http://shared.parent.com/a")
    second = Bank("Second", "US", "bank", "http://shared.parent.com/b")
    directory = BankDirectory([parent, first, second])
    assert directory.from_url("shared.parent.com") is None
    assert directory.from_url("other.parent.com") is parent


def test_spelling_variants_of_one_bank_are_allowed(tmp_path):
    path = write(
        tmp_path,
        """\
        version: 1
        bank_directory:
          - name: U.S. Bank
            country: US
            kind: bank
            online_banking_url: https://onlinebanking.usbank.com/
            aliases: [US Bank, u.s. bank, usbank.com]
        """,
    )
    directory = BankDirectory.load(path)
    assert directory.get("us bank").name == "U.S. Bank"
    assert directory.from_url("www.usbank.com").name == "U.S. Bank"


# ------------------------------------------------------------------------------- default path / env


def test_env_var_overrides_default_path(tmp_path, monkeypatch):
    path = write(tmp_path, "version: 1\nbank_directory:\n" + VALID_ENTRY, name="custom.yml")
    monkeypatch.setenv(ENV_VAR, str(path))
    assert ENV_VAR == "BANK_DIRECTORY_PATH"
    directory = BankDirectory.load()
    assert len(directory) == 1
    assert directory.get("example").name == "Example Bank"
    assert directory.get("Chase") is None


def test_env_var_pointing_at_a_broken_file_fails_loudly(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.yml"))
    with pytest.raises(BankDirectoryError, match="missing.yml"):
        BankDirectory.load()


def test_explicit_path_beats_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.yml"))
    assert len(BankDirectory.load(BANKS_FILE)) >= 48


def test_without_env_var_the_repo_file_is_used(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert BankDirectory.load().get("Chase") is not None


def test_default_is_cached_and_honours_env_var(tmp_path, monkeypatch):
    path = write(tmp_path, "version: 1\nbank_directory:\n" + VALID_ENTRY)
    monkeypatch.setenv(ENV_VAR, str(path))
    first = BankDirectory.default()
    assert first is BankDirectory.default()
    assert [bank.name for bank in first] == ["Example Bank"]
    monkeypatch.delenv(ENV_VAR)
    assert BankDirectory.default().get("Chase") is not None

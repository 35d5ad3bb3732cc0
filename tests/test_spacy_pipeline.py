"""The spaCy pipeline built from code, and the entity extractor that turns its spans into Rasa entities."""

from __future__ import annotations

import pytest
import spacy

from bot.banks.directory import BankDirectory
from bot.nlu import spacy_pipeline as sp
from bot.server.nlu.entity_extractor import entities_from_doc, normalise_error_code


@pytest.fixture(scope="module")
def directory() -> BankDirectory:
    return BankDirectory.default()


@pytest.fixture(scope="module")
def nlp(directory, tmp_path_factory):
    # round-trip through disk, as make does, so the saved pipeline is what is tested
    out = sp.write_pipeline(tmp_path_factory.mktemp("spacy") / "en_bankfeed", directory)
    return spacy.load(out)


def extract(nlp, directory, text):
    return [(e["entity"], e["value"]) for e in entities_from_doc(nlp(text), text, directory)]


def test_pipeline_is_blank_english_with_an_entity_ruler(nlp):
    assert nlp.lang == "en"
    assert nlp.pipe_names == ["entity_ruler"]
    assert nlp.meta["name"] == sp.PIPELINE_NAME


def test_every_bank_name_and_alias_has_a_pattern(directory):
    patterns = sp.bank_patterns(directory)
    ids = {p["id"] for p in patterns}
    assert ids == {bank.name for bank in directory}
    assert len(patterns) >= len(directory)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("erorr 102 on my bofa account", [("error_code", "102"), ("bank", "Bank of America")]),
        ("We're having trouble connecting to Wells Fargo. (102)", [("bank", "Wells Fargo"), ("error_code", "102")]),
        ("error102 with amex since tuesday", [("error_code", "102"), ("bank", "American Express")]),
        ("code: 185 from TD Canada Trust", [("error_code", "185"), ("bank", "TD Canada Trust")]),
        ("Error #324 at Chase", [("error_code", "324"), ("bank", "Chase")]),
        ("err#103 barclays", [("error_code", "103"), ("bank", "Barclays")]),
        ("still getting 9999", [("error_code", "9999")]),
        ("quickbooks desktop OL-301", [("error_code", "OL-301")]),
        ("ol 393 when downloading", [("error_code", "OL-393")]),
        ("I use firefox", [("browser", "firefox")]),
        ("on microsoft edge", [("browser", "edge")]),
        ("RBC ROYAL BANK feed broken", [("bank", "RBC Royal Bank")]),
    ],
)
def test_entities_are_canonical(nlp, directory, text, expected):
    assert extract(nlp, directory, text) == expected


def test_a_known_bank_url_gives_the_bank_and_the_url(nlp, directory):
    found = extract(nlp, directory, "I sign in at https://secure.chase.com/web/auth.")
    assert ("bank_url", "https://secure.chase.com/web/auth") in found
    assert ("bank", "Chase") in found


def test_an_unknown_url_gives_only_the_url(nlp, directory):
    assert extract(nlp, directory, "https://www.smalltownbank.example/login") == [
        ("bank_url", "https://www.smalltownbank.example/login")
    ]


def test_everyday_words_that_are_bank_names_need_a_capital(nlp, directory):
    assert extract(nlp, directory, "I need to discover why regions of my feed fail") == []
    assert extract(nlp, directory, "my Discover card feed says 102") == [("bank", "Discover"), ("error_code", "102")]


def test_pasted_secrets_are_flagged(nlp, directory):
    found = extract(nlp, directory, "my password is Summer2024! and card 4111 1111 1111 1111")
    assert ("sensitive_data", "password") in found
    assert ("sensitive_data", "card_number") in found


@pytest.mark.parametrize(
    "raw, code", [("Error 102", "102"), ("erorr: 9999", "9999"), ("(106)", "106"), ("OL 301", "OL-301"), ("ol-222", "OL-222")]
)
def test_normalise_error_code(raw, code):
    assert normalise_error_code(raw) == code

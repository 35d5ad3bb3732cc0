"""Builds the spaCy pipeline the Rasa NLU model runs on, from code and the bank directory.

No pretrained spaCy model can be downloaded, so the pipeline is a blank English tokenizer plus an
EntityRuler whose patterns come from ``data/banks.yml`` (bank and card-issuer names and aliases),
QuickBooks error-code shapes and browser names (web addresses are found by the entity extractor).

Run ``python -m bot.nlu.spacy_pipeline [output_dir]`` (``make`` does it) to write the pipeline to disk;
``config.yml`` points SpacyNLP at that directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Dict, List

import spacy
from spacy.language import Language

from bot.banks.directory import BankDirectory
from bot.paths import spacy_pipeline_dir

PIPELINE_NAME = "bankfeed"

# Entity-ruler labels and the Rasa entity each one becomes (see bot.server.nlu.entity_extractor).
LABEL_BANK = "BANK"
LABEL_ERROR_CODE = "ERROR_CODE"
LABEL_BROWSER = "BROWSER"

# Words users put in front of a code, typos included: "error 102", "erorr 102", "code #102".
CODE_WORDS = ["error", "errors", "eror", "erorr", "errror", "err", "code", "error#", "err#", "code#", "errorcode"]
# Codes that are recognised even without a leading word ("getting 102 again").
KNOWN_CODES = ["102", "103", "105", "106", "155", "179", "185", "324", "9999"]
CODE_NUMBER = r"^\d{3,4}$"

BROWSERS: Dict[str, List[str]] = {
    "chrome": ["chrome", "google chrome", "chromium"],
    "edge": ["edge", "microsoft edge", "ms edge"],
    "firefox": ["firefox", "fire fox", "mozilla firefox", "mozilla"],
    "safari": ["safari"],
    "opera": ["opera"],
    "brave": ["brave", "brave browser"],
}


# Bank names that are also everyday words ("discover why", "regions", "the tide"): matched only when
# written as a name (Title or UPPER case), never in lower case.
EVERYDAY_WORD_NAMES = {
    "wells",
    "regions",
    "ally",
    "discover",
    "mercury",
    "chime",
    "tangerine",
    "nationwide",
    "starling",
    "tide",
    "eq",
    "key",
    "citizens",
    "national",
    "capital",
    "first",
}


def bank_patterns(directory: BankDirectory) -> List[Dict[str, Any]]:
    """Patterns for every bank name and alias: lower-case phrases, or case-sensitive for everyday words."""
    patterns = []
    for bank in directory:
        for name in bank.names():
            if name.replace("/", "").isdigit():
                continue  # a bare number ("53") would match amounts and counts
            if name.lower() in EVERYDAY_WORD_NAMES:
                forms = sorted({name, name.title(), name.upper()})
                patterns.append({"label": LABEL_BANK, "pattern": [{"ORTH": {"IN": forms}}], "id": bank.name})
            else:
                patterns.append({"label": LABEL_BANK, "pattern": name.lower(), "id": bank.name})
    return patterns


def error_code_patterns() -> List[Dict[str, Any]]:
    separators = {"ORTH": {"IN": ["#", ":", "-", "no", "no.", "number"]}, "OP": "?"}
    return [
        # error 102, erorr: 102, code #102
        {"label": LABEL_ERROR_CODE, "pattern": [{"LOWER": {"IN": CODE_WORDS}}, separators, {"TEXT": {"REGEX": CODE_NUMBER}}]},
        # error102, err#103
        {"label": LABEL_ERROR_CODE, "pattern": [{"LOWER": {"REGEX": r"^(error|eror|erorr|errror|err|code)#?\d{3,4}$"}}]},
        # (102) as QuickBooks prints it at the end of a banner, and #102
        {"label": LABEL_ERROR_CODE, "pattern": [{"ORTH": "("}, {"TEXT": {"REGEX": CODE_NUMBER}}, {"ORTH": ")"}]},
        {"label": LABEL_ERROR_CODE, "pattern": [{"ORTH": "#"}, {"TEXT": {"REGEX": CODE_NUMBER}}]},
        # a bare well-known code: "still getting 102"
        {"label": LABEL_ERROR_CODE, "pattern": [{"TEXT": {"IN": KNOWN_CODES}}]},
        # QuickBooks Desktop's own codes (OL-301, ol 393): recognised so we can say they are Desktop's
        {"label": LABEL_ERROR_CODE, "pattern": [{"LOWER": {"REGEX": r"^ol-?\d{3}$"}}]},
        {"label": LABEL_ERROR_CODE, "pattern": [{"LOWER": "ol"}, {"ORTH": "-", "OP": "?"}, {"TEXT": {"REGEX": r"^\d{3}$"}}]},
    ]


def browser_patterns() -> List[Dict[str, Any]]:
    return [
        {"label": LABEL_BROWSER, "pattern": alias, "id": canonical}
        for canonical, aliases in BROWSERS.items()
        for alias in aliases
    ]


def all_patterns(directory: BankDirectory) -> List[Dict[str, Any]]:
    # Order matters only for equal-length overlaps; the ruler prefers the longest match.
    return bank_patterns(directory) + error_code_patterns() + browser_patterns()


def patterns_fingerprint(patterns: List[Dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(patterns, sort_keys=True).encode()).hexdigest()[:16]


def build_pipeline(directory: BankDirectory | None = None) -> Language:
    """Blank English + EntityRuler fed by the bank directory and our code/browser/URL patterns."""
    directory = directory or BankDirectory.default()
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER", "validate": True})
    patterns = all_patterns(directory)
    ruler.add_patterns(patterns)
    nlp.meta["name"] = PIPELINE_NAME
    nlp.meta["version"] = "1.0.0"
    nlp.meta["description"] = (
        "Blank English tokenizer with an EntityRuler for banks, QuickBooks error codes and browsers "
        f"(patterns {patterns_fingerprint(patterns)})"
    )
    return nlp


def write_pipeline(output_dir: Path, directory: BankDirectory | None = None) -> Path:
    nlp = build_pipeline(directory)
    output_dir.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(output_dir)
    return output_dir


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", type=Path, default=spacy_pipeline_dir())
    args = parser.parse_args(argv)
    out = write_pipeline(args.output_dir)
    ents = spacy.load(out)("Error 102 on Chase in chrome").ents
    print(f"spaCy pipeline written to {out} (smoke test: {[(e.text, e.label_) for e in ents]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

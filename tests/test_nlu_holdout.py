"""The held-out NLU set stays held out: no example is, or nearly is, a training example.

A near-copy would measure memory, not understanding. Texts are compared after lower-casing, dropping
punctuation and collapsing spaces; two texts are near-copies when they are the same once spaces are
removed too ("error 106" / "error106"), or when their edit distance (Levenshtein, in characters) is at
most a tenth of the longer one (one edit from 10 characters on, two from 20, ...): "bank feed stopped
updating" vs "bank feed stoped updating" is a near-copy, "err 106 keybank" vs "err 106 becu" is not.
No model is needed: this reads the YAML files only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

ROOT = Path(__file__).resolve().parent.parent
HOLDOUT = ROOT / "tests" / "nlu" / "holdout.yml"
TRAINING = sorted((ROOT / "data" / "nlu").glob("*.yml"))


def examples(path: Path) -> List[Tuple[str, str]]:
    """(intent, text) for every example of an NLU YAML file."""
    out = []
    for block in yaml.safe_load(path.read_text()).get("nlu") or []:
        if "intent" in block:
            for line in block["examples"].splitlines():
                line = line.strip()
                if line.startswith("- "):
                    out.append((block["intent"], line[2:].strip()))
    return out


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def allowed_distance(a: str, b: str) -> int:
    return max(len(a), len(b)) // 10


def bounded_levenshtein(a: str, b: str, bound: int) -> Optional[int]:
    """The edit distance of ``a`` and ``b`` if it is at most ``bound``, else None (banded, so it stays fast)."""
    if abs(len(a) - len(b)) > bound:
        return None
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        low, high = max(1, i - bound), min(len(b), i + bound)
        current = [bound + 1] * (len(b) + 1)
        current[0] = i if i <= bound else bound + 1
        for j in range(low, high + 1):
            cost = 0 if ca == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
        if min(current[max(0, low - 1) : high + 1]) > bound:
            return None
        previous = current
    return previous[len(b)] if previous[len(b)] <= bound else None


def near_copies() -> List[str]:
    training: Dict[int, List[str]] = {}
    for path in TRAINING:
        for _, text in examples(path):
            t = normalise(text)
            training.setdefault(len(t), []).append(t)
    squeezed = {t.replace(" ", ""): t for texts in training.values() for t in texts}
    found = []
    for intent, text in examples(HOLDOUT):
        h = normalise(text)
        if h.replace(" ", "") in squeezed:
            found.append(f"{intent}: {text!r} ~ training {squeezed[h.replace(' ', '')]!r} (same without spaces)")
            continue
        bound = len(h) // 5  # wider than any allowed distance: every length a near-copy can have
        for length in range(len(h) - bound, len(h) + bound + 1):
            for t in training.get(length, []):
                distance = bounded_levenshtein(h, t, allowed_distance(h, t))
                if distance is not None:
                    found.append(f"{intent}: {text!r} ~ training {t!r} (distance {distance})")
    return found


def test_the_distance_is_right():
    assert bounded_levenshtein("error 106", "error106", 3) == 1
    assert bounded_levenshtein("kitten", "sitting", 3) == 3
    assert bounded_levenshtein("kitten", "sitting", 2) is None
    assert bounded_levenshtein("err 106 keybank", "err 106 becu", 3) is None
    assert bounded_levenshtein("", "abc", 3) == 3
    assert allowed_distance("bank feed stopped updating", "bank feed stoped updating") == 2


def test_no_held_out_example_is_a_near_copy_of_a_training_example():
    assert near_copies() == []


def test_the_held_out_set_covers_every_diagnosis_and_adjacent_topic():
    from bot.troubleshooting import diagnosis as dx

    intents = {intent for intent, _ in examples(HOLDOUT)}
    assert set(dx.REPORT_INTENTS) | set(dx.ADJACENT_INTENTS) <= intents
    out_of_scope = [text for intent, text in examples(HOLDOUT) if intent == "out_of_scope"]
    assert len(out_of_scope) >= 100

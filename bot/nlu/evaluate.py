"""Evaluates the trained NLU on the held-out file: per-class precision/recall/F1 and a confusion table.

Two views: the raw intent, and the diagnosis the bot acts on (intent + error codes, see
actions/diagnosis.py), which is what a user's first message decides. Writes reports/nlu-eval.json
and reports/nlu-eval.md, prints the tables, and exits 1 when the diagnosis targets are missed.

    python -m bot.nlu.evaluate --model models/bankfeed.tar.gz --holdout tests/nlu/holdout.yml --out reports
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

MACRO_F1_TARGET = 0.90
CLASS_F1_TARGET = 0.85


@dataclass
class Prediction:
    text: str
    gold_intent: str
    intent: str
    confidence: float
    error_codes: List[str]


def per_class_scores(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> Dict[str, Dict[str, float]]:
    scores: Dict[str, Dict[str, float]] = {}
    for label in labels:
        tp = sum(1 for g, p in zip(gold, predicted) if g == label and p == label)
        fp = sum(1 for g, p in zip(gold, predicted) if g != label and p == label)
        fn = sum(1 for g, p in zip(gold, predicted) if g == label and p != label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return scores


def confusion(gold: Sequence[str], predicted: Sequence[str]) -> Dict[str, Dict[str, int]]:
    table: Dict[str, Counter] = {}
    for g, p in zip(gold, predicted):
        table.setdefault(g, Counter())[p] += 1
    return {g: dict(c) for g, c in sorted(table.items())}


def macro_f1(scores: Dict[str, Dict[str, float]]) -> float:
    return sum(s["f1"] for s in scores.values()) / len(scores) if scores else 0.0


def diagnosis_view(predictions: Sequence[Prediction]) -> Tuple[List[str], List[str]]:
    from actions.diagnosis import diagnose, gold_diagnosis

    gold, predicted = [], []
    for p in predictions:
        g = gold_diagnosis(p.gold_intent)
        if g is None:
            continue  # dialogue moves (yes/no/...) carry no diagnosis
        gold.append(g)
        predicted.append(diagnose(p.intent, p.error_codes) or "none")
    return gold, predicted


def markdown_table(title: str, scores: Dict[str, Dict[str, float]], table: Dict[str, Dict[str, int]]) -> str:
    lines = [f"## {title}", "", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label, s in scores.items():
        lines.append(f"| {label} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['support']} |")
    lines.append(f"| **macro** | | | **{macro_f1(scores):.3f}** | |")
    columns = sorted({p for row in table.values() for p in row})
    lines += ["", "Confusion (rows: gold, columns: predicted)", "", "| gold \\ predicted | " + " | ".join(columns) + " |",
              "|---" * (len(columns) + 1) + "|"]
    for g, row in table.items():
        lines.append(f"| {g} | " + " | ".join(str(row.get(c, 0) or "") for c in columns) + " |")
    return "\n".join(lines) + "\n"


async def predict_with(agent, holdout: Path) -> List[Prediction]:
    """Parses every held-out example with a loaded Rasa ``Agent``."""
    from rasa.shared.nlu.training_data.loading import load_data

    predictions = []
    for example in load_data(str(holdout)).intent_examples:
        text = example.get("text")
        parsed = await agent.parse_message(text)
        predictions.append(
            Prediction(
                text=text,
                gold_intent=example.get("intent"),
                intent=parsed["intent"]["name"],
                confidence=float(parsed["intent"].get("confidence") or 0.0),
                error_codes=[e["value"] for e in parsed.get("entities", []) if e["entity"] == "error_code"],
            )
        )
    return predictions


async def predict(model: Path, holdout: Path) -> List[Prediction]:
    from rasa.core.agent import Agent

    return await predict_with(Agent.load(str(model)), holdout)


def evaluate(predictions: Sequence[Prediction]) -> Dict[str, object]:
    gold_i = [p.gold_intent for p in predictions]
    pred_i = [p.intent for p in predictions]
    intent_scores = per_class_scores(gold_i, pred_i, sorted(set(gold_i)))
    gold_d, pred_d = diagnosis_view(predictions)
    diagnosis_scores = per_class_scores(gold_d, pred_d, sorted(set(gold_d)))
    return {
        "examples": len(predictions),
        "intent": {"per_class": intent_scores, "macro_f1": macro_f1(intent_scores), "confusion": confusion(gold_i, pred_i)},
        "diagnosis": {"per_class": diagnosis_scores, "macro_f1": macro_f1(diagnosis_scores), "confusion": confusion(gold_d, pred_d)},
        "errors": [
            {"text": p.text, "gold": p.gold_intent, "predicted": p.intent, "confidence": round(p.confidence, 3)}
            for p in predictions
            if p.intent != p.gold_intent
        ],
        "targets": {"macro_f1": MACRO_F1_TARGET, "class_f1": CLASS_F1_TARGET},
    }


def meets_targets(report: Dict[str, object]) -> bool:
    diag = report["diagnosis"]
    return diag["macro_f1"] >= MACRO_F1_TARGET and all(s["f1"] >= CLASS_F1_TARGET for s in diag["per_class"].values())


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate the NLU model on the held-out set")
    parser.add_argument("--model", type=Path, default=Path("models/bankfeed.tar.gz"))
    parser.add_argument("--holdout", type=Path, default=Path("tests/nlu/holdout.yml"))
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)

    report = evaluate(asyncio.run(predict(args.model, args.holdout)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "nlu-eval.json").write_text(json.dumps(report, indent=2))
    md = (
        f"# NLU evaluation on {args.holdout} ({report['examples']} held-out examples)\n\n"
        + markdown_table("Diagnosis", report["diagnosis"]["per_class"], report["diagnosis"]["confusion"])
        + "\n"
        + markdown_table("Intent", report["intent"]["per_class"], report["intent"]["confusion"])
    )
    (args.out / "nlu-eval.md").write_text(md)
    print(md)
    ok = meets_targets(report)
    print(
        f"Diagnosis macro F1 {report['diagnosis']['macro_f1']:.3f} (target {MACRO_F1_TARGET}), "
        f"every class >= {CLASS_F1_TARGET}: {'MET' if ok else 'NOT MET'}. Written to {args.out}/nlu-eval.md"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

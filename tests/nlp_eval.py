"""Scoring of the NLP layer against tests/data/questions_fr.jsonl (used by tests and bench)."""

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from models import Analysis, AuditFilters, Intent, TimeRange

DATASET = Path(__file__).parent / "data" / "questions_fr.jsonl"
# Written after the rules, never used to tune them before being measured once (see the README section).
HELDOUT = Path(__file__).parent / "data" / "questions_fr_heldout.jsonl"
# Misreads found while using the product (real chat questions on the demo trail) and variants of each,
# labelled after the fix; `entities` holds display keys that must match too (not_found, sort...).
USAGE = Path(__file__).parent / "data" / "questions_fr_usage.jsonl"


def load_dataset(path: Path = DATASET) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def label_to_analysis(label: dict[str, Any]) -> Analysis:
    """A labelled turn as the Analysis a previous turn would have produced (for follow-ups)."""
    time = label.get("time")
    start, end = (_dt(time["start"]), _dt(time["end"])) if time else (None, None)
    return Analysis(
        question=label["question"],
        intent=Intent(label["intent"]),
        confidence=0.9,
        filters=AuditFilters(**label["filters"], start=start, end=end),
        time_range=TimeRange(start=start, end=end) if time else None,
        group_by=label.get("group_by"),
        top_n=label.get("top_n"),
        count_only=label.get("count_only", False),
    )


def entity_pairs(filters: dict[str, Any]) -> set[tuple[str, Any]]:
    pairs: set[tuple[str, Any]] = set()
    for f, values in filters.items():
        if f == "exclude":  # {"dbusername": ["SCOTT"]}: ("not dbusername", "SCOTT")
            pairs.update(("not " + field, v) for field, vs in values.items() for v in vs)
            continue
        if f == "failed":
            if values is not None:
                pairs.add(("failed", bool(values)))
            continue
        if f in ("start", "end") or not values:
            continue
        for v in values:
            pairs.add((f, v.casefold() if f == "sql_text_contains" else v))
    return pairs


def score(rows: list[tuple[dict[str, Any], Analysis]]) -> dict[str, Any]:
    """Intent accuracy, micro entity F1, time-range exactness and the misses."""
    n = len(rows)
    intent_ok = time_ok = group_ok = top_ok = count_ok = 0
    shown = shown_ok = 0  # labels with expected display entities, and those matched
    tp = fp = fn = 0
    misses: list[str] = []
    for label, a in rows:
        got_filters = a.filters.model_dump(exclude_defaults=True)
        expected, got = entity_pairs(label["filters"]), entity_pairs(got_filters)
        tp += len(expected & got)
        fp += len(got - expected)
        fn += len(expected - got)
        time = label["time"]
        exp_range = (_dt(time["start"]), _dt(time["end"])) if time else (None, None)
        got_range = (a.time_range.start, a.time_range.end) if a.time_range else (None, None)
        ok_i = a.intent.value == label["intent"]
        ok_t = exp_range == got_range
        intent_ok += ok_i
        time_ok += ok_t
        group_ok += a.group_by == label["group_by"]
        top_ok += a.top_n == label["top_n"]
        count_ok += a.count_only == label["count_only"]
        wrong_shown = {
            k: a.entities.get(k) for k, v in label.get("entities", {}).items() if a.entities.get(k) != v
        }
        if "entities" in label:
            shown += 1
            shown_ok += not wrong_shown
        if not ok_i or not ok_t or expected != got or wrong_shown:
            misses.append(
                f"#{label['id']} {label['question']!r}: intent {a.intent.value} (want {label['intent']})"
                + (
                    f", filters +{sorted(got - expected, key=str)} -{sorted(expected - got, key=str)}"
                    if expected != got
                    else ""
                )
                + (f", time {got_range} (want {exp_range})" if not ok_t else "")
                + (f", entities {wrong_shown} (want {label['entities']})" if wrong_shown else "")
            )
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "questions": n,
        "intent_accuracy": intent_ok / n,
        "entity_f1": f1,
        "entity_precision": precision,
        "entity_recall": recall,
        "time_exact": time_ok / n,
        "group_by_accuracy": group_ok / n,
        "top_n_accuracy": top_ok / n,
        "count_only_accuracy": count_ok / n,
        "shown_entities_accuracy": shown_ok / shown if shown else 1.0,
        "misses": misses,
    }

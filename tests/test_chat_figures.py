"""100 questions of the blind set, asked to the chat: every figure in `data` equals the figure that
Python computes from the events for the question's expected plan (tests/plan_oracle.py).

The questions are those of the set's dev part whose expected plans hold exclusions, categories,
comparisons or two-dimensional breakdowns and that the reader reads right; the trail is the demo
trail the set was written for (demo_data.generate, ending at the set's clock), in a collection of
its own.
"""

from typing import Any

import pytest

import chat_service
import rollups
from config import settings
from ingest import insert_documents
from models import ChatRequest
from plan import Plan
from tests.blind_eval import NOW, judge, records, trail
from tests.plan_oracle import evaluate

BLIND_AUDIT = "actions_audit_blind"


def hard(plan: dict[str, Any]) -> bool:
    f = plan.get("filters") or {}
    return bool(
        f.get("exclude")
        or f.get("exclude_categories")
        or f.get("categories")
        or plan.get("compare")
        or len(plan.get("group_by") or []) == 2
    )


def pick(n: int = 100) -> list[dict[str, Any]]:
    """The hard questions first, then others with filters or groupings, among those read right."""
    read_right = [
        r for r in records("dev") if r["plan"] and not r.get("previous") and judge(r).verdict == "right"
    ]
    ranked = sorted(read_right, key=lambda r: (not hard(r["plan"]), r["id"]))
    return ranked[:n]


def cell(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return chat_service.jsonable(value)
    if isinstance(value, float):
        return round(value, 1)
    return value


@pytest.fixture
async def blind_trail(store):
    events, _ = trail()
    previous = store.audit_name
    store.audit_name = BLIND_AUDIT
    if await store.audit.estimated_document_count() != len(events):
        await store.audit.delete_many({})
        await rollups.reset(store)
        await insert_documents(store, [dict(e) for e in events])
        await store.bump_audit_version()
    try:
        yield events
    finally:
        store.audit_name = previous
        await store.bump_audit_version()


@pytest.mark.slow
async def test_figures_of_100_hard_questions_equal_python(store, app, blind_trail):
    questions = pick()
    assert len(questions) == 100
    assert sum(hard(r["plan"]) for r in questions) >= 75
    cache = app.state.answer_cache
    for record in questions:
        request = ChatRequest(message=record["question"])
        response = await chat_service.answer(store, cache=cache, owner="figures", request=request, now=NOW)
        assert response.data is not None, (record["question"], response.answer)
        expected = evaluate(Plan(**record["plan"]), blind_trail, tz=settings.tz)
        got_rows = [[cell(c) for c in row] for row in response.data.rows]
        want_rows = [[cell(c) for c in row] for row in expected.rows]
        assert response.data.columns == list(expected.columns), record["question"]
        assert got_rows == want_rows, record["question"]


async def test_sessions_longer_than_a_duration(store, app, blind_trail):
    question = "Quelles sessions ont duré plus d'une demi-heure la semaine dernière ?"
    request = ChatRequest(message=question)
    response = await chat_service.answer(
        store, cache=app.state.answer_cache, owner="figures", request=request, now=NOW
    )
    plan = Plan.model_validate(response.plan["spec"])
    assert plan.detail and plan.threshold is not None and plan.threshold.value == 1800
    expected = evaluate(plan, blind_trail, tz=settings.tz)
    assert response.data is not None and response.data.total == expected.total == 6
    assert [[cell(c) for c in row] for row in response.data.rows] == [
        [cell(c) for c in row] for row in expected.rows
    ]
    assert response.answer.startswith("6 sessions (plus de 30 min) la semaine dernière"), response.answer

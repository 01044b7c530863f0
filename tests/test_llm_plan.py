"""Questions the rules cannot read, read by the LLM into a plan (llm_plan.py): the real `openai` client
against the scripted OpenAI-compatible server on loopback (tests/fake_openai.py)."""

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from loguru import logger
from pydantic import ValidationError

import answers
import chat_service
import llm_plan
import llm_plan_prompt
import plan_compiler
import rate_limit
from config import settings
from ingest import insert_documents
from plan import CATEGORIES, FIELDS, Filters, Plan
from tests.blind_eval import BLIND
from tests.plan_oracle import evaluate
from tests.test_chat import parse_sse
from tests.test_chat_figures import blind_trail  # noqa: F401 (a fixture)

# Questions the rules leave unread on the demo trail (each test checks it with the LLM off).
TOP_USER = "c'est qui qui trime le plus sur la base ?"
TOP_USER_PLAN = {"measure": "events", "group_by": ["dbusername"], "order": "desc", "limit": 1}


def reply(plan: dict[str, Any] | None) -> str:
    return json.dumps({"plan": plan})


@pytest.fixture
async def llm(fake_llm, monkeypatch, app, store):
    fake_llm.reset()
    monkeypatch.setattr(settings, "OPENAI_API_KEY", "sk-test")
    monkeypatch.setattr(settings, "OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setattr(settings, "OPENAI_MODEL", "fake-model")
    monkeypatch.setattr(settings, "OPENAI_MAX_RETRIES", 1)
    monkeypatch.setattr(settings, "LLM_PLAN_TIMEOUT_SECONDS", 1.0)
    monkeypatch.setattr(settings, "LLM_PLAN_RATE_LIMIT", 50)
    monkeypatch.setattr(llm_plan, "_json_object_only", {})
    for name in (llm_plan.PLANS_COLLECTION, rate_limit.HITS):
        await store[name].delete_many({})
    await app.state.answer_cache.cleanup(everything=True)
    return fake_llm


async def chat(client, headers, question: str, **extra) -> dict[str, Any]:
    r = await client.post("/api/chat/message", json={"message": question, **extra}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def without_llm(client, headers, question: str) -> dict[str, Any]:
    """The answer with no LLM configured: for these questions, the honest "not understood"."""
    key = settings.OPENAI_API_KEY
    settings.OPENAI_API_KEY = None
    try:
        body = await chat(client, headers, question)
    finally:
        settings.OPENAI_API_KEY = key
    assert body["intent"] == "unknown" and body["data"] is None, body["answer"]
    return body


def rows(result) -> list[list[Any]]:
    return [[chat_service.jsonable(c) for c in row] for row in result.rows]


# ---------------------------------------------------------------------------- a valid plan


async def test_valid_plan_is_answered_with_python_figures(client, auditor_headers, demo, llm):
    honest = await without_llm(client, auditor_headers, TOP_USER)
    llm.reply = reply(TOP_USER_PLAN)
    body = await chat(client, auditor_headers, TOP_USER)
    assert body["source"] == "llm_plan" and body["intent"] == "breakdown"
    assert body["answer"].startswith(llm_plan.NOTICE) and body["answer"] != honest["answer"]
    expected = evaluate(Plan(**TOP_USER_PLAN), demo.events, tz=settings.tz)
    assert body["data"]["columns"] == list(expected.columns)
    assert body["data"]["rows"] == rows(expected)
    assert body["data"]["rows"][0][0] in body["answer"]
    # the chips are the same as for a plan the rules read
    view = answers.plan_view(Plan(**TOP_USER_PLAN))
    assert set(body["plan"]) == set(view) and body["plan"]["text"] == view["text"]
    assert body["plan"]["spec"] == view["spec"] == {k: v for k, v in TOP_USER_PLAN.items() if k != "measure"}
    assert body["query"] is not None  # the aggregation the compiler built
    # what the server was sent: structured output with the plan's schema, then the prompt
    sent = llm.requests[-1]["body"]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == llm_plan.reply_schema()
    assert sent["temperature"] == 0 and sent["max_tokens"] == settings.LLM_PLAN_MAX_TOKENS
    system, user_part = (m["content"] for m in sent["messages"])
    assert all(name in system for name in CATEGORIES) and all(f"- {f}:" in system for f in FIELDS)
    assert "Europe/Paris" in user_part and datetime.now(settings.tz).date().isoformat() in user_part
    assert user_part.rstrip().endswith(f"Question: {TOP_USER}")


async def test_values_are_stored_spellings_and_the_prompt_names_only_matching_values(
    client, auditor_headers, demo, llm
):
    question = "qui trime le plus avec hr_app et sqlplus ?"
    await without_llm(client, auditor_headers, question)
    programs = sorted(
        {e["client_program_name"] for e in demo.events if "sqlplus" in e["client_program_name"]}
    )
    plan = {
        "group_by": ["dbusername"],
        "filters": {"include": {"dbusername": ["hr_app"], "client_program_name": programs}},
    }
    llm.reply = reply(plan)
    body = await chat(client, auditor_headers, question)
    assert body["source"] == "llm_plan"
    assert body["plan"]["spec"]["filters"]["include"]["dbusername"] == ["HR_APP"]
    assert "not_found" not in body["entities"]
    known = llm.requests[-1]["body"]["messages"][1]["content"].split("Known values")[1].split("\n\n")[0]
    assert "HR_APP" in known and all(p in known for p in programs)
    assert "SCOTT" not in known and "TPETIT" not in known  # never the whole trail


async def test_a_follow_up_starts_from_the_model_s_plan(client, auditor_headers, demo, llm):
    llm.reply = reply(TOP_USER_PLAN)
    first = await chat(client, auditor_headers, TOP_USER)
    then = await chat(client, auditor_headers, "et hier ?", conversation_id=first["conversation_id"])
    plan_calls = [r for r in llm.requests if "response_format" in r["body"]]
    assert then["source"] != "llm_plan" and len(plan_calls) == 1  # read by the rules (maybe reworded)
    assert then["plan"]["group_by"] == ["dbusername"] and then["plan"]["period"] is not None


async def test_streamed_answer_of_a_model_plan(client, auditor_headers, demo, llm):
    llm.reply = reply(TOP_USER_PLAN)
    r = await client.post("/api/chat/stream", json={"message": TOP_USER}, headers=auditor_headers)
    events = parse_sse(r.text)
    done = json.loads(events[-1][1])
    assert done["source"] == "llm_plan" and done["answer"].startswith(llm_plan.NOTICE)
    assert "".join(d for name, d in events if name == "token") == done["answer"]
    assert len(llm.requests) == 1  # no rewording of an answer whose first sentence is the notice


# ---------------------------------------------------------------------------- refusals and fallbacks


@pytest.mark.parametrize(
    "text",
    [
        "Je pense qu'il s'agit de SCOTT.",  # not JSON
        reply({"measure": "bogus"}),  # not a measure
        reply({"measure": "distinct"}),  # distinct without a field
        reply({"group_by": ["dbusername"], "having": {"kind": "only", "values": ["SELECT"]}, "limit": 0}),
        '{"plan": [1, 2]}',
        reply(None),  # the model says the question is not a plan
    ],
)
async def test_invalid_plan_gives_the_honest_answer(client, auditor_headers, demo, llm, text):
    honest = await without_llm(client, auditor_headers, TOP_USER)
    llm.reply = text
    body = await chat(client, auditor_headers, TOP_USER)
    assert (body["source"], body["answer"], body["data"]) == ("template", honest["answer"], None)
    assert len(llm.requests) == 1


@pytest.mark.parametrize(
    "plan",
    [
        {"group_by": ["salaire"]},
        {"filters": {"include": {"mot_de_passe": ["secret"]}}},
        {"measure": "distinct", "field": "password"},
        {"measure": "events", "sql": "SELECT * FROM dba_users"},
        {"period": {"start": "2026-01-01T00:00:00+01:00", "timezone": "UTC"}},
        {"filters": {"categories": ["salaries"]}},
    ],
)
async def test_a_field_that_does_not_exist_is_refused(client, auditor_headers, demo, llm, plan):
    honest = await without_llm(client, auditor_headers, TOP_USER)
    llm.reply = reply(plan)
    body = await chat(client, auditor_headers, TOP_USER)
    assert (body["source"], body["answer"], body["data"]) == ("template", honest["answer"], None)


async def test_a_value_absent_from_the_data_is_reported(client, auditor_headers, demo, llm):
    question = "c'est quoi le bilan de BZORGLUB sur la base ?"
    await without_llm(client, auditor_headers, question)
    llm.reply = reply({"filters": {"include": {"dbusername": ["BZORGLUB"]}}})
    body = await chat(client, auditor_headers, question)
    assert body["source"] == "llm_plan"
    assert body["data"]["rows"] == [[0]]
    assert "BZORGLUB n'apparaît pas dans la piste d'audit" in body["answer"]
    assert body["entities"]["not_found"] == ["BZORGLUB"]


async def test_a_value_neither_stored_nor_in_the_question_is_refused(client, auditor_headers, demo, llm):
    question = "c'est quoi le bilan de BZORGLUB sur la base ?"
    honest = await without_llm(client, auditor_headers, question)
    llm.reply = reply({"filters": {"include": {"dbusername": ["SCOTTY"]}}})  # invented by the model
    body = await chat(client, auditor_headers, question)
    assert (body["source"], body["answer"]) == ("template", honest["answer"])


async def test_timeout_falls_back_to_the_honest_answer(client, auditor_headers, demo, llm, monkeypatch):
    honest = await without_llm(client, auditor_headers, TOP_USER)
    monkeypatch.setattr(settings, "LLM_PLAN_TIMEOUT_SECONDS", 0.5)
    llm.reply, llm.delay = reply(TOP_USER_PLAN), 5.0
    body = await chat(client, auditor_headers, TOP_USER)
    # the model's reply (after 5 s) would make an LLM answer: the template one shows the reading was cut
    assert (body["source"], body["answer"]) == ("template", honest["answer"])


async def test_server_error_falls_back_to_the_honest_answer(client, auditor_headers, demo, llm):
    honest = await without_llm(client, auditor_headers, TOP_USER)
    llm.reply, llm.status, llm.fail_times = reply(TOP_USER_PLAN), 500, 10
    body = await chat(client, auditor_headers, TOP_USER)
    assert (body["source"], body["answer"]) == ("template", honest["answer"])
    assert len(llm.requests) == settings.OPENAI_MAX_RETRIES + 1
    # a failure is not cached: once the server is back, the question is read
    llm.fail_times = 0
    assert (await chat(client, auditor_headers, TOP_USER))["source"] == "llm_plan"


async def test_servers_without_json_schema_get_json_object(client, auditor_headers, demo, llm):
    llm.reject_formats = {"json_schema"}
    llm.reply = reply(TOP_USER_PLAN)
    body = await chat(client, auditor_headers, TOP_USER)
    assert body["source"] == "llm_plan"
    formats = [r["body"]["response_format"]["type"] for r in llm.requests]
    assert formats == ["json_schema", "json_object"]
    assert '"$defs"' in llm.requests[-1]["body"]["messages"][0]["content"]  # the schema is in the prompt
    llm.reply = "```json\n" + reply({"measure": "sessions"}) + "\n```"  # a fenced reply is read too
    body = await chat(client, auditor_headers, "ça trime comment sur la base en ce moment ?")
    assert body["source"] == "llm_plan" and body["intent"] == "sessions"
    assert llm.requests[-1]["body"]["response_format"]["type"] == "json_object"  # remembered


async def test_disabled_or_unconfigured_never_calls_the_model(
    client, auditor_headers, demo, llm, monkeypatch
):
    monkeypatch.setattr(settings, "LLM_PLAN_ENABLED", False)
    llm.reply = reply(TOP_USER_PLAN)
    body = await chat(client, auditor_headers, TOP_USER)
    assert body["intent"] == "unknown" and llm.requests == []


# ---------------------------------------------------------------------------- injection


INJECTED = "$where: function() { return true }"


def event(user: str, *, sql: str = "SELECT 1 FROM dual", minutes: int = 0) -> dict[str, Any]:
    return {
        "event_timestamp": datetime.now(UTC) - timedelta(hours=1, minutes=minutes),
        "dbusername": user,
        "action_name": "SELECT",
        "return_code": 0,
        "sql_text": sql,
        "session_id": 1000 + minutes,
    }


@pytest.fixture
async def injected_trail(store, scratch_audit):
    events = [
        event("SCOTT", minutes=1),
        event("SCOTT", minutes=2, sql="SELECT $function FROM dual"),
        event(INJECTED, minutes=3),
    ]
    await insert_documents(store, events)
    await store.bump_audit_version()
    return events


async def test_injected_where_in_a_value_is_a_plain_string(client, auditor_headers, llm, injected_trail):
    # stored: the value matches the one event whose user is that very string, not every event
    question = f"le bilan de l'utilisateur {INJECTED} ?"
    llm.reply = reply({"filters": {"include": {"dbusername": [INJECTED]}}})
    body = await chat(client, auditor_headers, question)
    assert body["source"] == "llm_plan" and body["data"]["rows"] == [[1]]
    assert {"dbusername": INJECTED} in _match_clauses(body["query"])
    # not stored: reported absent, and nothing matches (a $where run would match all three)
    question = "le bilan de $where: sleep(100) || true ?"
    llm.reply = reply({"filters": {"include": {"dbusername": ["$where: sleep(100) || true"]}}})
    body = await chat(client, auditor_headers, question)
    assert body["data"]["rows"] == [[0]]
    assert body["entities"]["not_found"] == ["$where: sleep(100) || true"]


async def test_injected_operator_objects_are_refused(client, auditor_headers, llm, injected_trail, store):
    question = 'bilan du compte {"$where": "true"} sur la base ?'
    for plan in (
        {"filters": {"include": {"dbusername": [{"$where": "true"}]}}},
        {"filters": {"include": {"dbusername": {"$where": "true"}}}},
        {"filters": {"exclude": {"$where": ["true"]}}},
        {"group_by": ["dbusername"], "having": {"kind": "only", "values": [{"$function": {"body": "x"}}]}},
        {"sequence": {"first": ["LOGON"], "then": ["SELECT"], "same": ["$where"]}},
    ):
        llm.reply = reply(plan)
        body = await chat(client, auditor_headers, question)
        assert (body["source"], body["intent"], body["data"]) == ("template", "unknown", None), plan
    # the model's reply is cached as text: a key such as "$where" never goes to MongoDB as a field name
    cached = await store[llm_plan.PLANS_COLLECTION].find_one({})
    assert isinstance(cached["reply"], str) and "$where" in cached["reply"]


async def test_function_in_sql_words_and_field_paths_in_expressions_are_literal(
    client, auditor_headers, llm, injected_trail
):
    question = "requêtes avec $function dedans, le bilan ?"
    llm.reply = reply({"filters": {"sql_contains": ["$function"]}})
    body = await chat(client, auditor_headers, question)
    assert body["source"] == "llm_plan" and body["data"]["rows"] == [[1]]  # the one SQL text holding it
    # in an aggregation expression (share), "$dbusername" is a string, not the field: part 0, not 100 %
    question = "quelle part de l'activité revient au compte $dbusername ?"
    llm.reply = reply({"measure": "share", "share_of": {"include": {"dbusername": ["$dbusername"]}}})
    body = await chat(client, auditor_headers, question)
    assert body["source"] == "llm_plan" and body["data"]["rows"] == [[0, 3, 0.0]]


def test_plans_and_the_compiler_refuse_operator_values():
    with pytest.raises(ValidationError):
        Plan.model_validate({"filters": {"include": {"dbusername": [{"$where": "true"}]}}})
    raw = Filters.model_construct(include={"dbusername": [{"$where": "true"}]})
    with pytest.raises(plan_compiler.PlanError):
        plan_compiler.plan_match(raw, None)


def _match_clauses(query: Any) -> list[dict[str, Any]]:
    """Every field condition of the `$match` stages of a pipeline."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$match" and isinstance(value, dict):
                    found.extend({k: v} for k, v in value.items())
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(query)
    return found


# ---------------------------------------------------------------------------- rate limit, cache, logs


async def test_rate_limit_per_user(client, auditor_headers, admin_headers, demo, llm, store, monkeypatch):
    monkeypatch.setattr(settings, "LLM_PLAN_RATE_LIMIT", 2)
    llm.reply = reply(TOP_USER_PLAN)
    questions = [TOP_USER, "qui traîne le plus sur la base ?", "qui glande le plus sur la base ?"]
    bodies = [await chat(client, auditor_headers, q) for q in questions]
    assert [b["source"] for b in bodies] == ["llm_plan", "llm_plan", "template"]
    assert "la limite de 2 questions par période de 60 minutes est atteinte" in bodies[2]["answer"]
    assert len(llm.requests) == 2
    # a cached reading costs nothing, and another user has a budget of its own
    assert (await chat(client, auditor_headers, TOP_USER))["source"] == "llm_plan"
    assert (await chat(client, admin_headers, questions[2]))["source"] == "llm_plan"
    assert len(llm.requests) == 3
    # the calls made are hits of the shared rate limiter (as failed logins are), with their TTL; the
    # refused one is not kept
    calls = await store[rate_limit.HITS].find_one({"_id": "llm_plan:auditor1"})
    assert len(calls["hits"]) == 2 and calls["expires"] > datetime.now(UTC)
    indexes = await store[llm_plan.PLANS_COLLECTION].index_information()
    assert indexes["expires_at_ttl"]["expireAfterSeconds"] == 0
    hit_indexes = (await store[rate_limit.HITS].index_information()).values()
    assert any(i.get("expireAfterSeconds") == 0 for i in hit_indexes)


async def test_rate_limit_holds_under_concurrency_and_frees_with_the_window(store, llm, monkeypatch):
    monkeypatch.setattr(settings, "LLM_PLAN_RATE_LIMIT", 3)
    # The start of the next window: its documents expire in 1–2 h of real time. (A date in 2084, as
    # before, was removed at once by the store's TTL monitor when it ran during a long suite.)
    now = (int(time.time()) // 3600 + 1) * 3600.0
    outcomes = await asyncio.gather(
        *(llm_plan.take_call(store, "racer", now=now) for _ in range(8)), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, llm_plan.RateLimited)]
    assert len(refused) == 5 and all(o.retry_after == 3600 for o in refused)
    with pytest.raises(llm_plan.RateLimited) as exc:
        await llm_plan.take_call(store, "racer", now=now + 3000)
    assert exc.value.retry_after == 600
    await llm_plan.take_call(store, "racer", now=now + 3600)  # the next window


async def test_a_repeated_question_never_calls_the_model_twice(client, auditor_headers, demo, llm, app):
    llm.reply = reply(TOP_USER_PLAN)
    first = await chat(client, auditor_headers, TOP_USER)
    await app.state.answer_cache.cleanup(everything=True)  # the plan cache is not the answer cache
    again = await chat(client, auditor_headers, "C'est qui qui trime le plus sur la base")
    assert len(llm.requests) == 1
    assert again["source"] == "llm_plan" and again["data"] == first["data"]
    # concurrent identical questions share one call too
    question = "qui fait le plus de bruit sur la base ?"
    bodies = await asyncio.gather(*(chat(client, auditor_headers, question) for _ in range(3)))
    assert {b["source"] for b in bodies} == {"llm_plan"} and len(llm.requests) == 2


async def test_cache_lifetime_follows_the_period():
    tz = settings.tz
    now = datetime(2026, 3, 10, 15, 27, 12, tzinfo=tz)
    midnight = datetime(2026, 3, 11, tzinfo=tz)
    whole_days = reply({"period": {"start": "2026-03-09T00:00:00+01:00", "end": "2026-03-10T00:00:00+01:00"}})
    rolling = reply({"period": {"start": "2026-03-10T12:27:12+01:00", "end": None}})
    assert llm_plan._cached_until(whole_days, now) == midnight
    assert llm_plan._cached_until(reply(None), now) == midnight
    assert llm_plan._cached_until(rolling, now) == now + timedelta(seconds=llm_plan.ROLLING_CACHE_SECONDS)


async def test_each_call_is_logged_without_the_question(client, auditor_headers, demo, llm):
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{level} {message}")
    try:
        llm.reply = reply(TOP_USER_PLAN)
        await chat(client, auditor_headers, TOP_USER)
    finally:
        logger.remove(sink)
    calls = [line for line in lines if "llm_plan call" in line]
    assert len(calls) == 1
    assert "outcome=ok" in calls[0] and "duration_ms=" in calls[0]
    assert "prompt_tokens=" in calls[0] and "prompt_tokens=None" not in calls[0]
    assert "completion_tokens=" in calls[0]
    assert not any("trime" in line for line in lines)


# ---------------------------------------------------------------------------- the schema and the prompt


def test_schema_is_derived_from_the_plan():
    schema = llm_plan.plan_schema()
    assert set(schema["properties"]) == set(Plan.model_fields)
    defs = schema["$defs"]
    assert set(defs["Filters"]["properties"]) == set(Filters.model_fields)
    assert set(defs["Values"]["properties"]) == set(FIELDS)
    assert defs["Filters"]["properties"]["categories"]["items"]["enum"] == list(CATEGORIES)
    assert all(d.get("additionalProperties") is False for d in defs.values())
    assert llm_plan.reply_schema()["required"] == ["plan"]


def test_worked_examples_are_valid_plans():
    assert len(llm_plan_prompt.EXAMPLES) >= 5
    for question, plan in llm_plan_prompt.EXAMPLES:
        if plan is not None:
            Plan.model_validate(plan)
        assert json.dumps({"plan": plan}, ensure_ascii=False) in llm_plan.system_prompt(), question


# ---------------------------------------------------------------------------- the plumbing on the blind set


@pytest.mark.slow
async def test_plumbing_on_unread_blind_questions(store, app, blind_trail, llm):  # noqa: F811
    """bench/llm_plan.py on a few questions: the right plan from the model gives the right figures."""
    from bench.llm_plan import measure, unread

    recs = unread(BLIND)[:12]
    assert len(recs) == 12
    outcomes = await measure(store, app.state.answer_cache, llm, recs)
    assert [(o.record["id"], o.verdict) for o in outcomes] == [(r["id"], "right") for r in recs]

"""The plumbing of llm_plan, measured: on the blind sets' questions that the rules leave unread, the share
that becomes a correct answer when the model returns the right plan.

The model is scripted (tests/fake_openai.py on loopback, reached through the real `openai` client): for
each question it returns the set's expected plan, so this measures everything around the model — the
prompt, structured output, parsing, validation against the plan and the data, the compiler, MongoDB
and the answer — and nothing of any model's skill. A question is:
- right: the chat answers with source "llm_plan" and its table equals the one Python computes from the
  events for the expected plan (tests/plan_oracle.py; without a limit, rows in any order);
- wrong: it answers with other figures;
- refused: the plan was refused (the chat gave its honest "not understood").

The trail is the demo trail the sets were written for (demo_data.generate ending at their clock), in an
embedded store in a temporary directory.

    .venv/bin/python bench/llm_plan.py [--misses]
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.blind_eval import BLIND, BLIND_2, BLIND_3, BLIND_4, BLIND_5, NOW, TZ, records, trail  # noqa: E402

SETS = {"first": BLIND, "second": BLIND_2, "third": BLIND_3, "fourth": BLIND_4, "fifth": BLIND_5}
BLIND_AUDIT = "actions_audit_blind"  # the collection tests/test_chat_figures.py loads too


def unread(path: Path) -> list[dict[str, Any]]:
    """The questions with an expected answer that the rules read as "not understood"."""
    from understand import read

    _, gaz = trail()
    out = []
    for record in records("all", path):
        if record["expect"] != "answer":
            continue
        previous = None
        for q in record.get("previous") or []:
            before = read(q, gaz, now=NOW, tz=TZ, previous=previous)
            previous = before.plan if before.kind == "plan" else previous
        if read(record["question"], gaz, now=NOW, tz=TZ, previous=previous).kind == "not_understood":
            out.append(record)
    return out


class ScriptedModel:
    """The fake server's script: the expected plan of the question in the prompt, else null."""

    def __init__(self, recs: list[dict[str, Any]]) -> None:
        self.plans = {r["question"]: r["plan"] for r in recs}

    def __call__(self, body: dict[str, Any]) -> str:
        if "response_format" not in body:  # a wording request: none wanted here
            return ""
        question = body["messages"][-1]["content"].rsplit("Question: ", 1)[1].strip()
        return json.dumps({"plan": self.plans.get(question)}, ensure_ascii=False)


@dataclass
class Outcome:
    record: dict[str, Any]
    verdict: str  # right, wrong, refused
    why: str = ""
    answer: str = ""


def _cell(value: Any) -> Any:
    import chat_service

    if hasattr(value, "isoformat"):
        return chat_service.jsonable(value)
    return round(value, 1) if isinstance(value, float) else value


async def ask(store, cache, record: dict[str, Any]) -> Outcome:
    """The question through the chat (previous questions first, in the same conversation)."""
    import chat_service
    import llm_plan
    from models import ChatRequest
    from nlp_lexicon import gazetteer
    from plan import Plan
    from tests.plan_oracle import evaluate

    conversation = uuid.uuid4().hex
    for q in record.get("previous") or []:
        request = ChatRequest(message=q, conversation_id=conversation)
        await chat_service.answer(store, cache=cache, owner="bench", request=request, now=NOW)
    request = ChatRequest(message=record["question"], conversation_id=conversation)
    response = await chat_service.answer(store, cache=cache, owner="bench", request=request, now=NOW)
    if response.source != "llm_plan" or response.data is None:
        try:
            llm_plan.validate(record["plan"], await gazetteer(store), question=record["question"], tz=TZ)
            why = response.answer[:120]
        except llm_plan.LLMPlanError as exc:
            why = str(exc)
        return Outcome(record, "refused", why)
    events, _ = trail()
    expected = evaluate(Plan(**record["plan"]), events, tz=TZ)
    # With no limit every row is there: the rows are compared as a set, since the order of ties (a rounded
    # percent) and the default order of `first` are presentation choices where the independent oracle
    # decided otherwise (its "DECISION" notes). With a limit, the order decides which rows are kept.
    limited = Plan(**record["plan"]).limit is not None
    got = [[_cell(c) for c in row] for row in response.data.rows]
    want = [[_cell(c) for c in row] for row in expected.rows]
    if response.data.columns == list(expected.columns) and (
        got == want or (not limited and _same_rows(got, want))
    ):
        return Outcome(record, "right", answer=response.answer)
    diff = [(g, w) for g, w in zip(got, want, strict=False) if g != w]
    return Outcome(record, "wrong", f"{len(got)} rows vs {len(want)}; first differences: {diff[:3]}")


def _same_rows(got: list[list[Any]], want: list[list[Any]]) -> bool:
    return sorted(map(repr, got)) == sorted(map(repr, want))


async def load_trail(store) -> None:
    from ingest import insert_documents

    events, _ = trail()
    store.audit_name = BLIND_AUDIT
    if await store.audit.estimated_document_count() != len(events):
        await store.audit.delete_many({})
        await insert_documents(store, [dict(e) for e in events])
        await store.bump_audit_version()


def configure_llm(server) -> None:
    from config import settings

    settings.OPENAI_API_KEY = "sk-bench"
    settings.OPENAI_BASE_URL = server.base_url
    settings.OPENAI_MODEL = "scripted"
    settings.OPENAI_MAX_RETRIES = 0
    settings.LLM_PLAN_RATE_LIMIT = 0


async def measure(store, cache, server, recs: list[dict[str, Any]]) -> list[Outcome]:
    import llm_plan

    await store[llm_plan.PLANS_COLLECTION].delete_many({})
    server.script = ScriptedModel(recs)
    return [await ask(store, cache, r) for r in recs]


def table(results: dict[str, tuple[int, list[Outcome]]]) -> str:
    lines = [
        "| set | answerable questions | unread by the rules | right | wrong | refused |",
        "|---|---|---|---|---|---|",
    ]
    total: Counter = Counter()
    for name, (answerable, outcomes) in results.items():
        c = Counter(o.verdict for o in outcomes)
        n = len(outcomes)
        total.update(c)
        total["n"] += n
        total["answerable"] += answerable
        cells = [f"{c[v]} ({100 * c[v] / n:.1f} %)" if n else "0" for v in ("right", "wrong", "refused")]
        lines.append(f"| {name} | {answerable} | {n} | " + " | ".join(cells) + " |")
    n = total["n"]
    cells = [f"{total[v]} ({100 * total[v] / n:.1f} %)" if n else "0" for v in ("right", "wrong", "refused")]
    lines.append(f"| **all** | {total['answerable']} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-llm-plan-"))
    os.environ.pop("MONGODB_URI", None)
    os.environ.update(
        EMBEDDED_DATA_DIR=str(data_dir), SQLITE_DB_PATH=str(data_dir / "cache.db"), SEED_DEMO_DATA="false",
        SECRET_KEY="bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz", ADMIN_USERNAME="bench",
        ADMIN_PASSWORD="bench-password-1", LOG_LEVEL="WARNING", DEBUG="false", OPENAI_API_KEY="",
    )  # fmt: skip
    from main import app
    from tests.fake_openai import FakeOpenAI

    server = FakeOpenAI().start()
    try:
        async with app.router.lifespan_context(app):
            store, cache = app.state.store, app.state.answer_cache
            t0 = time.perf_counter()
            await load_trail(store)
            print(f"trail loaded in {time.perf_counter() - t0:.0f} s", flush=True)
            configure_llm(server)
            results: dict[str, tuple[int, list[Outcome]]] = {}
            for name, path in SETS.items():
                recs = unread(path)
                answerable = sum(r["expect"] == "answer" for r in records("all", path))
                t0 = time.perf_counter()
                results[name] = (answerable, await measure(store, cache, server, recs))
                print(f"{name}: {len(recs)} questions in {time.perf_counter() - t0:.0f} s", flush=True)
            if args.misses:
                for _, outcomes in results.values():
                    for o in outcomes:
                        if o.verdict != "right":
                            print(f"[{o.verdict}] {o.record['id']}: {o.record['question']}\n   {o.why}")
            print(table(results))
            outcomes = [o for _, found in results.values() for o in found]
            absent = [o for o in outcomes if o.record["absent"]]
            said = [o for o in absent if all(a in o.answer for a in o.record["absent"])]
            follow = sum(bool(o.record.get("previous")) for o in outcomes)
            print(
                f"follow-ups: {follow}; naming values absent from the trail: {len(absent)}, "
                f"whose answer names every absent value: {len(said)}"
            )
            sizes = sorted(
                sum(len(m["content"]) for m in r["body"]["messages"])
                for r in server.requests
                if "response_format" in r["body"]
            )
            print(
                f"model requests: {len(sizes)}; prompt size: median {sizes[len(sizes) // 2]:,} characters "
                f"(~{sizes[len(sizes) // 2] // 4:,} tokens), largest {sizes[-1]:,}"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--misses", action="store_true", help="print the questions not answered right")
    asyncio.run(main(parser.parse_args()))

"""The chat with an LLM: the real `openai` client against the fake OpenAI-compatible server on loopback."""

import json

import pytest

from config import settings
from tests.test_chat import parse_sse

QUESTION = "Combien de connexions échouées cette semaine ?"


@pytest.fixture
async def llm(fake_llm, monkeypatch, app):
    fake_llm.reset()
    monkeypatch.setattr(settings, "OPENAI_API_KEY", "sk-test")
    monkeypatch.setattr(settings, "OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setattr(settings, "OPENAI_MODEL", "fake-model")
    monkeypatch.setattr(settings, "OPENAI_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(settings, "OPENAI_MAX_RETRIES", 1)
    await app.state.answer_cache.cleanup(everything=True)  # every test words its answer afresh
    return fake_llm


async def template_of(client, headers, question: str) -> dict:
    """The same question answered with no LLM (settings restored by the caller's monkeypatch)."""
    key = settings.OPENAI_API_KEY
    settings.OPENAI_API_KEY = None
    try:
        r = await client.post("/api/chat/message", json={"message": question}, headers=headers)
    finally:
        settings.OPENAI_API_KEY = key
    return r.json()


async def chat(client, headers, question: str = QUESTION) -> dict:
    r = await client.post("/api/chat/message", json={"message": question}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_normal_answer_is_worded_by_the_llm(client, auditor_headers, demo, llm):
    template = await template_of(client, auditor_headers, QUESTION)
    count = template["data"]["rows"][0][0]
    llm.reply = f"Cette semaine, {count} tentatives de connexion ont échoué."
    body = await chat(client, auditor_headers)
    assert (body["source"], body["answer"]) == ("llm", llm.reply)
    assert body["data"] == template["data"]
    prompt = llm.requests[-1]["body"]["messages"][1]["content"]
    assert template["answer"] in prompt and QUESTION in prompt
    again = await chat(client, auditor_headers)
    assert again["cached"] and again["source"] == "llm" and len(llm.requests) == 1


async def test_streamed_answer_forwards_llm_tokens(client, auditor_headers, demo, llm):
    question = "Quels sont les utilisateurs les plus actifs cette semaine ?"
    template = await template_of(client, auditor_headers, question)
    user, n = template["data"]["rows"][0]
    llm.reply = f"L'utilisateur le plus actif cette semaine est {user}, avec {n} événements."
    r = await client.post("/api/chat/stream", json={"message": question}, headers=auditor_headers)
    events = parse_sse(r.text)
    tokens = [data for name, data in events if name == "token"]
    done = json.loads(events[-1][1])
    assert events[0][0] == "meta" and events[-1][0] == "done"
    assert len(tokens) > 5 and "".join(tokens) == llm.reply
    assert (done["source"], done["answer"]) == ("llm", llm.reply)
    assert llm.requests[-1]["body"]["stream"] is True


async def test_timeout_falls_back_to_the_template(client, auditor_headers, demo, llm):
    question = "Combien de connexions échouées hier ?"
    template = await template_of(client, auditor_headers, question)
    llm.delay = 2.0
    body = await chat(client, auditor_headers, question)
    assert (body["source"], body["answer"]) == ("template", template["answer"])
    assert len(llm.requests) == 2  # tried, retried once, then the template
    assert not (await chat(client, auditor_headers, question))["cached"]  # a fallback is not cached


async def test_server_error_falls_back_to_the_template(client, auditor_headers, demo, llm):
    question = "Quelles erreurs ont eu lieu cette semaine ?"
    template = await template_of(client, auditor_headers, question)
    llm.status, llm.fail_times = 500, 10
    body = await chat(client, auditor_headers, question)
    assert (body["source"], body["answer"]) == ("template", template["answer"])
    assert len(llm.requests) == 2
    r = await client.post("/api/chat/stream", json={"message": question}, headers=auditor_headers)
    events = parse_sse(r.text)
    done = json.loads(events[-1][1])
    assert (done["source"], done["answer"]) == ("template", template["answer"])
    assert "".join(d for name, d in events if name == "token") == template["answer"]


async def test_invented_figure_is_replaced_by_the_template(client, auditor_headers, demo, llm):
    question = "Quelles sont les actions les plus fréquentes cette semaine ?"
    template = await template_of(client, auditor_headers, question)
    llm.reply = "Il y a eu 987654 SELECT cette semaine, un record."
    body = await chat(client, auditor_headers, question)
    assert (body["source"], body["answer"]) == ("template", template["answer"])
    # streamed: the invented figure never leaves; `done` carries the template answer
    llm.reply = "Cette semaine, les SELECT dominent avec 987654 occurrences."
    r = await client.post("/api/chat/stream", json={"message": question}, headers=auditor_headers)
    events = parse_sse(r.text)
    streamed = "".join(d for name, d in events if name == "token")
    assert "987654" not in streamed and streamed.startswith("Cette semaine, les SELECT dominent avec ")
    done = json.loads(events[-1][1])
    assert (done["source"], done["answer"]) == ("template", template["answer"])


async def test_health_reports_the_llm(client, llm):
    body = (await client.get("/api/health")).json()
    assert body["dependencies"]["llm"]["status"] == "up"

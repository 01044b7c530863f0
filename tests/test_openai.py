"""openai_service through the real `openai` client against the fake server on loopback."""

import pytest

import openai_service
from config import settings

TEMPLATE = "Il y a eu 36 échecs de connexion sur SYSTEM depuis WS-EXT-4471."
DATA = {"columns": ["dbusername", "count"], "rows": [["SYSTEM", 36]], "total": 1}


@pytest.fixture
def llm(fake_llm, monkeypatch):
    fake_llm.reset()
    monkeypatch.setattr(settings, "OPENAI_API_KEY", "sk-test")
    monkeypatch.setattr(settings, "OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setattr(settings, "OPENAI_MODEL", "fake-model")
    monkeypatch.setattr(settings, "OPENAI_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(settings, "OPENAI_MAX_RETRIES", 1)
    return fake_llm


async def test_normal_answer_uses_the_prompt_and_the_key(llm):
    llm.reply = "SYSTEM a subi 36 tentatives de connexion refusées."
    text = await openai_service.word_answer("Combien d'échecs ?", template=TEMPLATE, data=DATA)
    assert text == llm.reply
    request = llm.requests[0]
    assert request["authorization"] == "Bearer sk-test"
    assert request["body"]["model"] == "fake-model"
    system, user = request["body"]["messages"]
    assert "uniquement" in system["content"]
    assert TEMPLATE in user["content"] and '"SYSTEM", 36' in user["content"]


async def test_streamed_answer_arrives_in_pieces(llm):
    llm.reply = "SYSTEM a subi 36 tentatives refusées, toutes depuis WS-EXT-4471."
    pieces = [p async for p in openai_service.stream_answer("Combien ?", template=TEMPLATE, data=DATA)]
    assert "".join(pieces) == llm.reply
    assert len(pieces) > 3


async def test_timeout_is_retried_then_fails(llm):
    llm.delay = 1.5
    with pytest.raises(openai_service.LLMError, match="Timeout"):
        await openai_service.word_answer("Combien ?", template=TEMPLATE, data=DATA)
    assert len(llm.requests) == 2  # the first try and one retry


async def test_500_is_retried_and_recovers(llm):
    llm.status, llm.fail_times = 500, 1
    llm.reply = "Il y a eu 36 échecs."
    assert await openai_service.word_answer("Combien ?", template=TEMPLATE, data=DATA) == llm.reply
    assert len(llm.requests) == 2


async def test_500_every_time_fails(llm):
    llm.status, llm.fail_times = 500, 10
    with pytest.raises(openai_service.LLMError, match="InternalServerError"):
        await openai_service.word_answer("Combien ?", template=TEMPLATE, data=DATA)
    assert len(llm.requests) == 2


async def test_client_error_is_not_retried(llm):
    llm.status, llm.fail_times = 401, 10
    with pytest.raises(openai_service.LLMError):
        await openai_service.word_answer("Combien ?", template=TEMPLATE, data=DATA)
    assert len(llm.requests) == 1


async def test_invented_figure_is_rejected(llm):
    llm.reply = "Il y a eu 36 échecs, soit 12,5 % des 2 880 connexions."
    with pytest.raises(openai_service.InventedFigure) as info:
        await openai_service.word_answer("Combien ?", template=TEMPLATE, data=DATA)
    assert info.value.figure == "12,5"


async def test_streamed_invented_figure_never_leaves(llm):
    llm.reply = "Il y a eu 36 échecs sur 4242 tentatives au total."
    llm.chunk_size = 2
    sent = []
    with pytest.raises(openai_service.InventedFigure):
        async for piece in openai_service.stream_answer("Combien ?", template=TEMPLATE, data=DATA):
            sent.append(piece)
    assert "".join(sent) == "Il y a eu 36 échecs sur "


def test_figures_read_french_numbers():
    assert openai_service.figures("20 000 événements, 1,5 % et ORA-01017") >= {"20000", "1.5", "1017"}
    allowed = openai_service.allowed_figures("2025-11-19T03:12", rows=[[36]])
    assert openai_service.invented("Le 19/11/2025 à 03:12, 36 échecs.", allowed) == []
    assert openai_service.invented("37 échecs", allowed) == ["37"]

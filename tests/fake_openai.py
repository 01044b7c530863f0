"""A small OpenAI-compatible chat-completions server on loopback, for driving the real `openai` client.

It runs uvicorn in a thread with its own event loop. Tests set what it does next:
`reply` (the text), `status` (an HTTP error status for the next `fail_times` calls), `delay`
(seconds before answering), `chunks` (how the streamed text is cut). Every request is recorded.
"""

import asyncio
import json
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from database import free_port


class FakeOpenAI:
    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[dict[str, Any]] = []
        self.reset()
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._completions, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-openai", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        self.reply = "D'accord."
        self.status: int | None = None
        self.fail_times = 0
        self.delay = 0.0
        self.chunk_size = 4
        self.requests.clear()

    def start(self) -> "FakeOpenAI":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    async def _models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def _completions(self, request: Request):
        body = await request.json()
        self.requests.append({"body": body, "authorization": request.headers.get("authorization")})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status and self.fail_times > 0:
            self.fail_times -= 1
            return JSONResponse(
                {"error": {"message": "simulated failure", "type": "server_error", "code": None}},
                status_code=self.status,
            )
        model = body.get("model", "fake-model")
        if body.get("stream"):
            return StreamingResponse(self._stream(model, self.reply), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            }
        )

    async def _stream(self, model: str, text: str):
        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(payload)}\n\n"

        yield chunk({"role": "assistant", "content": ""})
        for i in range(0, len(text), self.chunk_size):
            await asyncio.sleep(0.001)
            yield chunk({"content": text[i : i + self.chunk_size]})
        yield chunk({}, "stop")
        yield "data: [DONE]\n\n"

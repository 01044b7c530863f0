"""A small OpenAI-compatible chat-completions server on loopback, for driving the real `openai` client.

It runs uvicorn in a thread with its own event loop. Tests set what it does next:
`reply` (the text), `replies` (texts for the next requests, in order, before `reply`), `script` (a
function of the request body giving the text, e.g. a plan chosen by the question), `status` (an HTTP
error status for the next `fail_times` calls), `delay` (seconds before answering), `reject_formats`
(`response_format` types answered with 400, as servers that do not know them do), `chunk_size` (how
the streamed text is cut). Every request is recorded.
"""

import asyncio
import json
import threading
import time
from collections.abc import Callable
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
        self.replies: list[str] = []
        self.script: Callable[[dict[str, Any]], str] | None = None
        self.reject_formats: set[str] = set()
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
        fmt = (body.get("response_format") or {}).get("type")
        if fmt in self.reject_formats:
            return JSONResponse(
                {"error": {"message": f"unknown response_format {fmt}", "type": "invalid_request_error"}},
                status_code=400,
            )
        model = body.get("model", "fake-model")
        if self.script is not None:
            reply = self.script(body)
        elif self.replies:
            reply = self.replies.pop(0)
        else:
            reply = self.reply
        if body.get("stream"):
            return StreamingResponse(self._stream(model, reply), media_type="text/event-stream")
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(reply) // 4,
                    "total_tokens": prompt_tokens + len(reply) // 4,
                },
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

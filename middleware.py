"""Pure ASGI middleware: request id, one log line per request, body limits and a token check before the body.

A body is read only when the request may have it: the route's size limit is checked as it arrives
(a few KB for JSON routes, the upload size on upload routes), and a request to a protected route
without a valid token is refused before its first byte is read.
"""

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The default policy: own scripts and styles only, never framed. Pages that need more (the API docs)
# set their own header in routes/web.py, which this one does not replace.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-security-policy", CSP.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]
    if path.startswith("/api/"):  # tokens and audit data: never kept by a browser or a proxy
        headers.append((b"cache-control", b"no-store"))
    return headers


@dataclass(frozen=True)
class BodyPolicy:
    """What a route accepts: at most `limit` bytes; `public` routes need no token (login, register)."""

    limit: int
    public: bool = False


class BodyTooLarge(Exception):
    pass


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: Callable[[str, str], BodyPolicy],
        token_ok: Callable[[str], bool],
    ) -> None:
        self.app = app
        self.policy = policy  # (method, path) -> BodyPolicy
        self.token_ok = token_ok  # a signed, unexpired token (the route still checks the user)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                own = list(message.get("headers") or [])
                names = {name.lower() for name, _ in own}
                extra = [(n, v) for n, v in security_headers(scope["path"]) if n not in names]
                message["headers"] = [*own, *extra, (b"x-request-id", rid.encode())]
            await send(message)

        method = scope["method"]
        policy = self.policy(method, scope["path"])
        received = 0
        too_large = False

        async def receive_wrapper() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > policy.limit:
                    too_large = True
                    raise BodyTooLarge
            return message

        replaced = False

        async def guarded_send(message: Message) -> None:
            # The app answers a body cut short with its own error (400): the client is told 413.
            nonlocal replaced
            if too_large and not response_started and message["type"] == "http.response.start":
                replaced = True
                await self._error(send_wrapper, rid, 413, "payload_too_large", self._too_large_text(policy))
                return
            if not replaced:
                await send_wrapper(message)

        try:
            length = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            length = 0
        has_body = method in ("POST", "PUT", "PATCH") or length > 0
        try:
            if has_body and not policy.public and not self._has_token(headers):
                await self._error(
                    send_wrapper,
                    rid,
                    401,
                    "not_authenticated",
                    "Authentification requise.",
                    [(b"www-authenticate", b"Bearer")],
                )
                return
            if length > policy.limit:
                raise BodyTooLarge
            await self.app(scope, receive_wrapper, guarded_send)
        except BodyTooLarge:
            if not response_started:
                await self._error(send_wrapper, rid, 413, "payload_too_large", self._too_large_text(policy))
        finally:
            logger.info(
                "{} {} {} {:.1f}ms rid={}",
                method,
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                rid,
            )

    def _has_token(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        return scheme.lower() == "bearer" and bool(token) and self.token_ok(token.strip())

    @staticmethod
    def _too_large_text(policy: BodyPolicy) -> str:
        size = f"{policy.limit // 2**20} Mo" if policy.limit >= 2**20 else f"{policy.limit // 1024} Ko"
        return f"Requête trop volumineuse (limite {size})."

    @staticmethod
    async def _error(
        send: Send,
        rid: str,
        status: int,
        code: str,
        detail: str,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        body = json.dumps({"detail": detail, "code": code, "request_id": rid}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *(extra or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def body_policies(
    *, json_limit: int, uploads: dict[tuple[str, str], int], public: set[str], prefix: str = "/api/"
) -> Callable[[str, str], BodyPolicy]:
    """The policy of each route: uploads get their own size, other API routes `json_limit` and a token."""

    def policy(method: str, path: str) -> BodyPolicy:
        path = path.rstrip("/") or "/"
        limit = uploads.get((method, path), json_limit)
        return BodyPolicy(limit=limit, public=path in public or not path.startswith(prefix))

    return policy

"""Every route of the app, including ones added later, is guarded: 401 without a valid token except
the public ones, 403 for an auditor on admin routes.

Admin routes are recognised by their path (the contract's list), not by looking at their
dependencies: a route that forgets its AdminUser guard then fails here.
"""

import asyncio
import re
import uuid

import pytest
from fastapi import routing as fastapi_routing
from starlette.routing import Mount, Route, WebSocketRoute

PUBLIC = {
    "/api/health",
    "/api/info",
    "/api/auth/login",
    "/api/auth/register",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/docs/oauth2-redirect",
    "/",  # the web page (its API calls carry the token)
    "/favicon.ico",
}

ADMIN_PATHS = [
    re.compile(p)
    for p in (
        r"^/api/oracle(/|$)",
        r"^/api/audit/import$",
        r"^/api/cache/cleanup$",
        r"^/api/auth/users(/|$)",
        r"^/api/files/\{[^/}]+\}/import$",
    )
]

DUMMY = {"int": "1", "float": "1.5", "uuid": str(uuid.UUID(int=1)), "path": "dummy/path"}
PARAM = re.compile(r"\{([^}:]+)(?::([^}]+))?\}")
TIMEOUT = 15


def is_admin_path(path: str) -> bool:
    return any(p.search(path) for p in ADMIN_PATHS)


def flatten(routes):
    """(original route, effective path, methods); FastAPI >= 0.13x keeps included routers lazy."""
    iter_contexts = getattr(fastapi_routing, "iter_route_contexts", None)
    if iter_contexts is None:
        for route in routes:
            yield route, getattr(route, "path", ""), getattr(route, "methods", None)
        return
    for context in iter_contexts(routes):
        yield context.original_route, context.path or "", context.methods


def walk(routes, prefix: str = ""):
    """(method, path template) for every HTTP endpoint, mounted apps and routers included."""
    for route, path, methods in flatten(routes):
        if isinstance(route, WebSocketRoute):
            pytest.fail(f"WebSocket route {path}: extend this test to check its guard")
        elif isinstance(route, Mount):
            if getattr(route, "routes", None):
                yield from walk(route.routes, prefix + path)
            else:  # static files or a foreign app
                assert not (prefix + path).startswith("/api"), f"unchecked mount {path}"
        elif isinstance(route, Route):
            for method in sorted(methods or {"GET"}):
                if method != "HEAD":
                    yield method, prefix + path
        else:
            pytest.fail(f"unknown kind of route {route!r}: extend this test to check its guard")


def concrete(path: str) -> str:
    return PARAM.sub(lambda m: DUMMY.get(m.group(2) or "", "dummy"), path)


def endpoints(app) -> list[tuple[str, str]]:
    found = sorted(set(walk(app.routes)))
    assert len(found) > 5
    return found


async def call(client, method: str, path: str, headers: dict[str, str] | None = None):
    # No body: validation comes after the guards, so an empty request must still get 401/403.
    request = client.request(method, concrete(path), headers=headers or {})
    try:
        return await asyncio.wait_for(request, TIMEOUT)
    except TimeoutError:
        pytest.fail(f"{method} {path} did not answer within {TIMEOUT}s (guard inside a stream?)")


async def test_every_route_needs_a_token_except_the_public_ones(app, client):
    routes = endpoints(app)
    bad_tokens = {None: "none", "Bearer not-a-jwt": "garbage", "Basic YWRtaW46YWRtaW4=": "basic auth"}
    unguarded, public_seen = [], set()
    for method, path in routes:
        if path in PUBLIC:
            public_seen.add(path)
            r = await call(client, method, path)
            assert r.status_code != 401, f"{method} {path} is public but asked for a token"
            continue
        for authorization, label in bad_tokens.items():
            headers = {"Authorization": authorization} if authorization else {}
            r = await call(client, method, path, headers)
            if r.status_code != 401:
                unguarded.append(f"{method} {path} ({label} token): {r.status_code}")
                continue
            assert r.json()["code"] == "not_authenticated"
            assert r.headers["www-authenticate"] == "Bearer"
    assert not unguarded, "routes without a token guard:\n" + "\n".join(unguarded)
    assert public_seen == PUBLIC


async def test_every_admin_route_refuses_an_auditor(app, client, auditor_headers):
    admin_routes = [(m, p) for m, p in endpoints(app) if is_admin_path(p)]
    assert ("GET", "/api/auth/users") in admin_routes
    assert ("PATCH", "/api/auth/users/{username}") in admin_routes
    open_to_auditors = []
    for method, path in admin_routes:
        r = await call(client, method, path, auditor_headers)
        if r.status_code != 403:
            open_to_auditors.append(f"{method} {path}: {r.status_code}")
        else:
            assert r.json()["code"] == "forbidden"
    assert not open_to_auditors, "admin routes an auditor can reach:\n" + "\n".join(open_to_auditors)


def test_admin_path_rules():
    assert is_admin_path("/api/oracle/execute-sql") and is_admin_path("/api/oracle/metrics/stream")
    assert is_admin_path("/api/files/{file_id}/import") and is_admin_path("/api/auth/users/{username}")
    assert is_admin_path("/api/audit/import") and is_admin_path("/api/cache/cleanup")
    assert not is_admin_path("/api/audit/search") and not is_admin_path("/api/cache/stats")
    assert not is_admin_path("/api/files/{file_id}") and not is_admin_path("/api/auth/me")
    assert concrete("/api/files/{file_id}/import") == "/api/files/dummy/import"
    assert concrete("/x/{n:int}/{rest:path}") == "/x/1/dummy/path"

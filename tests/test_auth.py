"""Accounts, passwords, JWT, roles, user management and login throttling."""

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
from jose import jwt
from loguru import logger
from pwdlib.hashers.bcrypt import BcryptHasher

import auth
from config import ConfigError, Settings, settings
from login_throttle import LoginThrottle

PASSWORD = "correct-horse-battery"


class FakeClock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
async def throttle(app):
    """A fresh throttle on a fake clock for each test, so failed logins here lock nothing else."""
    original = app.state.login_throttle
    clock = FakeClock()
    await original.reset()
    app.state.login_throttle = LoginThrottle(
        app.state.store,
        max_attempts=settings.LOGIN_MAX_ATTEMPTS,
        window_seconds=settings.LOGIN_WINDOW_MINUTES * 60,
        clock=clock,
    )
    yield SimpleNamespace(throttle=app.state.login_throttle, clock=clock)
    app.state.login_throttle = original


def uniq(prefix: str = "user") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def register(client, username: str | None = None, password: str = PASSWORD) -> str:
    username = username or uniq()
    r = await client.post(
        "/api/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": password},
    )
    assert r.status_code == 201, r.text
    return username


async def login(client, username: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/auth/login", data={"username": username, "password": password})


async def bearer(client, username: str, password: str = PASSWORD) -> dict[str, str]:
    r = await login(client, username, password)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def make_admin(store, client) -> tuple[str, dict[str, str]]:
    name = uniq("admin")
    await auth.create_user(store, username=name, email=f"{name}@example.com", password=PASSWORD, role="admin")
    return name, await bearer(client, name)


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# --------------------------------------------------------------------------- accounts


async def test_register_login_me(client):
    name = uniq()
    r = await client.post(
        "/api/auth/register", json={"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    )
    assert r.status_code == 201
    body = r.json()
    assert body["username"] == name and body["role"] == "auditor" and body["is_active"] is True
    assert "password" not in r.text and "hash" not in r.text

    form = await login(client, name)
    as_json = await client.post("/api/auth/login", json={"username": name.upper(), "password": PASSWORD})
    for r in (form, as_json):
        assert r.status_code == 200, r.text
        token = r.json()
        assert (
            token["token_type"] == "bearer"
            and token["expires_in"] == settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60
        )
        claims = jwt.get_unverified_claims(token["access_token"])
        assert {"sub", "role", "iat", "exp"} <= set(claims) and claims["role"] == "auditor"
    me = await client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {as_json.json()['access_token']}"}
    )
    assert me.status_code == 200 and me.json()["username"] == name
    assert "hash" not in me.text


async def test_registration_closed(client, monkeypatch):
    monkeypatch.setattr(settings, "ALLOW_REGISTRATION", False)
    name = uniq()
    r = await client.post(
        "/api/auth/register", json={"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    )
    assert r.status_code == 403 and r.json()["code"] == "registration_closed"


async def test_duplicates_are_case_insensitive(client):
    name = await register(client)
    r = await client.post(
        "/api/auth/register",
        json={"username": name.upper(), "email": f"other_{name}@example.com", "password": PASSWORD},
    )
    assert r.status_code == 409 and r.json()["code"] == "username_taken"
    r = await client.post(
        "/api/auth/register",
        json={"username": uniq(), "email": f"{name}@EXAMPLE.com".upper(), "password": PASSWORD},
    )
    assert r.status_code == 409 and r.json()["code"] == "email_taken"


@pytest.mark.parametrize(("length", "status"), [(7, 422), (8, 201), (128, 201), (129, 422)])
async def test_password_length_8_to_128_without_other_rules(client, length, status):
    name = uniq()
    password = "a" * length
    r = await client.post(
        "/api/auth/register", json={"username": name, "email": f"{name}@example.com", "password": password}
    )
    assert r.status_code == status
    assert password not in r.text


async def test_new_hashes_are_argon2id(client, store):
    name = await register(client)
    user = await auth.get_user(store, name)
    assert user["hashed_password"].startswith("$argon2id$")


async def test_bcrypt_hash_is_upgraded_to_argon2id_at_login(client, store):
    name = uniq("legacy")
    await store.users.insert_one(
        {
            "username": name,
            "username_key": name.casefold(),
            "email": f"{name}@example.com",
            "email_key": f"{name}@example.com".casefold(),
            "hashed_password": BcryptHasher().hash(PASSWORD),
            "role": "auditor",
            "is_active": True,
        }
    )
    assert (await login(client, name, "wrong-password")).status_code == 401
    assert (await auth.get_user(store, name))["hashed_password"].startswith("$2b$")
    assert (await login(client, name)).status_code == 200
    assert (await auth.get_user(store, name))["hashed_password"].startswith("$argon2id$")
    assert (await login(client, name)).status_code == 200


async def test_admin_bootstrap_keeps_sessions_when_nothing_changes(client, store):
    name, headers = await make_admin(store, client)
    await auth.ensure_admin(store, username=name, password=PASSWORD, email=None)
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
    # A reset (new password, or the account was demoted) ends the old sessions.
    await auth.ensure_admin(store, username=name, password="a-brand-new-password", email=None)
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 401
    assert (await login(client, name, "a-brand-new-password")).status_code == 200


def test_secret_key_missing_or_placeholder_refused_unless_debug():
    for value in (None, "", "changethis", "your-secret-key-change-in-production"):
        with pytest.raises(ConfigError):
            Settings(_env_file=None, SECRET_KEY=value, DEBUG=False).check_secrets()
    debug = Settings(_env_file=None, SECRET_KEY="changethis", DEBUG=True)
    with pytest.warns(UserWarning):
        debug.check_secrets()
    assert debug.SECRET_KEY and debug.SECRET_KEY != "changethis" and len(debug.SECRET_KEY) >= 32


def test_short_secret_key_refused_unless_debug():
    with pytest.raises(ConfigError, match="32 bytes"):
        Settings(_env_file=None, SECRET_KEY="abc", DEBUG=False).check_secrets()
    # 31 bytes but 11 characters: bytes count, not characters.
    with pytest.raises(ConfigError):
        Settings(_env_file=None, SECRET_KEY="é" * 15 + "x", DEBUG=False).check_secrets()
    Settings(_env_file=None, SECRET_KEY="k" * 32, DEBUG=False).check_secrets()
    with pytest.warns(UserWarning):
        Settings(_env_file=None, SECRET_KEY="abc", DEBUG=True).check_secrets()


# --------------------------------------------------------------------------- tokens


async def test_bad_tokens_get_401(client, store):
    name = await register(client)
    good = (await login(client, name)).json()["access_token"]
    header, payload, signature = good.split(".")
    claims = jwt.get_unverified_claims(good)
    now = datetime.now(UTC)

    forged_payload = b64({**claims, "role": "admin"})
    bad = {
        "expired": auth.create_access_token(
            subject=name, role="auditor", secret=settings.SECRET_KEY, expires_minutes=-1
        )[0],
        "other key": auth.create_access_token(
            subject=name, role="auditor", secret="another-secret-key-0123456789abcdef", expires_minutes=5
        )[0],
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "alg none, forged": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{forged_payload}.",
        "HS512": jwt.encode(claims, settings.SECRET_KEY, algorithm="HS512"),
        "changed payload": f"{header}.{forged_payload}.{signature}",
        "changed subject": f"{header}.{b64({**claims, 'sub': 'admin'})}.{signature}",
        "no exp": jwt.encode({"sub": name, "role": "auditor", "iat": now}, settings.SECRET_KEY),
        "unknown role": jwt.encode(
            {**claims, "role": "root", "exp": now + timedelta(minutes=5)}, settings.SECRET_KEY
        ),
        "issued in the future": jwt.encode(
            {**claims, "iat": now + timedelta(days=1), "exp": now + timedelta(days=2)}, settings.SECRET_KEY
        ),
        "garbage": "not-a-jwt",
    }
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {good}"})).status_code == 200
    for label, token in bad.items():
        r = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, label
        assert r.json()["code"] == "not_authenticated", label
        assert r.headers["www-authenticate"] == "Bearer", label


async def test_token_of_deleted_user_gets_401(client, store):
    name = await register(client)
    headers = await bearer(client, name)
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
    await store.users.delete_one({"username_key": name.casefold()})
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 401


async def test_role_claim_must_match_the_stored_role(client, store):
    name = await register(client)
    # Signed with the right key, but claiming a role the user does not have.
    token, _ = auth.create_access_token(
        subject=name, role="admin", secret=settings.SECRET_KEY, expires_minutes=5
    )
    r = await client.get("/api/auth/users", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


# --------------------------------------------------------------------------- user management


async def test_admin_lists_users_without_secrets(client, admin_headers, auditor_headers):
    r = await client.get("/api/auth/users", headers=admin_headers)
    assert r.status_code == 200
    users = r.json()
    names = [u["username"] for u in users]
    assert "admin" in names and "auditor1" in names
    assert names == sorted(names, key=str.casefold)
    assert all(set(u) == {"username", "email", "role", "is_active", "created_at"} for u in users)
    assert (await client.get("/api/auth/users", headers=auditor_headers)).status_code == 403


async def test_disabled_user_loses_access_at_once(client, admin_headers):
    name = await register(client)
    headers = await bearer(client, name)
    r = await client.patch(
        f"/api/auth/users/{name.upper()}", json={"is_active": False}, headers=admin_headers
    )
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 401
    r = await login(client, name)
    assert r.status_code == 401 and r.json()["detail"] == "Identifiant ou mot de passe incorrect."
    # Re-enabled: a new login works, the token issued before the change stays dead.
    r = await client.patch(f"/api/auth/users/{name}", json={"is_active": True}, headers=admin_headers)
    assert r.status_code == 200
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 401
    assert (await client.get("/api/auth/me", headers=await bearer(client, name))).status_code == 200


async def test_demoted_admin_loses_admin_access_at_once(client, store, admin_headers):
    name, headers = await make_admin(store, client)
    assert (await client.get("/api/auth/users", headers=headers)).status_code == 200
    r = await client.patch(f"/api/auth/users/{name}", json={"role": "auditor"}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["role"] == "auditor"
    assert (await client.get("/api/auth/users", headers=headers)).status_code == 401
    new_headers = await bearer(client, name)
    assert (await client.get("/api/auth/users", headers=new_headers)).status_code == 403
    # Promoted: the new token is refused again (role changed), a fresh login gives admin access.
    r = await client.patch(f"/api/auth/users/{name}", json={"role": "admin"}, headers=admin_headers)
    assert r.status_code == 200
    assert (await client.get("/api/auth/me", headers=new_headers)).status_code == 401
    assert (await client.get("/api/auth/users", headers=await bearer(client, name))).status_code == 200


async def test_patch_validation_and_unknown_user(client, admin_headers):
    r = await client.patch("/api/auth/users/nobody_here_xyz", json={"role": "auditor"}, headers=admin_headers)
    assert r.status_code == 404 and r.json()["code"] == "user_not_found"
    name = await register(client)
    r = await client.patch(f"/api/auth/users/{name}", json={"role": "root"}, headers=admin_headers)
    assert r.status_code == 422
    r = await client.patch(f"/api/auth/users/{name}", json={}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["role"] == "auditor"


async def _other_active_admins(store) -> list[str]:
    docs = await store.users.find(auth.ACTIVE_ADMIN, {"username": 1}).to_list()
    return [d["username"] for d in docs if d["username"] != "admin"]


async def test_last_active_admin_cannot_be_demoted_or_disabled(client, store, admin_headers):
    others = await _other_active_admins(store)
    for name in others:
        r = await client.patch(f"/api/auth/users/{name}", json={"is_active": False}, headers=admin_headers)
        assert r.status_code == 200
    try:
        for change in ({"role": "auditor"}, {"is_active": False}, {"role": "auditor", "is_active": False}):
            r = await client.patch("/api/auth/users/admin", json=change, headers=admin_headers)
            assert r.status_code == 409, change
            assert r.json()["code"] == "last_admin"
        assert (await client.get("/api/auth/me", headers=admin_headers)).json()["role"] == "admin"
    finally:
        for name in others:
            await client.patch(f"/api/auth/users/{name}", json={"is_active": True}, headers=admin_headers)


async def test_two_admins_demoting_each_other_leave_one_admin(client, store, admin_headers):
    others = await _other_active_admins(store)
    for name in others:
        await client.patch(f"/api/auth/users/{name}", json={"is_active": False}, headers=admin_headers)
    a, a_headers = await make_admin(store, client)
    b, b_headers = await make_admin(store, client)
    admin_version = (await auth.get_user(store, "admin")).get("token_version", 0)
    try:
        # Only a and b stay active admins besides "admin", whom a and b disable first.
        r = await client.patch("/api/auth/users/admin", json={"is_active": False}, headers=a_headers)
        assert r.status_code == 200
        r1, r2 = await asyncio.gather(
            client.patch(f"/api/auth/users/{b}", json={"role": "auditor"}, headers=a_headers),
            client.patch(f"/api/auth/users/{a}", json={"role": "auditor"}, headers=b_headers),
        )
        assert sorted([r1.status_code, r2.status_code]) != [200, 200]
        assert await store.users.count_documents(auth.ACTIVE_ADMIN) >= 1
    finally:
        await auth.update_user(store, username="admin", role="admin", is_active=True)
        # Restored as it was, so the session's admin token keeps working for the other tests.
        await store.users.update_one({"username": "admin"}, {"$set": {"token_version": admin_version}})
        for name in others:
            await auth.update_user(store, username=name, is_active=True)
    assert (await client.get("/api/auth/me", headers=admin_headers)).status_code == 200


# --------------------------------------------------------------------------- password change


async def test_password_change(client):
    name = await register(client)
    headers = await bearer(client, name)
    other_session = await bearer(client, name)
    new = "an-even-better-password"

    r = await client.post(
        "/api/auth/me/password", json={"current_password": "wrong-one!", "new_password": new}, headers=headers
    )
    assert r.status_code == 400 and r.json()["code"] == "invalid_password"
    assert "wrong-one!" not in r.text and new not in r.text
    r = await client.post(
        "/api/auth/me/password",
        json={"current_password": PASSWORD, "new_password": "pw-zq9"},
        headers=headers,
    )
    assert r.status_code == 422 and "pw-zq9" not in r.text
    assert PASSWORD not in r.text

    r = await client.post(
        "/api/auth/me/password", json={"current_password": PASSWORD, "new_password": new}, headers=headers
    )
    assert r.status_code == 200
    assert PASSWORD not in r.text and new not in r.text
    fresh = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert (await client.get("/api/auth/me", headers=fresh)).status_code == 200
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 401
    assert (await client.get("/api/auth/me", headers=other_session)).status_code == 401
    assert (await login(client, name)).status_code == 401
    assert (await login(client, name, new)).status_code == 200


async def test_password_change_guesses_are_throttled(client):
    name = await register(client)
    headers = await bearer(client, name)
    for i in range(settings.LOGIN_MAX_ATTEMPTS):
        r = await client.post(
            "/api/auth/me/password",
            json={"current_password": f"guess-{i}", "new_password": "whatever-123"},
            headers=headers,
        )
        assert r.status_code == 400
    r = await client.post(
        "/api/auth/me/password",
        json={"current_password": PASSWORD, "new_password": "whatever-123"},
        headers=headers,
    )
    assert r.status_code == 429


# --------------------------------------------------------------------------- login abuse


async def test_sixth_wrong_password_gets_429_and_the_window_passes(client, throttle):
    name = await register(client)
    for _ in range(settings.LOGIN_MAX_ATTEMPTS):
        r = await login(client, name, "wrong-password")
        assert r.status_code == 401
        throttle.clock.advance(10)
    r = await login(client, name, "wrong-password")
    assert r.status_code == 429
    assert r.json()["code"] == "too_many_attempts"
    window = settings.LOGIN_WINDOW_MINUTES * 60
    retry_after = int(r.headers["retry-after"])
    assert 0 < retry_after <= window
    # Locked: even the right password is refused, from any address (the username is locked).
    assert (await login(client, name)).status_code == 429
    assert (await login(client, name.upper())).status_code == 429
    throttle.clock.advance(retry_after - 1)
    assert (await login(client, name)).status_code == 429
    throttle.clock.advance(1)
    assert (await login(client, name)).status_code == 200


async def test_unknown_user_and_wrong_password_look_the_same(client, monkeypatch, throttle):
    name = await register(client)
    checks: list[str] = []
    real = auth._off_loop

    async def spy(fn, *args):
        checks.append(getattr(fn, "__name__", ""))
        return await real(fn, *args)

    monkeypatch.setattr(auth, "_off_loop", spy)
    wrong = await login(client, name, "wrong-password")
    unknown = await login(client, uniq("ghost"), "wrong-password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert wrong.json()["code"] == unknown.json()["code"]
    assert wrong.headers.get("www-authenticate") == unknown.headers.get("www-authenticate")
    assert len(checks) == 2  # one password check each, against a dummy hash for the unknown user

    await throttle.throttle.reset()
    ghost = uniq("ghost")  # an unknown name is locked like a known one
    for _ in range(settings.LOGIN_MAX_ATTEMPTS):
        assert (await login(client, ghost, "x" * 10)).status_code == 401
    assert (await login(client, ghost, "x" * 10)).status_code == 429


async def test_success_resets_the_username_count(client):
    name = await register(client)
    for _ in range(2):
        for _ in range(settings.LOGIN_MAX_ATTEMPTS - 1):
            assert (await login(client, name, "wrong-password")).status_code == 401
        assert (await login(client, name)).status_code == 200


async def test_concurrent_guesses_cannot_slip_past_the_limit(client):
    name = await register(client)
    results = await asyncio.gather(*(login(client, name, f"guess-{i}") for i in range(12)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(401) == settings.LOGIN_MAX_ATTEMPTS
    assert codes.count(429) == 12 - settings.LOGIN_MAX_ATTEMPTS


async def test_one_address_spraying_usernames_is_locked(app, client, throttle):
    def from_address(host: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(host, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    colleague = await register(client)
    newcomer = await register(client)
    async with from_address("10.9.8.7") as office, from_address("10.1.1.1") as elsewhere:
        assert (await login(office, colleague)).status_code == 200  # signed in here before
        for _ in range(settings.LOGIN_MAX_ATTEMPTS):
            assert (await login(office, uniq("spray"), "wrong-password")).status_code == 401
        r = await login(office, newcomer)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        # Another address is not affected; the colleague behind the same address keeps working.
        assert (await login(elsewhere, newcomer)).status_code == 200
        assert (await login(office, colleague)).status_code == 200
        assert (await login(office, colleague, "wrong-password")).status_code == 401
        throttle.clock.advance(settings.LOGIN_WINDOW_MINUTES * 60)
        assert (await login(office, newcomer)).status_code == 200


# --------------------------------------------------------------------------- secrets stay secret


async def test_passwords_never_reach_responses_or_logs(client, admin_headers):
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{message} {extra}")
    secrets = {
        "register": "pw-register-1234",
        "short": "pw-sh",
        "wrong": "pw-wrong-5678",
        "as_name": "pw-typed-as-name-90",
        "new": "pw-new-password-42",
    }
    bodies: list[str] = []
    try:
        name = uniq()
        for body in (
            {"username": name, "email": f"{name}@example.com", "password": secrets["register"]},
            {"username": uniq(), "email": "x@example.com", "password": secrets["short"]},
            {"username": "!", "email": "bad", "password": secrets["wrong"]},
        ):
            bodies.append((await client.post("/api/auth/register", json=body)).text)
        bodies.append((await login(client, name, secrets["wrong"])).text)
        bodies.append((await login(client, secrets["as_name"], secrets["wrong"])).text)
        bodies.append((await client.post("/api/auth/login", json={"password": secrets["wrong"]})).text)
        bodies.append(
            (
                await client.post(
                    "/api/auth/login",
                    content=b"{not json " + secrets["wrong"].encode(),
                    headers={"content-type": "application/json"},
                )
            ).text
        )
        headers = await bearer(client, name, secrets["register"])
        for body in (
            {"current_password": secrets["wrong"], "new_password": secrets["new"]},
            {"current_password": secrets["register"], "new_password": secrets["short"]},
            {"current_password": secrets["register"]},
            {"current_password": secrets["register"], "new_password": secrets["new"]},
        ):
            bodies.append((await client.post("/api/auth/me/password", json=body, headers=headers)).text)
    finally:
        logger.remove(sink)
    assert any("login failed" in line for line in lines)
    for text in bodies + lines:
        for secret in secrets.values():
            assert secret not in text

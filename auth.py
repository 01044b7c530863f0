"""Accounts, password hashing and JWT. Free of FastAPI: raises its own exceptions."""

import asyncio
import contextlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from jose import JWTError, jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from database import Store

ALGORITHM = "HS256"
ROLES = ("admin", "auditor")

# Argon2id for new hashes; bcrypt hashes are still verified and upgraded at login.
password_hash = PasswordHash((Argon2Hasher(), BcryptHasher()))
_DUMMY_HASH = password_hash.hash("timing-equaliser-not-a-password")

# Hashing runs on its own small pool, off the event loop: a burst of logins (64 MiB and ~0.15 s of
# CPU each for Argon2id) then queues here instead of filling the default pool other areas use.
# Its threads (and the lanes Argon2 starts from them) run at a lower priority: with the CPUs busy
# hashing, the event loop's thread still gets a core at once (bench/loop_lag.py: max stall
# ~140 ms at the same priority, ~20 ms lowered, on 2 shared cores).
HASH_THREAD_NICE = 10


def _lower_priority() -> None:
    if sys.platform == "linux":  # Linux nice values are per thread
        with contextlib.suppress(OSError):
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + HASH_THREAD_NICE)


_HASH_POOL = ThreadPoolExecutor(
    max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="pwhash", initializer=_lower_priority
)

# Fields a user document may show outside this module.
PUBLIC_FIELDS = {"_id": 0, "username": 1, "email": 1, "role": 1, "is_active": 1, "created_at": 1}


class AuthError(Exception):
    """Base of the account errors."""


class InvalidCredentials(AuthError):
    def __init__(self, *, known_user: bool = False) -> None:
        super().__init__("invalid credentials")
        self.known_user = known_user  # for the server log only, never for the client


class InvalidToken(AuthError):
    pass


class UserExists(AuthError):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class UserNotFound(AuthError):
    pass


class LastAdmin(AuthError):
    """The change would leave no active admin."""


async def _off_loop(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(_HASH_POOL, fn, *args)


async def hash_password(password: str) -> str:
    return await _off_loop(password_hash.hash, password)


async def verify_password(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """(valid, new hash if the stored one should be upgraded); runs off the event loop.

    With no stored hash (unknown user) a dummy hash is checked, so both cases cost the same.
    """
    if not hashed:
        await _off_loop(password_hash.verify, password, _DUMMY_HASH)
        return False, None
    return await _off_loop(password_hash.verify_and_update, password, hashed)


def create_access_token(
    *, subject: str, role: str, secret: str, expires_minutes: int, version: int = 0
) -> tuple[str, int]:
    """A signed token and its lifetime in seconds; `ver` is the user's token_version."""
    now = datetime.now(UTC)
    expires = timedelta(minutes=expires_minutes)
    claims = {"sub": subject, "role": role, "ver": version, "iat": now, "exp": now + expires}
    return jwt.encode(claims, secret, algorithm=ALGORITHM), int(expires.total_seconds())


def decode_access_token(token: str, *, secret: str) -> dict[str, Any]:
    """The claims of a valid token; the algorithm is pinned, exp, iat and sub are required."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require_exp": True, "require_iat": True, "require_sub": True},
        )
    except JWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if not isinstance(claims.get("sub"), str) or claims.get("role") not in ROLES:
        raise InvalidToken("missing claims")
    if not isinstance(claims.setdefault("ver", 0), int):
        raise InvalidToken("bad version")
    iat = claims.get("iat")
    # A token issued in the future was not issued by us (60 s of clock skew between replicas).
    if not isinstance(iat, int | float) or iat > datetime.now(UTC).timestamp() + 60:
        raise InvalidToken("issued in the future")
    return claims


def token_is_signed(token: str, *, secret: str) -> bool:
    """A token of ours, unexpired (checked before a request body is read; the user is checked later)."""
    try:
        decode_access_token(token, secret=secret)
    except InvalidToken:
        return False
    return True


def token_matches_user(claims: dict[str, Any], user: dict[str, Any] | None) -> bool:
    """A token only works while its user exists, is active, has the same role and version.

    Every change of password, role or active flag bumps the version, so older tokens die at once.
    """
    return bool(
        user
        and user.get("is_active", True)
        and user.get("role") == claims.get("role")
        and user.get("token_version", 0) == claims.get("ver", 0)
    )


def user_key(value: str) -> str:
    return value.strip().casefold()


async def get_user(store: Store, username: str) -> dict[str, Any] | None:
    return await store.users.find_one({"username_key": user_key(username)})


async def create_user(
    store: Store, *, username: str, email: str, password: str, role: str = "auditor"
) -> dict[str, Any]:
    now = datetime.now(UTC)
    doc = {
        "username": username.strip(),
        "username_key": user_key(username),
        "email": email.strip(),
        "email_key": user_key(email),
        "hashed_password": await hash_password(password),
        "role": role,
        "is_active": True,
        "token_version": 0,
        "created_at": now,
        "updated_at": now,
    }
    try:
        await store.users.insert_one(doc)
    except DuplicateKeyError as exc:
        field = "email" if "email" in str(exc) else "username"
        raise UserExists(field) from exc
    return doc


async def authenticate(store: Store, *, username: str, password: str) -> dict[str, Any]:
    """The active user with these credentials; the same work is done for an unknown user."""
    user = await get_user(store, username)
    valid, new_hash = await verify_password(password, user["hashed_password"] if user else None)
    if not user or not valid or not user.get("is_active", True):
        raise InvalidCredentials(known_user=user is not None)
    if new_hash:
        user["hashed_password"] = new_hash
        await store.users.update_one(
            {"_id": user["_id"]}, {"$set": {"hashed_password": new_hash, "updated_at": datetime.now(UTC)}}
        )
    return user


async def set_password(store: Store, *, username: str, password: str) -> dict[str, Any]:
    """Store a new password; the user's older tokens stop working. Returns the updated user."""
    user = await store.users.find_one_and_update(
        {"username_key": user_key(username)},
        {
            "$set": {"hashed_password": await hash_password(password), "updated_at": datetime.now(UTC)},
            "$inc": {"token_version": 1},
        },
        return_document=ReturnDocument.AFTER,
    )
    if user is None:
        raise UserNotFound(username)
    return user


async def change_password(
    store: Store, *, username: str, current_password: str, new_password: str
) -> dict[str, Any]:
    """Check the current password, then set the new one (InvalidCredentials if it is wrong)."""
    user = await get_user(store, username)
    valid, _ = await verify_password(current_password, user["hashed_password"] if user else None)
    if not user or not valid:
        raise InvalidCredentials(known_user=user is not None)
    return await set_password(store, username=username, password=new_password)


async def list_users(store: Store, *, limit: int = 1000) -> list[dict[str, Any]]:
    cursor = store.users.find({}, PUBLIC_FIELDS).sort("username_key", ASCENDING).limit(limit)
    return await cursor.to_list()


ACTIVE_ADMIN = {"role": "admin", "is_active": {"$ne": False}}


def _is_active_admin(role: str | None, is_active: bool | None) -> bool:
    return role == "admin" and is_active is not False


async def update_user(
    store: Store, *, username: str, role: str | None = None, is_active: bool | None = None
) -> dict[str, Any]:
    """Change a user's role and/or active flag; LastAdmin if no active admin would be left."""
    user = await get_user(store, username)
    if user is None:
        raise UserNotFound(username)
    before = {"role": user.get("role"), "is_active": user.get("is_active", True)}
    changes = {}
    if role is not None and role != before["role"]:
        changes["role"] = role
    if is_active is not None and is_active != before["is_active"]:
        changes["is_active"] = is_active
    if not changes:
        return user
    after = {**before, **changes}
    loses_admin = _is_active_admin(**before) and not _is_active_admin(**after)
    if loses_admin and await store.users.count_documents(ACTIVE_ADMIN) <= 1:
        raise LastAdmin(username)
    updated = await store.users.find_one_and_update(
        {"_id": user["_id"]},
        {"$set": {**changes, "updated_at": datetime.now(UTC)}, "$inc": {"token_version": 1}},
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        raise UserNotFound(username)
    # Two admins demoting each other at once both pass the check above: whoever then finds no
    # active admin left undoes its own change, so at least one admin always remains.
    if loses_admin and await store.users.count_documents(ACTIVE_ADMIN) == 0:
        await store.users.update_one({"_id": user["_id"]}, {"$set": before})
        raise LastAdmin(username)
    return updated


async def ensure_admin(store: Store, *, username: str, password: str, email: str | None) -> None:
    """Create the admin account, or reset its password, role and active flag.

    An account already in that state is left alone, so a restart does not end the admin's sessions.
    """
    existing = await get_user(store, username)
    if existing is None:
        try:
            await create_user(
                store,
                username=username,
                email=email or f"{user_key(username)}@localhost.localdomain",
                password=password,
                role="admin",
            )
            return
        except UserExists:  # another worker created it at the same moment
            existing = await get_user(store, username)
            if existing is None:
                raise
    valid, new_hash = await verify_password(password, existing.get("hashed_password"))
    if valid and existing.get("role") == "admin" and existing.get("is_active", True):
        if new_hash:
            await store.users.update_one({"_id": existing["_id"]}, {"$set": {"hashed_password": new_hash}})
        return
    await store.users.update_one(
        {"_id": existing["_id"]},
        {
            "$set": {
                "hashed_password": await hash_password(password),
                "role": "admin",
                "is_active": True,
                "updated_at": datetime.now(UTC),
            },
            "$inc": {"token_version": 1},
        },
    )

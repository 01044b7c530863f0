"""Accounts, password hashing and JWT. Free of FastAPI: raises its own exceptions."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from jose import JWTError, jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher
from pymongo.errors import DuplicateKeyError

from database import Store

ALGORITHM = "HS256"
ROLES = ("admin", "auditor")

# Argon2id for new hashes; bcrypt hashes are still verified and upgraded at login.
password_hash = PasswordHash((Argon2Hasher(), BcryptHasher()))
_DUMMY_HASH = password_hash.hash("timing-equaliser-not-a-password")


class AuthError(Exception):
    """Base of the account errors."""


class InvalidCredentials(AuthError):
    pass


class InvalidToken(AuthError):
    pass


class UserExists(AuthError):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class UserNotFound(AuthError):
    pass


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(password_hash.hash, password)


async def verify_password(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """(valid, new hash if the stored one should be upgraded); runs off the event loop."""
    if not hashed:
        await asyncio.to_thread(password_hash.verify, password, _DUMMY_HASH)
        return False, None
    return await asyncio.to_thread(password_hash.verify_and_update, password, hashed)


def create_access_token(*, subject: str, role: str, secret: str, expires_minutes: int) -> tuple[str, int]:
    now = datetime.now(UTC)
    expires = timedelta(minutes=expires_minutes)
    claims = {"sub": subject, "role": role, "iat": now, "exp": now + expires}
    return jwt.encode(claims, secret, algorithm=ALGORITHM), int(expires.total_seconds())


def decode_access_token(token: str, *, secret: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM])
    except JWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if not isinstance(claims.get("sub"), str) or claims.get("role") not in ROLES:
        raise InvalidToken("missing claims")
    return claims


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
        raise InvalidCredentials
    if new_hash:
        await store.users.update_one(
            {"_id": user["_id"]}, {"$set": {"hashed_password": new_hash, "updated_at": datetime.now(UTC)}}
        )
    return user


async def set_password(store: Store, *, username: str, password: str) -> None:
    result = await store.users.update_one(
        {"username_key": user_key(username)},
        {"$set": {"hashed_password": await hash_password(password), "updated_at": datetime.now(UTC)}},
    )
    if not result.matched_count:
        raise UserNotFound(username)


async def ensure_admin(store: Store, *, username: str, password: str, email: str | None) -> None:
    """Create the admin account, or reset its password, role and active flag."""
    existing = await get_user(store, username)
    if existing is None:
        await create_user(
            store,
            username=username,
            email=email or f"{user_key(username)}@localhost.localdomain",
            password=password,
            role="admin",
        )
        return
    await store.users.update_one(
        {"_id": existing["_id"]},
        {
            "$set": {
                "hashed_password": await hash_password(password),
                "role": "admin",
                "is_active": True,
                "updated_at": datetime.now(UTC),
            }
        },
    )

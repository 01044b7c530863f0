"""Accounts: registration, login (OAuth2 password form or JSON), the current user, user management."""

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from loguru import logger
from pydantic import ValidationError

import auth
from config import settings
from deps import AdminUser, CurrentUser, StoreDep
from errors import ApiError
from login_throttle import Attempt, LoginThrottle
from models import LoginRequest, PasswordChange, Token, UserCreate, UserPublic, UserUpdate
from rate_limit import RateLimiter, TooManyAttempts

router = APIRouter(prefix="/auth", tags=["auth"])


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    store = app.state.store
    throttle = LoginThrottle(
        store, max_attempts=settings.LOGIN_MAX_ATTEMPTS, window_seconds=settings.LOGIN_WINDOW_MINUTES * 60
    )
    await throttle.ensure_indexes()
    app.state.login_throttle = throttle
    app.state.register_limiter = RateLimiter(store, limit=settings.REGISTER_MAX_PER_HOUR, window_seconds=3600)
    yield


async def get_throttle(request: Request) -> LoginThrottle:
    return request.app.state.login_throttle


async def get_register_limiter(request: Request) -> RateLimiter:
    return request.app.state.register_limiter


ThrottleDep = Annotated[LoginThrottle, Depends(get_throttle)]
RegisterLimiterDep = Annotated[RateLimiter, Depends(get_register_limiter)]

INVALID_CREDENTIALS = "Identifiant ou mot de passe incorrect."

LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "username": {"type": "string"},
                        "password": {"type": "string", "format": "password"},
                    },
                }
            },
            "application/json": {"schema": LoginRequest.model_json_schema()},
        },
    }
}


def public(user: dict[str, Any]) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=False)


async def read_credentials(request: Request) -> LoginRequest:
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("application/json"):
            return LoginRequest.model_validate_json(await request.body())
        form = await request.form()
        username, password = form.get("username"), form.get("password")
        return LoginRequest(
            username=username if isinstance(username, str) else "",
            password=password if isinstance(password, str) else "",
        )
    except ValidationError:
        raise ApiError(422, "validation_error", "Identifiant et mot de passe requis.") from None


@router.post(
    "/register",
    response_model=UserPublic,
    status_code=201,
    responses={429: {"description": "Too many registrations from this address"}},
)
async def register(
    body: UserCreate, store: StoreDep, request: Request, limiter: RegisterLimiterDep
) -> UserPublic:
    """Create an auditor account (a few per address and hour)."""
    if not settings.ALLOW_REGISTRATION:
        raise ApiError(403, "registration_closed", "Les inscriptions sont fermées.")
    try:
        await limiter.hit(f"register:{client_address(request)}", "registration")
    except TooManyAttempts as exc:
        logger.warning("registrations locked from {} for {}s", client_address(request), exc.retry_after)
        raise _too_many(exc, "Trop d'inscriptions depuis cette adresse.") from None
    try:
        user = await auth.create_user(store, username=body.username, email=body.email, password=body.password)
    except auth.UserExists as exc:
        field = "Ce nom d'utilisateur" if exc.field == "username" else "Cet e-mail"
        raise ApiError(409, f"{exc.field}_taken", f"{field} est déjà utilisé.") from None
    return public(user)


def client_address(request: Request) -> str | None:
    # Behind a reverse proxy, run uvicorn with --forwarded-allow-ips so this is the real client.
    return request.client.host if request.client else None


def _too_many(exc: TooManyAttempts, what: str) -> ApiError:
    minutes = max(1, round(exc.retry_after / 60))
    return ApiError(
        429,
        "too_many_attempts",
        f"{what} Réessayez dans {minutes} min.",
        headers={"Retry-After": str(exc.retry_after)},
    )


async def begin_attempt(throttle: LoginThrottle, *, username: str, address: str | None) -> Attempt:
    try:
        return await throttle.begin(username=username, address=address)
    except TooManyAttempts as exc:
        logger.warning("login locked ({}) from {} for {}s", exc.scope, address, exc.retry_after)
        raise _too_many(exc, "Trop de tentatives de connexion.") from None


def issue_token(user: dict[str, Any]) -> Token:
    token, expires_in = auth.create_access_token(
        subject=user["username"],
        role=user["role"],
        version=user.get("token_version", 0),
        secret=settings.secret_key,
        expires_minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES,
    )
    return Token(access_token=token, expires_in=expires_in)


@router.post(
    "/login",
    response_model=Token,
    openapi_extra=LOGIN_BODY,
    responses={401: {"description": "Wrong credentials"}, 429: {"description": "Too many attempts"}},
)
async def login(request: Request, store: StoreDep, throttle: ThrottleDep) -> Token:
    """Exchange a username and password for a bearer token (429 after repeated failures)."""
    credentials = await read_credentials(request)
    address = client_address(request)
    attempt = await begin_attempt(throttle, username=credentials.username, address=address)
    try:
        user = await auth.authenticate(store, username=credentials.username, password=credentials.password)
    except auth.InvalidCredentials as exc:
        # The name is logged only for an existing account: a password typed as a name stays out.
        who = repr(auth.user_key(credentials.username)) if exc.known_user else "an unknown user"
        logger.info("login failed for {} from {}", who, address)
        raise ApiError(
            401, "invalid_credentials", INVALID_CREDENTIALS, headers={"WWW-Authenticate": "Bearer"}
        ) from None
    except BaseException:
        await throttle.cancel(attempt)
        raise
    await throttle.succeeded(attempt)
    return issue_token(user)


@router.get("/me", response_model=UserPublic)
async def me(user: CurrentUser) -> UserPublic:
    """The signed-in user."""
    return public(user)


@router.post("/me/password", response_model=Token)
async def change_password(
    body: PasswordChange, request: Request, user: CurrentUser, store: StoreDep, throttle: ThrottleDep
) -> Token:
    """Change one's own password; other sessions end and a fresh token is returned."""
    attempt = await begin_attempt(throttle, username=user["username"], address=client_address(request))
    try:
        updated = await auth.change_password(
            store,
            username=user["username"],
            current_password=body.current_password,
            new_password=body.new_password,
        )
    except auth.InvalidCredentials:
        logger.info("password change refused for {!r}: wrong current password", user["username_key"])
        raise ApiError(400, "invalid_password", "Le mot de passe actuel est incorrect.") from None
    except BaseException:
        await throttle.cancel(attempt)
        raise
    await throttle.succeeded(attempt)
    logger.info("password changed for {!r}", user["username_key"])
    return issue_token(updated)


@router.get("/users", response_model=list[UserPublic])
async def list_users(
    _: AdminUser, store: StoreDep, limit: Annotated[int, Query(ge=1, le=1000)] = 1000
) -> list[UserPublic]:
    """All accounts, by username (admin)."""
    return [public(u) for u in await auth.list_users(store, limit=limit)]


@router.patch("/users/{username}", response_model=UserPublic)
async def update_user(
    admin: AdminUser,
    store: StoreDep,
    body: UserUpdate,
    username: Annotated[str, Path(max_length=254)],
) -> UserPublic:
    """Change a user's role or active flag; their current tokens stop working (admin)."""
    try:
        user = await auth.update_user(store, username=username, role=body.role, is_active=body.is_active)
    except auth.UserNotFound:
        raise ApiError(404, "user_not_found", "Utilisateur introuvable.") from None
    except auth.LastAdmin:
        raise ApiError(
            409, "last_admin", "Impossible : il doit rester au moins un administrateur actif."
        ) from None
    logger.info(
        "user {!r} updated by {!r}: {}",
        user["username_key"],
        admin["username_key"],
        body.model_dump(exclude_none=True),
    )
    return public(user)

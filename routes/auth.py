"""Accounts: registration, login (OAuth2 password form or JSON) and the current user."""

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

import auth
from config import settings
from deps import CurrentUser, StoreDep
from errors import ApiError
from models import LoginRequest, Token, UserCreate, UserPublic

router = APIRouter(prefix="/auth", tags=["auth"])

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
        return LoginRequest(username=form.get("username") or "", password=form.get("password") or "")
    except ValidationError:
        raise ApiError(422, "validation_error", "Identifiant et mot de passe requis.") from None


@router.post("/register", response_model=UserPublic, status_code=201)
async def register(body: UserCreate, store: StoreDep) -> UserPublic:
    """Create an auditor account."""
    if not settings.ALLOW_REGISTRATION:
        raise ApiError(403, "registration_closed", "Les inscriptions sont fermées.")
    try:
        user = await auth.create_user(store, username=body.username, email=body.email, password=body.password)
    except auth.UserExists as exc:
        field = "Ce nom d'utilisateur" if exc.field == "username" else "Cet e-mail"
        raise ApiError(409, f"{exc.field}_taken", f"{field} est déjà utilisé.") from None
    return public(user)


@router.post("/login", response_model=Token, openapi_extra=LOGIN_BODY)
async def login(request: Request, store: StoreDep) -> Token:
    """Exchange a username and password for a bearer token."""
    credentials = await read_credentials(request)
    try:
        user = await auth.authenticate(store, username=credentials.username, password=credentials.password)
    except auth.InvalidCredentials:
        raise ApiError(
            401,
            "invalid_credentials",
            "Identifiant ou mot de passe incorrect.",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    token, expires_in = auth.create_access_token(
        subject=user["username"],
        role=user["role"],
        secret=settings.SECRET_KEY,
        expires_minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES,
    )
    return Token(access_token=token, expires_in=expires_in)


@router.get("/me", response_model=UserPublic)
async def me(user: CurrentUser) -> UserPublic:
    """The signed-in user."""
    return public(user)

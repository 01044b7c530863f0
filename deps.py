"""FastAPI dependencies as Annotated aliases: StoreDep, CurrentUser, AdminUser."""

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

import auth
from config import settings
from database import Store
from errors import ApiError

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/login", auto_error=False)


async def get_store(request: Request) -> Store:
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "not_authenticated", message, headers={"WWW-Authenticate": "Bearer"})


async def get_current_user(
    store: StoreDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> dict[str, Any]:
    if not token:
        raise _unauthorized("Authentification requise.")
    try:
        claims = auth.decode_access_token(token, secret=settings.secret_key)
    except auth.InvalidToken:
        raise _unauthorized("Jeton invalide ou expiré.") from None
    user = await auth.get_user(store, claims["sub"])
    # A deleted, disabled or demoted user, or one whose password changed, loses access at once.
    if user is None or not auth.token_matches_user(claims, user):
        raise _unauthorized("Jeton invalide ou expiré.")
    user.pop("hashed_password", None)
    return user


CurrentUser = Annotated[dict[str, Any], Depends(get_current_user)]


async def get_optional_user(
    store: StoreDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> dict[str, Any] | None:
    """The signed-in user, or None for a request without a (valid) token."""
    if not token:
        return None
    try:
        return await get_current_user(store, token)
    except ApiError:
        return None


OptionalUser = Annotated[dict[str, Any] | None, Depends(get_optional_user)]


async def get_admin_user(user: CurrentUser) -> dict[str, Any]:
    if user.get("role") != "admin":
        raise ApiError(403, "forbidden", "Action réservée aux administrateurs.")
    return user


AdminUser = Annotated[dict[str, Any], Depends(get_admin_user)]

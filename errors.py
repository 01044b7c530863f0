"""One error shape for every error: `{detail, code, request_id[, errors]}`, never HTML or a trace."""

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import BaseModel
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

import chat_service
import report_schedules
from database import StoreUnavailable

STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "service_unavailable",
}


# Services' own exceptions (their messages are French) and the HTTP answer each one gets.
SERVICE_ERRORS: dict[type[Exception], tuple[int, str]] = {
    report_schedules.ScheduleNotFound: (404, "schedule_not_found"),
    report_schedules.ScheduleError: (422, "validation_error"),
    report_schedules.RunNotRetryable: (409, "run_not_failed"),
    chat_service.PlanRejected: (422, "invalid_plan"),
}


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error the service answers: a French message and a stable machine code."""

    detail: str
    code: str
    request_id: str | None = None
    errors: list[ErrorItem] | None = None  # 422: one item per invalid field


ERROR_DESCRIPTIONS = {
    400: "Requête incorrecte",
    401: "Authentification requise, ou jeton invalide ou expiré",
    403: "Action non autorisée pour ce compte",
    404: "Introuvable",
    409: "Conflit avec l'état actuel",
    413: "Corps de requête trop volumineux",
    415: "Type de contenu non pris en charge",
    422: "Paramètres ou corps invalides",
    429: "Trop de requêtes",
    503: "Dépendance indisponible (base d'audit, Oracle, cache...)",
    504: "Délai dépassé (Oracle)",
}
# Operations open without a token, and the statuses they cannot answer for that reason.
PUBLIC_OPERATIONS = {("post", "/api/auth/login"): {403}, ("post", "/api/auth/register"): {401},
                     ("get", "/api/health"): {401, 403}, ("get", "/api/info"): {401, 403}}  # fmt: skip


def document_errors(app: FastAPI) -> None:
    """Make the OpenAPI document tell the truth about errors: every operation documents the error
    statuses the service can answer, all with the one ErrorBody shape (FastAPI's default 422 schema
    is not what the service sends)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas["ErrorBody"] = body
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                if not path.startswith("/api/"):
                    continue
                statuses = set(ERROR_DESCRIPTIONS) - PUBLIC_OPERATIONS.get((method, path), set())
                responses = operation.setdefault("responses", {})
                for status in sorted(statuses):
                    entry = responses.setdefault(str(status), {"description": ERROR_DESCRIPTIONS[status]})
                    entry["content"] = ref
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class ApiError(Exception):
    """An HTTP error with a stable machine code and a French message."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers
        self.errors = errors


def request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def error_response(
    request: Request,
    status_code: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"detail": message, "code": code, "request_id": request_id(request)}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status_code, headers=headers)


# French wording of pydantic's error types; `{name}` takes the error's context values.
VALIDATION_MESSAGES = {
    "missing": "champ obligatoire",
    "extra_forbidden": "champ inconnu",
    "string_type": "doit être un texte",
    "string_too_short": "au moins {min_length} caractère(s)",
    "string_too_long": "au plus {max_length} caractère(s)",
    "string_pattern_mismatch": "format invalide",
    "int_type": "doit être un nombre entier",
    "int_parsing": "doit être un nombre entier",
    "int_from_float": "doit être un nombre entier",
    "float_type": "doit être un nombre",
    "float_parsing": "doit être un nombre",
    "bool_type": "doit être vrai ou faux",
    "bool_parsing": "doit être vrai ou faux",
    "greater_than": "doit être supérieur à {gt}",
    "greater_than_equal": "doit être supérieur ou égal à {ge}",
    "less_than": "doit être inférieur à {lt}",
    "less_than_equal": "doit être inférieur ou égal à {le}",
    "literal_error": "valeur attendue : {expected}",
    "enum": "valeur attendue : {expected}",
    "list_type": "doit être une liste",
    "too_long": "au plus {max_length} élément(s)",
    "too_short": "au moins {min_length} élément(s)",
    "dict_type": "doit être un objet",
    "model_type": "doit être un objet",
    "model_attributes_type": "doit être un objet",
    "datetime_type": "doit être une date ISO 8601",
    "datetime_parsing": "doit être une date ISO 8601",
    "datetime_from_date_parsing": "doit être une date ISO 8601",
    "json_invalid": "JSON invalide",
    "json_type": "JSON invalide",
}


def _message(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "value_error":  # our own validators already speak French
        return str(error.get("msg", "")).removeprefix("Value error, ")
    template = VALIDATION_MESSAGES.get(kind)
    if template is None:
        return error.get("msg", "")
    try:
        return template.format(**(error.get("ctx") or {}))
    except (KeyError, IndexError):
        return template.split(":")[0]


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Inputs are left out: they may hold a password.
    return [
        {"loc": list(e.get("loc", ())), "msg": _message(e), "type": e.get("type", "")} for e in exc.errors()
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            request, exc.status_code, exc.code, exc.message, headers=exc.headers, errors=exc.errors
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(
            request, 422, "validation_error", "Requête invalide", errors=_validation_errors(exc)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        message = exc.detail if isinstance(exc.detail, str) else code
        return error_response(request, exc.status_code, code, message, headers=exc.headers)

    async def _service_error(request: Request, exc: Exception) -> JSONResponse:
        status, code = next(v for t, v in SERVICE_ERRORS.items() if isinstance(exc, t))
        return error_response(request, status, code, str(exc))

    for service_error in SERVICE_ERRORS:
        app.add_exception_handler(service_error, _service_error)

    async def _store_down(request: Request, exc: Exception) -> JSONResponse:
        logger.warning("store unavailable: {}", exc)
        return error_response(
            request,
            503,
            "store_unavailable",
            "La base d'audit est momentanément indisponible, réessayez dans un instant.",
            headers={"Retry-After": "5"},
        )

    for exc_type in (StoreUnavailable, ServerSelectionTimeoutError, ConnectionFailure):
        app.add_exception_handler(exc_type, _store_down)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.opt(exception=exc).error("unhandled error on {} {}", request.method, request.url.path)
        return error_response(request, 500, "internal_error", "Erreur interne du serveur.")

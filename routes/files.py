"""Files attached to conversations: upload, list, read, download, delete, import into the trail."""

import asyncio
import contextlib
import unicodedata
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, File, Response, UploadFile
from fastapi.responses import StreamingResponse
from loguru import logger
from pydantic import BaseModel, Field

import files_service
from config import settings
from database import Store
from deps import AdminUser, CurrentUser, StoreDep
from errors import ApiError
from models import ErrorResponse, ImportResult

router = APIRouter(prefix="/files", tags=["files"])

ERRORS: dict[type[files_service.FilesError], tuple[int, str]] = {
    files_service.FileNotFound: (404, "file_not_found"),
    files_service.FileTooLarge: (413, "payload_too_large"),
    files_service.UnsupportedFile: (415, "unsupported_media_type"),
    files_service.CorruptFile: (422, "invalid_file"),
    files_service.FileTooComplex: (422, "file_too_complex"),
    files_service.NotAnAuditExport: (415, "not_an_audit_export"),
}


def _errors(*statuses: int) -> dict[int | str, dict]:
    return {status: {"model": ErrorResponse} for status in statuses}


class FileInfo(BaseModel):
    id: str
    owner: str
    name: str
    type: str = Field(description="pdf, docx, csv, json or text, decided by the content")
    content_type: str
    size: int
    sha256: str
    encoding: str | None = None
    pages: int | None = None
    rows: int | None = None
    columns: list[str] | None = None
    text_chars: int
    text_truncated: bool
    notes: list[str] = Field(default_factory=list)
    created_at: datetime
    expires_at: datetime


class FileDetail(FileInfo):
    text: str


class FileList(BaseModel):
    files: list[FileInfo]
    count: int


def _api_error(exc: files_service.FilesError) -> ApiError:
    status, code = ERRORS.get(type(exc), (422, "invalid_file"))
    return ApiError(status, code, str(exc))


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback and the UTF-8 name (RFC 6266)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = "".join(c if c.isalnum() or c in "._- " else "_" for c in ascii_name).strip() or "fichier"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.post("", status_code=201, response_model=FileInfo, responses=_errors(413, 415, 422))
async def upload_file(store: StoreDep, user: CurrentUser, file: Annotated[UploadFile, File()]) -> dict:
    """Upload a PDF, Word (.docx), CSV, JSON or text file; its text is extracted and kept with it."""
    limit = int(settings.FILES_MAX_MB * 2**20)
    message = f"Fichier trop volumineux (limite {settings.FILES_MAX_MB:g} Mo)."
    too_large = ApiError(413, "payload_too_large", message)
    if file.size is not None and file.size > limit:
        raise too_large
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise too_large
    try:
        return await files_service.save_file(store, owner=user["username"], name=file.filename, data=data)
    except files_service.FilesError as exc:
        raise _api_error(exc) from None


@router.get("", response_model=FileList)
async def list_files(store: StoreDep, user: CurrentUser) -> dict:
    """Your files that have not expired, newest first."""
    files = await files_service.list_files(store, owner=user["username"])
    return {"files": files, "count": len(files)}


@router.get("/{file_id}", response_model=FileDetail, responses=_errors(404))
async def get_file(store: StoreDep, user: CurrentUser, file_id: str) -> dict:
    """One of your files: its metadata and extracted text."""
    try:
        return await files_service.get_file(store, owner=user["username"], file_id=file_id)
    except files_service.FilesError as exc:
        raise _api_error(exc) from None


@router.get("/{file_id}/content", response_class=StreamingResponse, responses=_errors(404))
async def download_file(store: StoreDep, user: CurrentUser, file_id: str) -> StreamingResponse:
    """The bytes of one of your files, as uploaded."""
    try:
        meta, chunks = await files_service.open_content(store, owner=user["username"], file_id=file_id)
    except files_service.FilesError as exc:
        raise _api_error(exc) from None
    return StreamingResponse(
        chunks,
        media_type=meta["http_content_type"],
        headers={
            "Content-Disposition": content_disposition(meta["name"]),
            "Content-Length": str(meta["size"]),
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.delete("/{file_id}", status_code=204, responses=_errors(404))
async def delete_file(store: StoreDep, user: CurrentUser, file_id: str) -> Response:
    """Delete one of your files."""
    try:
        await files_service.delete_file(store, owner=user["username"], file_id=file_id)
    except files_service.FilesError as exc:
        raise _api_error(exc) from None
    return Response(status_code=204)


@router.post("/{file_id}/import", response_model=ImportResult, responses=_errors(403, 404, 415))
async def import_file_into_audit(store: StoreDep, _: AdminUser, file_id: str) -> ImportResult:
    """Import an uploaded audit export (CSV, JSON, JSON Lines) into the audit trail (admin)."""
    try:
        return await files_service.import_into_audit(
            store, file_id=file_id, tz=settings.tz, batch_size=settings.IMPORT_BATCH_SIZE
        )
    except files_service.FilesError as exc:
        raise _api_error(exc) from None


async def _sweep_forever(store: Store, interval: float) -> None:
    while True:
        try:
            removed = await files_service.sweep_expired(store)
            if removed:
                logger.info("files: {} expired file(s) deleted", removed)
        except Exception as exc:  # the store may be down for a while; try again next time
            logger.warning("files: expiry sweep failed: {}", exc)
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    store: Store = app.state.store
    await files_service.ensure_indexes(store)
    sweeper = asyncio.create_task(
        _sweep_forever(store, max(settings.FILES_SWEEP_INTERVAL_SECONDS, 1)), name="files-expiry-sweep"
    )
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper

"""Import of audit exports into the trail."""

from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile

from config import settings
from deps import AdminUser, StoreDep
from errors import ApiError
from ingest import ImportFormatError, import_file
from models import ImportResult
from routes.alerts import after_ingest

router = APIRouter(prefix="/audit", tags=["audit"])


@router.post("/import", response_model=ImportResult)
async def import_audit(
    request: Request, store: StoreDep, _: AdminUser, file: Annotated[UploadFile, File()]
) -> ImportResult:
    """Import a JSON Lines, JSON array or CSV export of UNIFIED_AUDIT_TRAIL (admin)."""
    limit = settings.IMPORT_MAX_MB * 2**20
    if file.size is not None and file.size > limit:
        raise ApiError(
            413, "payload_too_large", f"Fichier trop volumineux (limite {settings.IMPORT_MAX_MB} Mo)."
        )
    try:
        result = await import_file(store, file.file, tz=settings.tz, batch_size=settings.IMPORT_BATCH_SIZE)
    except ImportFormatError as exc:
        raise ApiError(415, "unsupported_media_type", str(exc)) from None
    # The detectors run on the new events before the answer: their alerts are in /api/alerts.
    await after_ingest(request, result.inserted)
    return result

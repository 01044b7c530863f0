"""Uploaded files: type from the content, bounded text extraction, bytes in GridFS, expiry.

A file is two things sharing one ObjectId: its bytes in the GridFS bucket `uploads` (with its expiry
in the GridFS metadata) and a document in `files` (owner, name, type, counts, extracted text,
expiry) under a TTL index. MongoDB's TTL monitor only deletes the `files` document, so
`sweep_expired` deletes the expired bytes and metadata itself; reads filter on `expires_at > now`
so an expired file is gone at once, before any sweep.
"""

import asyncio
import codecs
import csv
import functools
import hashlib
import io
import json
import math
import re
import threading
import time
import unicodedata
import zipfile
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import PurePosixPath
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket, NoFile
from gridfs.errors import CorruptGridFile
from loguru import logger
from pymongo import ASCENDING, DESCENDING

from config import settings
from database import Store
from ingest import ImportFormatError, import_file
from models import ImportResult

COLLECTION = "files"
BUCKET = "uploads"

CONTENT_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "csv": "text/csv",
    "json": "application/json",
    "text": "text/plain",
}
# Python codec name -> HTTP charset, for serving text files as they were uploaded.
HTTP_CHARSETS = {
    "utf_8": "utf-8",
    "utf_8_sig": "utf-8",
    "ascii": "utf-8",
    "cp1252": "windows-1252",
    "latin_1": "iso-8859-1",
    "iso8859_15": "iso-8859-15",
    "utf_16": "utf-16",
    "utf_16_le": "utf-16le",
    "utf_16_be": "utf-16be",
    "utf_32": "utf-32",
    "mac_roman": "macintosh",
}

# Recognised binary formats we refuse, for a message that tells the user what to do.
REFUSED_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "une image PNG"),
    (b"\xff\xd8\xff", "une image JPEG"),
    (b"GIF87a", "une image GIF"),
    (b"GIF89a", "une image GIF"),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "un document Office ancien (.doc, .xls) : enregistrez-le en .docx ou en PDF",
    ),
    (b"\x1f\x8b", "une archive gzip"),
    (b"7z\xbc\xaf\x27\x1c", "une archive 7z"),
    (b"Rar!\x1a\x07", "une archive RAR"),
    (b"{\\rtf", "un document RTF : enregistrez-le en .docx ou en PDF"),
    (b"\x7fELF", "un exécutable"),
]
TEXT_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)

ZIP_MAX_ENTRIES = 10_000
ZIP_MAX_RATIO = 100  # a member larger than ZIP_RATIO_FLOOR may expand at most this much
ZIP_RATIO_FLOOR = 1 << 20
PDF_MAX_STREAM_BYTES = 16_000_000  # per decoded PDF stream (pypdf's default is 75 MB)
# Tokens parsed per content stream: a dense text page has a few thousand to ~20,000. pypdf's default
# (2,000,000) let one crafted page keep a worker busy for 30 s and more; a page over the budget
# (a huge chart, say) is skipped with a note.
PDF_MAX_STREAM_TOKENS = 100_000
CSV_SNIFF_LINES = 50
MAX_NAME_CHARS = 255
LIST_LIMIT = 500


# --------------------------------------------------------------------------- errors


class FilesError(Exception):
    """A file cannot be stored or read; the message is French, for the user."""


class FileNotFound(FilesError):
    """No such file for this owner (unknown, someone else's, or expired)."""


class FileTooLarge(FilesError):
    """The upload is over FILES_MAX_MB."""


class UnsupportedFile(FilesError):
    """The content is not a PDF, DOCX, CSV, JSON or text file."""


class CorruptFile(FilesError):
    """The content claims a supported type but cannot be read (or is empty)."""


class FileTooComplex(FilesError):
    """Extraction would expand too much or take too long (a bomb, or just too big)."""


class NotAnAuditExport(FilesError):
    """The file cannot be imported into the audit trail."""


# --------------------------------------------------------------------------- extraction


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_text_chars: int
    max_pages: int
    max_unzipped_bytes: int
    timeout_seconds: float

    @classmethod
    def from_settings(cls) -> "Limits":
        return cls(
            max_bytes=int(settings.FILES_MAX_MB * 2**20),
            max_text_chars=int(settings.FILES_MAX_TEXT_CHARS),
            max_pages=int(settings.FILES_MAX_PAGES),
            max_unzipped_bytes=int(settings.FILES_MAX_UNZIPPED_MB * 2**20),
            timeout_seconds=float(settings.FILES_EXTRACT_TIMEOUT_SECONDS),
        )


@dataclass
class Extracted:
    type: str
    text: str
    sha256: str
    text_truncated: bool = False
    encoding: str | None = None
    pages: int | None = None
    rows: int | None = None
    columns: list[str] | None = None
    notes: list[str] = field(default_factory=list)


class _Budget:
    """The extraction's deadline and cancel flag, checked between pages, paragraphs and rows."""

    def __init__(self, seconds: float, cancel: threading.Event | None = None) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.cancel = cancel or threading.Event()

    def check(self) -> None:
        if self.cancel.is_set() or time.monotonic() > self.deadline:
            raise FileTooComplex(_too_slow(self.seconds))


def _too_slow(seconds: float) -> str:
    return f"L'extraction du texte a dépassé {seconds:g} s : document trop complexe."


class _TextSink:
    """Accumulates extracted text up to a number of characters."""

    def __init__(self, limit: int, separator: str = "\n") -> None:
        self.limit = limit
        self.separator = separator
        self.parts: list[str] = []
        self.size = 0
        self.full = False

    def add(self, text: str) -> bool:
        """Add text; False once the limit is reached."""
        if self.full:
            return False
        room = self.limit - self.size
        if len(text) > room:
            text = text[:room]
            self.full = True
        self.parts.append(text)
        self.size += len(text) + len(self.separator)
        if self.size >= self.limit:
            self.full = True
        return not self.full

    def text(self) -> str:
        return self.separator.join(self.parts)[: self.limit]


def sniff_type(data: bytes) -> str:
    """'pdf', 'zip' or 'text' from the first bytes; raises UnsupportedFile for other formats."""
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    for magic, what in REFUSED_MAGIC:
        if head.startswith(magic):
            raise UnsupportedFile(
                f"Type de fichier non pris en charge ({what}). "
                "Formats acceptés : PDF, Word (.docx), CSV, JSON et texte."
            )
    if head.startswith(b"PK"):
        raise UnsupportedFile(
            "Archive ZIP non prise en charge : seuls les documents Word (.docx) sont acceptés."
        )
    if b"\x00" in data[:8192] and not head.startswith(TEXT_BOMS):
        raise UnsupportedFile(
            "Fichier binaire non pris en charge. Formats acceptés : PDF, Word (.docx), CSV, JSON et texte."
        )
    return "text"


def analyze(data: bytes, *, limits: Limits, cancel: threading.Event | None = None) -> Extracted:
    """Decide the type from the content and extract the text, within `limits` (blocking)."""
    budget = _Budget(limits.timeout_seconds, cancel)
    if not data:
        raise CorruptFile("Le fichier est vide.")
    kind = sniff_type(data)
    if kind == "pdf":
        result = _extract_pdf(data, limits, budget)
    elif kind == "zip":
        result = _extract_docx(data, limits, budget)
    else:
        result = _extract_text(data, limits, budget)
    result.sha256 = hashlib.sha256(data).hexdigest()
    return result


_EXTRACTORS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="files-extract")


async def extract(data: bytes, *, limits: Limits) -> Extracted:
    """`analyze` in a worker thread, given up after `limits.timeout_seconds`.

    The worker also checks the deadline between pages, paragraphs and rows, so a stopped
    extraction does not keep its thread busy for long after the caller gave up.
    """
    cancel = threading.Event()
    loop = asyncio.get_running_loop()
    work = loop.run_in_executor(_EXTRACTORS, functools.partial(analyze, data, limits=limits, cancel=cancel))
    try:
        return await asyncio.wait_for(work, timeout=limits.timeout_seconds)
    except TimeoutError:
        cancel.set()
        raise FileTooComplex(_too_slow(limits.timeout_seconds)) from None


# --- PDF


def _extract_pdf(data: bytes, limits: Limits, budget: _Budget) -> Extracted:
    import pypdf
    from pypdf.errors import LimitReachedError

    caps = {
        name: PDF_MAX_STREAM_BYTES
        for name in (
            "maximum_declared_stream_length",
            "array_based_stream_maximum_output_length",
            "jbig2_maximum_output_length",
            "lzw_maximum_output_length",
            "run_length_maximum_output_length",
            "zlib_maximum_output_length",
            "brotli_maximum_output_length",
            "image_maximum_buffer_size",
        )
    }
    caps["stream_parsing_work_maximum_count"] = PDF_MAX_STREAM_TOKENS
    sink = _TextSink(limits.max_text_chars, separator="\n\n")
    failed = too_complex = 0
    with pypdf.apply_configuration(**caps):
        try:
            reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                try:
                    unlocked = reader.decrypt("")
                except Exception:
                    unlocked = 0
                if not unlocked:
                    raise CorruptFile(
                        "Ce PDF est protégé par un mot de passe : enregistrez-en une copie non protégée."
                    )
            n_pages = len(reader.pages)
        except FilesError:
            raise
        except LimitReachedError:
            raise FileTooComplex("Ce PDF dépasse les limites de lecture (structure trop grande).") from None
        except Exception:
            raise CorruptFile("PDF illisible ou endommagé.") from None
        if n_pages == 0:
            raise CorruptFile("PDF illisible : il ne contient aucune page.")
        read = min(n_pages, limits.max_pages)
        for index in range(read):
            budget.check()
            try:
                text = reader.pages[index].extract_text() or ""
            except LimitReachedError:
                too_complex += 1
                continue
            except Exception:
                failed += 1
                continue
            if not sink.add(text.strip()):
                break
    if too_complex and failed + too_complex == read:
        raise FileTooComplex("Ce PDF dépasse les limites de lecture : pages trop complexes.")
    if failed == read:
        raise CorruptFile("PDF illisible : aucune page n'a pu être lue.")
    result = Extracted(
        type="pdf",
        text=sink.text(),
        sha256="",
        text_truncated=sink.full or read < n_pages,
        pages=n_pages,
    )
    if read < n_pages:
        result.notes.append(f"Seules les {read} premières pages sur {n_pages} ont été lues.")
    if failed + too_complex:
        result.notes.append(f"{failed + too_complex} page(s) illisible(s) ou trop complexe(s) ignorée(s).")
    if not result.text.strip():
        result.notes.append("Aucun texte trouvé : le PDF est peut-être une image numérisée.")
    return result


# --- DOCX


def _check_zip(data: bytes, limits: Limits) -> None:
    """Refuse a zip that is not a Word document or would expand too much, before reading it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise CorruptFile("Archive illisible ou endommagée (document Word attendu).") from None
    names = {i.filename for i in infos}
    if "word/document.xml" not in names:
        if "xl/workbook.xml" in names:
            raise UnsupportedFile(
                "Les classeurs Excel ne sont pas pris en charge : exportez la feuille en CSV."
            )
        if "ppt/presentation.xml" in names:
            raise UnsupportedFile(
                "Les présentations PowerPoint ne sont pas prises en charge : enregistrez-la en PDF."
            )
        raise UnsupportedFile(
            "Archive ZIP non prise en charge : seuls les documents Word (.docx) sont acceptés."
        )
    if len(infos) > ZIP_MAX_ENTRIES:
        raise FileTooComplex(f"Document Word refusé : il contient plus de {ZIP_MAX_ENTRIES} éléments.")
    total = sum(i.file_size for i in infos)
    if total > limits.max_unzipped_bytes:
        raise FileTooComplex(
            f"Document Word refusé : décompressé, il ferait {total / 2**20:,.0f} Mo "
            f"(limite {limits.max_unzipped_bytes / 2**20:,.0f} Mo)."
        )
    for info in infos:
        if info.file_size > ZIP_RATIO_FLOOR and info.file_size > ZIP_MAX_RATIO * max(info.compress_size, 1):
            raise FileTooComplex(
                "Document Word refusé : taux de compression anormal (bombe de décompression probable)."
            )


def _extract_docx(data: bytes, limits: Limits, budget: _Budget) -> Extracted:
    import docx
    from docx.table import Table

    # Reading a member never yields more than its declared size (zipfile stops there and checks the
    # CRC), so the declared sizes checked here bound what python-docx can expand.
    _check_zip(data, limits)
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception:
        raise CorruptFile("Document Word (.docx) illisible ou endommagé.") from None
    sink = _TextSink(limits.max_text_chars, separator="\n\n")
    try:
        for block in document.iter_inner_content():
            budget.check()
            if isinstance(block, Table):
                lines, size = [], 0
                for row in block.rows:
                    budget.check()
                    lines.append(" | ".join(cell.text.strip() for cell in row.cells))
                    size += len(lines[-1]) + 1
                    if size > limits.max_text_chars:
                        break
                text = "\n".join(lines)
            else:
                text = block.text.strip()
            if text and not sink.add(text):
                break
    except FilesError:
        raise
    except Exception:
        raise CorruptFile("Document Word (.docx) illisible ou endommagé.") from None
    return Extracted(
        type="docx", text=sink.text(), sha256="", text_truncated=sink.full, pages=_docx_pages(data)
    )


def _docx_pages(data: bytes) -> int | None:
    """The page count Word saved in docProps/app.xml, if any."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            info = zf.getinfo("docProps/app.xml")
            if info.file_size > 1 << 20:
                return None
            xml = zf.read(info).decode("utf-8", errors="replace")
    except (KeyError, zipfile.BadZipFile, ValueError):
        return None
    m = re.search(r"<(?:\w+:)?Pages>\s*(\d+)\s*<", xml)
    return int(m[1]) if m else None


# --- text, CSV, JSON


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, Python codec name): UTF-8 first, else the encoding charset-normalizer detects."""
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[3:].decode("utf-8"), "utf_8_sig"
        except UnicodeDecodeError:
            pass
    if not data.startswith(TEXT_BOMS):
        try:
            return data.decode("utf-8"), "utf_8"
        except UnicodeDecodeError:
            pass
    from charset_normalizer import from_bytes
    from charset_normalizer.md import mess_ratio

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise UnsupportedFile(
            "Encodage du texte non reconnu (fichier binaire ?). "
            "Formats acceptés : PDF, Word (.docx), CSV, JSON et texte."
        )
    # On short texts several code pages tie (cp1250 or even cp932 win and turn "è" into "č"); our
    # users write French, so Windows-1252 wins whenever it reads as cleanly as the winner.
    if best.encoding != "cp1252":
        try:
            western = data.decode("cp1252")
        except UnicodeDecodeError:
            western = None
        if western is not None and mess_ratio(western[:32768], 1.0) <= best.chaos + 0.01:
            return western, "cp1252"
    encoding = codecs.lookup(best.encoding).name.replace("-", "_")
    return str(best), encoding


def _extract_text(data: bytes, limits: Limits, budget: _Budget) -> Extracted:
    text, encoding = decode_text(data)
    text = text.lstrip("\ufeff")
    budget.check()
    result = Extracted(type="text", text="", sha256="", encoding=encoding)
    json_rows = _json_records(text, budget)
    if json_rows is not None:
        result.type, result.rows = "json", json_rows
    else:
        shape = _csv_shape(text)
        if shape is not None:
            delimiter, header = shape
            result.type, result.columns = "csv", header
            result.rows = _csv_rows(text, delimiter, budget)
    result.text = text[: limits.max_text_chars]
    result.text_truncated = len(text) > limits.max_text_chars
    return result


def _json_records(text: str, budget: _Budget) -> int | None:
    """Record count of a JSON document (array length, else 1) or of JSON Lines; None if neither."""
    stripped = text.lstrip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):  # too deeply nested: not records, read as text
        pass
    else:
        return len(value) if isinstance(value, list) else 1
    count = 0
    for number, line in enumerate(stripped.splitlines()):
        if number % 10_000 == 0:
            budget.check()
        if not line.strip():
            continue
        try:
            json.loads(line)
        except (ValueError, RecursionError):
            return None
        count += 1
    return count if count > 1 else None


def _csv_shape(text: str) -> tuple[str, list[str]] | None:
    """(delimiter, header) when the first lines have one consistent number (2+) of fields."""
    sample = text[:65536]
    lines = sample.splitlines()
    if len(sample) < len(text) and lines:
        lines = lines[:-1]  # the last one may be cut
    lines = [line for line in lines[:CSV_SNIFF_LINES] if line.strip()]
    if len(lines) < 2:
        return None
    best: tuple[int, str, list[str]] | None = None
    for delimiter in (",", ";", "\t", "|"):
        rows = list(csv.reader(lines, delimiter=delimiter))
        header = [cell.strip() for cell in rows[0]]
        width = len(header)
        if width < 2 or not all(header) or max(len(h) for h in header) > 100:
            continue
        consistent = sum(len(r) == width for r in rows[1:])
        if consistent < 0.9 * (len(rows) - 1):
            continue
        if best is None or width > best[0]:
            best = (width, delimiter, header)
    return (best[1], best[2]) if best else None


def _csv_rows(text: str, delimiter: str, budget: _Budget) -> int:
    count = -1  # the header
    for number, row in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter)):
        if number % 10_000 == 0:
            budget.check()
        if any(cell.strip() for cell in row):
            count += 1
    return max(count, 0)


# --------------------------------------------------------------------------- storage


def _files(store: Store):
    return store[COLLECTION]


def _bucket(store: Store) -> AsyncGridFSBucket:
    return AsyncGridFSBucket(store.db, bucket_name=BUCKET)


def _oid(file_id: str) -> ObjectId:
    try:
        return ObjectId(file_id)
    except (InvalidId, TypeError):
        raise FileNotFound("Fichier introuvable.") from None


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)  # what BSON keeps


def clean_name(name: str | None) -> str:
    """The base name of an uploaded file, without path or control characters."""
    base = PurePosixPath((name or "").replace("\\", "/")).name
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:MAX_NAME_CHARS] or "fichier"


def public(doc: dict[str, Any], *, with_text: bool = False) -> dict[str, Any]:
    """The API view of a metadata document."""
    out = {
        "id": str(doc["_id"]),
        "owner": doc["owner"],
        "name": doc["name"],
        "type": doc["type"],
        "content_type": doc["content_type"],
        "size": doc["size"],
        "sha256": doc["sha256"],
        "encoding": doc.get("encoding"),
        "pages": doc.get("pages"),
        "rows": doc.get("rows"),
        "columns": doc.get("columns"),
        "text_chars": doc.get("text_chars", 0),
        "text_truncated": doc.get("text_truncated", False),
        "notes": doc.get("notes", []),
        "created_at": doc["created_at"],
        "expires_at": doc["expires_at"],
    }
    if with_text:
        out["text"] = doc.get("text", "")
    return out


def http_content_type(doc: dict[str, Any]) -> str:
    """The Content-Type to serve the stored bytes with."""
    base = doc["content_type"]
    charset = HTTP_CHARSETS.get(doc.get("encoding") or "")
    return (
        f"{base}; charset={charset}" if charset and base.startswith(("text/", "application/json")) else base
    )


async def ensure_indexes(store: Store) -> None:
    files = _files(store)
    await files.create_index("expires_at", expireAfterSeconds=0)
    await files.create_index([("owner", ASCENDING), ("created_at", DESCENDING)])
    await store[f"{BUCKET}.files"].create_index("metadata.expires_at")
    await store[f"{BUCKET}.chunks"].create_index([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)


async def save_file(
    store: Store,
    *,
    owner: str,
    name: str | None,
    data: bytes,
    limits: Limits | None = None,
    ttl_days: float | None = None,
) -> dict[str, Any]:
    """Check, extract and store an upload; returns its public metadata (without the text)."""
    limits = limits or Limits.from_settings()
    if len(data) > limits.max_bytes:
        raise FileTooLarge(f"Fichier trop volumineux (limite {limits.max_bytes / 2**20:g} Mo).")
    extracted = await extract(data, limits=limits)
    now = _now()
    ttl = settings.FILES_TTL_DAYS if ttl_days is None else ttl_days
    expires = now + timedelta(days=ttl)
    file_id = ObjectId()
    doc = {
        "_id": file_id,
        "owner": owner,
        "name": clean_name(name),
        "type": extracted.type,
        "content_type": CONTENT_TYPES[extracted.type],
        "encoding": extracted.encoding,
        "size": len(data),
        "sha256": extracted.sha256,
        "pages": extracted.pages,
        "rows": extracted.rows,
        "columns": extracted.columns,
        "text": extracted.text,
        "text_chars": len(extracted.text),
        "text_truncated": extracted.text_truncated,
        "notes": extracted.notes,
        "created_at": now,
        "expires_at": expires,
    }
    bucket = _bucket(store)
    await bucket.upload_from_stream_with_id(
        file_id,
        doc["name"],
        data,
        metadata={"owner": owner, "expires_at": expires, "content_type": doc["content_type"]},
    )
    try:
        await _files(store).insert_one(doc)
    except Exception:
        await _delete_bytes(store, [file_id])
        raise
    return public(doc)


def _live(owner: str | None, now: datetime) -> dict[str, Any]:
    query: dict[str, Any] = {"expires_at": {"$gt": now}}
    if owner is not None:
        query["owner"] = owner
    return query


async def list_files(store: Store, *, owner: str, limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """The owner's unexpired files, newest first, without their text."""
    cursor = (
        _files(store)
        .find(_live(owner, _now()), projection={"text": 0})
        .sort("created_at", DESCENDING)
        .limit(limit)
    )
    return [public(doc) async for doc in cursor]


async def _find(store: Store, *, owner: str | None, file_id: str, with_text: bool) -> dict[str, Any]:
    query = {"_id": _oid(file_id), **_live(owner, _now())}
    doc = await _files(store).find_one(query, projection=None if with_text else {"text": 0})
    if doc is None:
        raise FileNotFound("Fichier introuvable.")
    return doc


async def get_file(store: Store, *, owner: str, file_id: str, with_text: bool = True) -> dict[str, Any]:
    """One of the owner's files (metadata and, by default, its text); FileNotFound otherwise."""
    return public(await _find(store, owner=owner, file_id=file_id, with_text=with_text), with_text=with_text)


async def open_content(
    store: Store, *, owner: str, file_id: str
) -> tuple[dict[str, Any], AsyncIterator[bytes]]:
    """(metadata, the stored bytes chunk by chunk) of one of the owner's files."""
    doc = await _find(store, owner=owner, file_id=file_id, with_text=False)
    try:
        grid_out = await _bucket(store).open_download_stream(doc["_id"])
        # Read the first chunk now: a file deleted meanwhile is a 404, not a response cut short.
        first = await grid_out.readchunk()
    except (NoFile, CorruptGridFile):
        raise FileNotFound("Fichier introuvable.") from None

    async def chunks() -> AsyncIterator[bytes]:
        try:
            chunk = first
            while chunk:
                yield chunk
                chunk = await grid_out.readchunk()
        except CorruptGridFile:  # deleted while it was being sent: the client sees a short body
            logger.warning("file {} deleted while being downloaded", file_id)
        finally:
            await grid_out.close()

    return {**public(doc), "http_content_type": http_content_type(doc)}, chunks()


async def read_bytes(store: Store, *, file_id: ObjectId) -> bytes:
    try:
        grid_out = await _bucket(store).open_download_stream(file_id)
    except NoFile:
        raise FileNotFound("Fichier introuvable.") from None
    async with grid_out:
        return await grid_out.read()


async def delete_file(store: Store, *, owner: str, file_id: str) -> None:
    """Delete one of the owner's files, bytes and metadata."""
    oid = _oid(file_id)
    result = await _files(store).delete_one({"_id": oid, **_live(owner, _now())})
    if not result.deleted_count:
        raise FileNotFound("Fichier introuvable.")
    await _delete_bytes(store, [oid])


async def _delete_bytes(store: Store, ids: list[ObjectId]) -> None:
    # Chunks first: a failure then leaves a files entry the next sweep still finds.
    await store[f"{BUCKET}.chunks"].delete_many({"files_id": {"$in": ids}})
    await store[f"{BUCKET}.files"].delete_many({"_id": {"$in": ids}})


async def sweep_expired(store: Store, *, now: datetime | None = None, batch: int = 500) -> int:
    """Delete the bytes and metadata of expired files; returns how many files' bytes went.

    Works from the expiry kept in GridFS, so bytes whose metadata the TTL monitor already removed
    are found too.
    """
    now = now or _now()
    grid_files = store[f"{BUCKET}.files"]
    removed = 0
    while True:
        cursor = grid_files.find({"metadata.expires_at": {"$lte": now}}, projection={"_id": 1}).limit(batch)
        ids = [doc["_id"] async for doc in cursor]
        if not ids:
            break
        await _delete_bytes(store, ids)
        removed += len(ids)
    await _files(store).delete_many({"expires_at": {"$lte": now}})
    return removed


# --------------------------------------------------------------------------- chat and import


async def get_files_for_chat(store: Store, *, owner: str, file_ids: list[str]) -> list[dict[str, Any]]:
    """Metadata and text of the owner's files, in the order asked; FileNotFound if any is not theirs."""
    wanted = list(dict.fromkeys(file_ids))
    if not wanted:
        return []
    oids = [_oid(file_id) for file_id in wanted]
    query = {"_id": {"$in": oids}, **_live(owner, _now())}
    found = {str(doc["_id"]): doc async for doc in _files(store).find(query)}
    missing = [file_id for file_id in wanted if str(_oid(file_id)) not in found]
    if missing:
        raise FileNotFound(f"Fichier introuvable : {', '.join(missing)}.")
    return [public(found[str(_oid(file_id))], with_text=True) for file_id in wanted]


async def import_into_audit(
    store: Store, *, file_id: str, tz: tzinfo, batch_size: int = 2000, owner: str | None = None
) -> ImportResult:
    """Import a stored audit export (CSV, JSON, JSON Lines) into the trail with ingest.import_file.

    `owner=None` (an admin) may import anyone's unexpired file.
    """
    doc = await _find(store, owner=owner, file_id=file_id, with_text=False)
    if doc["type"] not in ("csv", "json", "text"):
        raise NotAnAuditExport(
            "Ce fichier n'est pas un export d'audit : seuls les fichiers CSV, JSON et JSON Lines s'importent."
        )
    data = await read_bytes(store, file_id=doc["_id"])
    encoding = doc.get("encoding") or "utf_8"
    if encoding not in ("utf_8", "utf_8_sig", "ascii"):  # ingest guesses from the first 64 KB only
        data = await asyncio.to_thread(lambda: data.decode(encoding, errors="replace").encode("utf-8"))
    try:
        return await import_file(store, io.BytesIO(data), tz=tz, batch_size=batch_size)
    except ImportFormatError as exc:
        raise NotAnAuditExport(f"Ce fichier n'est pas un export d'audit lisible : {exc}.") from None


# --------------------------------------------------------------------------- keyword passages

_STOP_WORDS = """
    a ai ainsi alors as au aucun aucune aussi autre autres aux avaient avais avait avant avec avez avoir
    avons bien c ca car ce ceci cela celle celles celui ces cet cette ceux chaque chez comme comment
    d dans de des deja depuis donc dont du elle elles en encore entre es est et etaient etais etait
    etant ete etes etre eu eux fait faire fais faut il ils j je jusqu l la laquelle le lequel les
    lesquelles lesquels leur leurs lui m ma mais me meme memes mes moi moins mon n ne ni non nos notre
    nous on ont or ou par parce pas peu peut peuvent plus pour pourquoi pouvez puis qu quand que quel
    quelle quelles quels qui quoi s sa sans se sera seront ses si sien son sont sous sur t ta te tes
    toi ton tous tout toute toutes tres tu un une vers voici voila vos votre vous y
    combien quelles lors y-a-t-il est-ce svp merci
    dit dis dire disent parle parlent contient mentionne mentionnent indique explique resume resumer
    montre montrer donne donner trouve trouver cherche chercher peux pourrais voudrais veux
    fichier fichiers document documents texte joint jointe pieces piece passage passages
"""
FRENCH_STOP_WORDS = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"\w+")
_COMBINING = re.compile(r"[\u0300-\u036f]")
_LIGATURES = (("œ", "oe"), ("Œ", "OE"), ("æ", "ae"), ("Æ", "AE"), ("ß", "ss"))
PASSAGE_TARGET = 600
PASSAGE_MAX = 900


def fold(text: str) -> str:
    """Lower case without accents: 'Sécurité' -> 'securite'."""
    if text.isascii():
        return text.lower()
    for ligature, letters in _LIGATURES:
        text = text.replace(ligature, letters)
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text)).lower()


def _stem(word: str) -> str:
    # Light French stemming: drop a plural mark, then keep a 7-letter prefix
    # (connexions -> connexi, sauvegardes -> sauvega).
    if len(word) > 3 and word[-1] in "sx":
        word = word[:-1]
    return word[:7]


def _terms(folded: str) -> list[str]:
    """Stemmed content words of a folded text."""
    return [_stem(w) for w in _WORD.findall(folded) if len(w) > 1 and w not in FRENCH_STOP_WORDS and w != "_"]


def _is_heading(block: str) -> bool:
    return len(block) <= 80 and "\n" not in block and not block.endswith((".", "!", "?", ";", ":", ","))


def split_passages(text: str) -> list[str]:
    """Paragraph-sized passages: blank-line blocks, long ones cut at sentence ends, short ones merged.

    A heading (a short block without final punctuation) starts a passage rather than ending one.
    """
    units: list[tuple[str, bool]] = []
    for block in re.split(r"\n\s*\n", text):
        block = re.sub(r"[ \t\r\f\v]+", " ", block).strip()
        if not block:
            continue
        if len(block) <= PASSAGE_MAX:
            units.append((block, _is_heading(block)))
            continue
        for piece in re.split(r"(?<=[.!?;:])\s+|\n", block):
            piece = piece.strip()
            while len(piece) > PASSAGE_MAX:
                cut = piece.rfind(" ", 0, PASSAGE_TARGET)
                cut = cut if cut > PASSAGE_TARGET // 2 else PASSAGE_TARGET
                units.append((piece[:cut].strip(), False))
                piece = piece[cut:].strip()
            if piece:
                units.append((piece, False))
    passages: list[str] = []
    current, only_headings = "", False
    for unit, heading in units:
        # A heading keeps the block after it, up to PASSAGE_MAX.
        limit = PASSAGE_MAX if only_headings else PASSAGE_TARGET
        full = len(current) + 1 + len(unit) > limit
        if current and (full or (heading and not only_headings and len(current) >= PASSAGE_TARGET // 3)):
            passages.append(current)
            current, only_headings = unit, heading
        else:
            current = f"{current}\n{unit}" if current else unit
            only_headings = heading and (only_headings or current == unit)
    if current:
        passages.append(current)
    return passages


def keyword_passages(text: str, question: str, *, max_passages: int = 3) -> list[str]:
    """The passages of `text` that best match the question's words (BM25, no LLM), best first.

    French stop words are ignored, accents and case folded, plurals and endings matched by a light
    stemmer. A question without any content word gets the opening passages; a question whose words
    appear nowhere gets [].
    """
    passages = split_passages(text or "")
    if not passages or max_passages <= 0:
        return []
    query = list(dict.fromkeys(_terms(fold(question))))
    if not query:
        return passages[:max_passages]
    folded = [fold(p) for p in passages]
    n = len(passages)
    avg_len = sum(map(len, folded)) / n or 1.0  # lengths in characters stand for lengths in words
    # A word stemming to a query term contains it: only passages holding a term as text are tokenized.
    counts = {
        index: Counter(_terms(text)) for index, text in enumerate(folded) if any(t in text for t in query)
    }
    df = {term: sum(1 for c in counts.values() if term in c) for term in query}
    k1, b = 1.2, 0.75
    scored: list[tuple[float, int]] = []
    for index, terms in counts.items():
        norm = k1 * (1 - b + b * len(folded[index]) / avg_len)
        score = 0.0
        for term in query:
            tf = terms.get(term, 0)
            if tf:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf * (k1 + 1) / (tf + norm)
        if score > 0:
            scored.append((score, index))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [passages[index] for _, index in scored[:max_passages]]

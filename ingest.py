"""Normalisation of audit rows and import of audit exports (JSON Lines, JSON array, CSV)."""

import asyncio
import codecs
import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import IO, Any
from zoneinfo import ZoneInfo

from pymongo.errors import BulkWriteError

import rollups
from audit_shape import INT_COLUMNS, TEXT_COLUMNS, ColumnTypeError, coerce_extra, coerce_text
from database import Store
from models import ImportResult, ImportRowError

MAX_REPORTED_ERRORS = 1000
TOO_DEEP = "JSON trop profondément imbriqué pour un export d'audit"

KEY_SYNONYMS = {
    "db_username": "dbusername",
    "db_user": "dbusername",
    "dbuser": "dbusername",
    "username": "dbusername",
    "user_name": "dbusername",
    "timestamp": "event_timestamp",
    "event_time": "event_timestamp",
    "extended_timestamp": "event_timestamp",
    "sessionid": "session_id",
    "os_user": "os_username",
    "osuser": "os_username",
    "client_program": "client_program_name",
    "program": "client_program_name",
    "returncode": "return_code",
    "sql_bind": "sql_binds",
    "owner": "object_schema",
    "obj_name": "object_name",
    "instance_number": "instance_id",
}
NULL_STRINGS = {"", "(null)", "null"}
VERBATIM_FIELDS = {"sql_text", "sql_binds"}  # kept to the character (binds start with a space)

MONTHS = {
    "JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6,
    "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12,
    "JANV": 1, "FEVR": 2, "FÉVR": 2, "MARS": 3, "AVR": 4, "MAI": 5, "JUIN": 6,
    "JUIL": 7, "AOUT": 8, "AOÛT": 8, "SEPT": 9, "NOVE": 11, "DEC.": 12, "DÉC": 12,
}  # fmt: skip
ORACLE_TS = re.compile(
    r"^(\d{1,2})-([^\W\d_]+)\.?-(\d{2}|\d{4})\s+(\d{1,2})[.:](\d{2})[.:](\d{2})"
    r"(?:[.,](\d{1,9}))?\s*(AM|PM)?\s*(.*)$",
    re.IGNORECASE,
)
LONG_FRACTION = re.compile(r"(\.\d{6})\d+")


class ImportFormatError(ValueError):
    """The file is not a JSON or CSV audit export."""


class RowError(ValueError):
    """A row cannot be read as an audit event."""


# --------------------------------------------------------------------------- one row


def _zone(text: str) -> tzinfo | None:
    text = text.strip()
    if not text:
        return None
    if text.upper() in ("UTC", "GMT", "Z"):
        return UTC
    m = re.fullmatch(r"([+-])(\d{1,2}):?(\d{2})", text)
    if m:
        delta = timedelta(hours=int(m[2]), minutes=int(m[3]))
        return timezone(-delta if m[1] == "-" else delta)
    try:
        return ZoneInfo(text.title() if "/" in text else text)
    except Exception as exc:
        raise RowError(f"fuseau horaire inconnu : {text!r}") from exc


def _parse_oracle(m: re.Match) -> tuple[datetime, tzinfo | None]:
    day, mon, year, hour, minute, second, frac, ampm, zone = m.groups()
    month = MONTHS.get(mon.upper().rstrip("."))
    if month is None:
        raise RowError(f"mois inconnu : {mon!r}")
    y = int(year)
    if len(year) == 2:  # Oracle's RR: 00-49 -> 20xx, 50-99 -> 19xx
        y += 2000 if y < 50 else 1900
    h = int(hour)
    if ampm:
        h = h % 12 + (12 if ampm.upper() == "PM" else 0)
    micro = int((frac or "0")[:6].ljust(6, "0"))
    return datetime(y, month, int(day), h, int(minute), int(second), micro), _zone(zone)


def parse_timestamp(value: Any, tz: tzinfo) -> datetime:
    """Read ISO 8601, `YYYY-MM-DD HH:MM:SS[.ffffff]` or Oracle's `DD-MON-RR HH.MI.SS.FF AM`.

    A naive time is read in `tz`; the result is in UTC.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, UTC)
    elif isinstance(value, dict) and "$date" in value:  # MongoDB extended JSON
        return parse_timestamp(value["$date"], tz)
    elif isinstance(value, str):
        text = value.strip()
        m = ORACLE_TS.match(text)
        if m:
            dt, zone = _parse_oracle(m)
            if zone is not None:
                dt = dt.replace(tzinfo=zone)
        else:
            try:
                dt = datetime.fromisoformat(LONG_FRACTION.sub(r"\1", text))
            except ValueError as exc:
                raise RowError(f"horodatage illisible : {text[:40]!r}") from exc
    else:
        raise RowError(f"horodatage illisible : {value!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return to_bson_precision(dt.astimezone(UTC))


def to_bson_precision(dt: datetime) -> datetime:
    """BSON dates hold milliseconds: ids must be computed on what the store keeps."""
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def _to_int(name: str, value: Any) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63):
        return value
    try:
        number = float(str(value).strip())
    except ValueError:
        raise RowError(f"{name.upper()} n'est pas un nombre : {str(value)[:40]!r}") from None
    if not number.is_integer():
        raise RowError(f"{name.upper()} n'est pas un entier : {value!r}")
    if abs(number) >= 2**63:  # BSON integers are 64-bit
        raise RowError(f"{name.upper()} est trop grand : {str(value)[:40]!r}")
    return int(number)


def _clean_key(key: Any) -> str:
    name = str(key).strip().lstrip("\ufeff").lower().replace(" ", "_")
    name = KEY_SYNONYMS.get(name, name)
    return name.replace("$", "_").replace(".", "_")


def normalize_row(row: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    """An audit document from an exported row, with a stable `_id` derived from its content."""
    doc: dict[str, Any] = {}
    utc_stamp = None
    for key, value in row.items():
        name = _clean_key(key)
        if name == "_id":
            continue
        if "\x00" in name or (isinstance(value, str) and "\x00" in value):
            raise RowError(f"caractère NUL dans {name.replace(chr(0), '').upper() or 'une colonne'}")
        if isinstance(value, str):
            if value.strip().lower() in NULL_STRINGS:
                value = None
            elif name not in VERBATIM_FIELDS:
                value = value.strip()
        if name == "event_timestamp_utc":
            utc_stamp = value
            continue
        doc[name] = value
    if utc_stamp is not None:
        doc["event_timestamp"] = parse_timestamp(utc_stamp, UTC)
    elif doc.get("event_timestamp") is None:
        raise RowError("event_timestamp manquant")
    else:
        doc["event_timestamp"] = parse_timestamp(doc["event_timestamp"], tz)
    for name, value in doc.items():
        if name in INT_COLUMNS:
            doc[name] = _to_int(name, value)
        elif name in TEXT_COLUMNS:
            try:
                doc[name] = coerce_text(name, value)
            except ColumnTypeError as exc:
                raise RowError(str(exc)) from None
        elif name != "event_timestamp":
            doc[name] = coerce_extra(value)
    if doc.get("return_code") is None:
        doc["return_code"] = 0
    doc["_id"] = event_id(doc)
    return doc


def event_id(doc: dict[str, Any]) -> str:
    canonical = json.dumps(
        {k: v for k, v in doc.items() if k != "_id"}, sort_keys=True, default=str, ensure_ascii=False
    )
    return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()


# --------------------------------------------------------------------------- files

CSV_DELIMITERS = (",", ";", "\t", "|")


def detect_encoding(head: bytes) -> str:
    # A binary file is full of NUL bytes; a stray one is a broken row, wherever it is (normalize_row).
    if head.count(b"\x00") > max(1, len(head) // 100):
        raise ImportFormatError("fichier binaire : seuls JSON, JSON Lines et CSV sont acceptés")
    try:
        codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
        return "utf-8-sig"
    except UnicodeDecodeError:
        return "cp1252"


def detect_format(head: str) -> str:
    """'json', 'jsonl' or 'csv' from the first characters of a file."""
    text = head.lstrip("\ufeff \t\r\n")
    if not text:
        raise ImportFormatError("fichier vide")
    if text[0] == "[":
        return "json"
    if text[0] == "{":
        return "jsonl"
    header = text.splitlines()[0]
    if max(header.count(d) for d in CSV_DELIMITERS) < 1 or text.startswith("%PDF"):
        raise ImportFormatError("format non reconnu : seuls JSON, JSON Lines et CSV sont acceptés")
    return "csv"


def iter_file_rows(binary: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """(line number, row or error) for each record of an audit export."""
    head = binary.read(65536)
    binary.seek(0)
    encoding = detect_encoding(head)
    fmt = detect_format(head.decode(encoding, errors="ignore"))
    text = io.TextIOWrapper(binary, encoding=encoding, errors="replace", newline="")
    try:
        if fmt == "jsonl":
            yield from _jsonl_rows(text)
        elif fmt == "json":
            yield from _json_rows(text)
        else:
            yield from _csv_rows(text)
    finally:
        text.detach()


def _jsonl_rows(text: IO[str]) -> Iterator[tuple[int, dict | RowError]]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, RowError(f"JSON invalide : {exc.msg}")
            continue
        except RecursionError:
            yield number, RowError(TOO_DEEP)
            continue
        yield number, row if isinstance(row, dict) else RowError("la ligne n'est pas un objet JSON")


def _json_rows(text: IO[str]) -> Iterator[tuple[int, dict | RowError]]:
    try:
        rows = json.load(text)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(f"JSON invalide ligne {exc.lineno} : {exc.msg}") from exc
    except RecursionError:
        raise ImportFormatError(TOO_DEEP) from None
    if not isinstance(rows, list):
        raise ImportFormatError("le JSON doit être un tableau d'objets")
    for number, row in enumerate(rows, start=1):  # element number stands for the line
        yield number, row if isinstance(row, dict) else RowError("l'élément n'est pas un objet JSON")


def _csv_rows(text: IO[str]) -> Iterator[tuple[int, dict | RowError]]:
    header = text.readline()
    delimiter = max(CSV_DELIMITERS, key=header.count)
    names = next(csv.reader([header], delimiter=delimiter))
    reader = csv.reader(text, delimiter=delimiter)
    for values in reader:
        number = reader.line_num + 1
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(names):
            yield number, RowError(f"{len(values)} colonnes au lieu de {len(names)}")
            continue
        yield number, dict(zip(names, values, strict=True))


# --------------------------------------------------------------------------- import


def _normalize_batch(
    rows: Iterator[tuple[int, dict | RowError]], size: int, tz: tzinfo
) -> tuple[list[dict], list[ImportRowError], bool]:
    docs: list[dict] = []
    errors: list[ImportRowError] = []
    for _ in range(size):
        item = next(rows, None)
        if item is None:
            return docs, errors, True
        number, row = item
        try:
            if isinstance(row, RowError):
                raise row
            docs.append(normalize_row(row, tz))
        except RowError as exc:
            errors.append(ImportRowError(line=number, message=str(exc)))
    return docs, errors, False


async def _insert(store: Store, docs: list[dict], counts: rollups.Accumulator) -> tuple[int, int]:
    """(inserted, duplicates) for an unordered bulk insert; the rollups get the inserted events."""
    if not docs:
        return 0, 0
    # The batch is in flight from its lease to the write of its rollups: readers may trust the rollups
    # meanwhile. Its counts are computed while the store inserts it (again if some are refused).
    await counts.begin(len(docs))
    counting = asyncio.ensure_future(asyncio.to_thread(rollups.count, docs))
    try:
        result = await store.audit.insert_many(docs, ordered=False)
        inserted, duplicates = docs, 0
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        refused = {e.get("index") for e in errors}
        inserted = [d for i, d in enumerate(docs) if i not in refused]
        duplicates = len(errors)
    else:
        if len(result.inserted_ids) != len(docs):  # never with ordered=False and no error
            raise RuntimeError("insert_many did not insert every document")
    delta = await counting
    if duplicates:  # only the events the store took are counted: a re-imported event never counts twice
        delta = await asyncio.to_thread(rollups.count, inserted)
    await counts.add(delta, len(inserted))
    return len(inserted), duplicates


async def import_rows(
    store: Store,
    rows: Iterable[tuple[int, dict | RowError]],
    *,
    tz: tzinfo,
    batch_size: int = 2000,
    on_batch: Callable[[ImportResult], None] | None = None,
) -> ImportResult:
    """Normalise rows and bulk-insert them; the next batch is read while the last one is written.

    Reading and normalising run in a worker thread so the event loop stays free.
    """
    result = ImportResult()
    iterator = iter(rows)
    pending: asyncio.Task | None = None
    counts = rollups.Accumulator(store)

    async def settle() -> None:
        if pending is None:
            return
        inserted, duplicates = await pending
        result.inserted += inserted
        result.duplicates += duplicates
        if on_batch:
            on_batch(result)

    try:
        done = False
        while not done:
            docs, errors, done = await asyncio.to_thread(_normalize_batch, iterator, batch_size, tz)
            room = MAX_REPORTED_ERRORS - len(result.errors)
            result.errors.extend(errors[: max(room, 0)])
            result.error_count += len(errors)
            result.errors_truncated = result.error_count > len(result.errors)
            if pending is not None:
                await settle()
            pending = asyncio.create_task(_insert(store, docs, counts))
        await settle()
    finally:
        try:
            if pending is not None and not pending.done():
                pending.cancel()
                await asyncio.wait([pending])  # its lease is among those `close` ends
        finally:
            await counts.close()
    if result.inserted:
        await rollups.carry(store, await store.bump_audit_version())
    return result


async def import_file(
    store: Store,
    binary: IO[bytes],
    *,
    tz: tzinfo,
    batch_size: int = 2000,
    on_batch: Callable[[ImportResult], None] | None = None,
) -> ImportResult:
    """Import an audit export; raises ImportFormatError when it is not JSON or CSV."""
    rows = iter_file_rows(binary)
    first = await asyncio.to_thread(next, rows, None)  # format errors surface here
    if first is None:
        return ImportResult()

    def chained() -> Iterator[tuple[int, dict | RowError]]:
        yield first
        yield from rows

    return await import_rows(store, chained(), tz=tz, batch_size=batch_size, on_batch=on_batch)


async def insert_documents(
    store: Store,
    docs: list[dict],
    *,
    batch_size: int = 2000,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Bulk-insert documents that are already normalised; (inserted, duplicates)."""
    inserted = duplicates = 0
    async with rollups.Accumulator(store) as counts:
        for i in range(0, len(docs), batch_size):
            ins, dup = await _insert(store, docs[i : i + batch_size], counts)
            inserted, duplicates = inserted + ins, duplicates + dup
            if on_batch:
                on_batch(ins + dup)
    if inserted:
        await rollups.carry(store, await store.bump_audit_version())
    return inserted, duplicates

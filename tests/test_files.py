"""Files: real PDF, DOCX and CSV files made here, type from content, bounds, ownership, expiry, import."""

import codecs
import dataclasses
import hashlib
import io
import json
import zipfile

import docx
import pypdf
import pytest

import files_service
from config import settings

OCTET = "application/octet-stream"

CLEAN = {"errors": [], "error_count": 0, "errors_truncated": False}


# --------------------------------------------------------------------------- file makers


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF (Helvetica, WinAnsi) with one text page per item."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(len(pages))), len(pages)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, text in enumerate(pages):
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in text.split("\n"):
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("cp1252")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Rapport de contrôle des accès", level=1)
    document.add_paragraph("Le compte SCOTT a supprimé la table HR.EMPLOYEES pendant la nuit.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Utilisateur", "Action"
    table.cell(1, 0).text, table.cell(1, 1).text = "SCOTT", "DROP TABLE"
    document.add_paragraph("Recommandation : révoquer le privilège DROP ANY TABLE.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_zip_bomb() -> bytes:
    """A zip that looks like a Word document and declares 64 MB of zeros in ~64 KB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", b"\0" * (64 << 20))
    return buffer.getvalue()


AUDIT_CSV = (
    "EVENT_TIMESTAMP;DBUSERNAME;ACTION_NAME;RETURN_CODE;OBJECT_SCHEMA;OBJECT_NAME\n"
    "2024-03-01 10:00:00;SCOTT;SELECT;0;HR;EMPLOYEES\n"
    "2024-03-01 10:05:00;SCOTT;DELETE;0;HR;EMPLOYEES\n"
    "2024-03-01 23:40:00;ADMIN_TEMP;DROP TABLE;1031;HR;SALAIRES_ÉTÉ\n"
)


async def upload(client, headers, name: str, data: bytes, content_type: str = OCTET):
    return await client.post("/api/files", headers=headers, files={"file": (name, data, content_type)})


def created(r) -> dict:
    assert r.status_code == 201, r.text
    return r.json()


# --------------------------------------------------------------------------- supported files


async def test_pdf_is_stored_with_its_text_and_pages(client, auditor_headers):
    pdf = make_pdf(["Rapport d'audit Oracle\nConnexions échouées : 12", "Sauvegarde quotidienne à 2h"])
    meta = created(await upload(client, auditor_headers, "rapport.pdf", pdf, "application/pdf"))
    assert meta["type"] == "pdf"
    assert meta["pages"] == 2
    assert meta["size"] == len(pdf)
    assert meta["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert meta["owner"] == "auditor1"
    assert "text" not in meta

    r = await client.get(f"/api/files/{meta['id']}", headers=auditor_headers)
    assert r.status_code == 200
    text = r.json()["text"]
    assert "Connexions échouées : 12" in text
    assert "Sauvegarde quotidienne" in text

    r = await client.get(f"/api/files/{meta['id']}/content", headers=auditor_headers)
    assert r.status_code == 200
    assert r.content == pdf
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert 'filename="rapport.pdf"' in r.headers["content-disposition"]

    r = await client.get("/api/files", headers=auditor_headers)
    assert meta["id"] in {f["id"] for f in r.json()["files"]}


async def test_docx_text_includes_paragraphs_and_tables(client, auditor_headers):
    meta = created(await upload(client, auditor_headers, "contrôle accès.docx", make_docx()))
    assert meta["type"] == "docx"
    assert meta["name"] == "contrôle accès.docx"
    r = await client.get(f"/api/files/{meta['id']}", headers=auditor_headers)
    text = r.json()["text"]
    assert "Rapport de contrôle des accès" in text
    assert "SCOTT | DROP TABLE" in text
    assert "révoquer le privilège" in text

    r = await client.get(f"/api/files/{meta['id']}/content", headers=auditor_headers)
    assert r.headers["content-type"] == files_service.CONTENT_TYPES["docx"]
    assert "filename*=UTF-8''contr%C3%B4le%20acc%C3%A8s.docx" in r.headers["content-disposition"]


async def test_csv_in_windows_1252_counts_rows_and_columns(client, auditor_headers):
    data = AUDIT_CSV.encode("cp1252")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    meta = created(await upload(client, auditor_headers, "export.csv", data, "text/csv"))
    assert meta["type"] == "csv"
    assert meta["rows"] == 3
    assert meta["columns"][:3] == ["EVENT_TIMESTAMP", "DBUSERNAME", "ACTION_NAME"]
    assert codecs.lookup(meta["encoding"]).name in ("cp1252", "iso8859-1", "iso8859-15")
    text = (await client.get(f"/api/files/{meta['id']}", headers=auditor_headers)).json()["text"]
    assert "SALAIRES_ÉTÉ" in text
    r = await client.get(f"/api/files/{meta['id']}/content", headers=auditor_headers)
    assert r.content == data
    assert r.headers["content-type"].startswith("text/csv; charset=")


async def test_json_lines_code_and_markdown_are_recognised(client, auditor_headers):
    jsonl = b'{"a": 1}\n{"a": 2}\n{"a": 3}\n'
    code = b"def f(x):\n    return x + 1\n\nprint(f(1))\n"
    markdown = "# Procédure\n\nVérifier les **sauvegardes** chaque lundi.\n".encode()
    meta = created(await upload(client, auditor_headers, "events.jsonl", jsonl))
    assert (meta["type"], meta["rows"]) == ("json", 3)
    meta = created(await upload(client, auditor_headers, "script.py", code))
    assert meta["type"] == "text"
    meta = created(await upload(client, auditor_headers, "procedure.md", markdown))
    assert (meta["type"], meta["encoding"]) == ("text", "utf_8")
    r = await client.get(f"/api/files/{meta['id']}/content", headers=auditor_headers)
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"


async def test_long_text_is_cut_at_the_limit(client, auditor_headers, monkeypatch):
    monkeypatch.setattr(settings, "FILES_MAX_TEXT_CHARS", 100)
    meta = created(await upload(client, auditor_headers, "long.txt", b"audit " * 1000))
    assert meta["text_chars"] == 100
    assert meta["text_truncated"] is True
    assert meta["size"] == 6000


# --------------------------------------------------------------------------- type from content, errors


async def test_type_comes_from_the_content_not_the_name(client, auditor_headers):
    meta = created(await upload(client, auditor_headers, "notes.txt", make_pdf(["Vrai PDF"]), "text/plain"))
    assert meta["type"] == "pdf"
    assert meta["name"] == "notes.txt"
    meta = created(await upload(client, auditor_headers, "rapport.pdf", b"simple texte\n", "application/pdf"))
    assert meta["type"] == "text"

    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    r = await upload(client, auditor_headers, "rapport.pdf", png, "application/pdf")
    assert r.status_code == 415
    assert r.json()["code"] == "unsupported_media_type"
    assert "image PNG" in r.json()["detail"]

    r = await upload(client, auditor_headers, "programme.txt", b"\x00\x01\x02binaire\x00" * 10)
    assert r.status_code == 415


async def test_corrupt_pdf_gets_422(client, auditor_headers):
    broken = make_pdf(["Contenu"])[:60] + b"\x00garbage" * 20
    r = await upload(client, auditor_headers, "casse.pdf", broken, "application/pdf")
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_file"
    assert "PDF" in r.json()["detail"]


async def test_password_protected_pdf_gets_422(client, auditor_headers):
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(make_pdf(["Secret"]))))
    writer.encrypt("motdepasse", algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    r = await upload(client, auditor_headers, "secret.pdf", buffer.getvalue())
    assert r.status_code == 422
    assert "mot de passe" in r.json()["detail"]


async def test_empty_file_and_other_archives_are_refused(client, auditor_headers):
    r = await upload(client, auditor_headers, "vide.txt", b"")
    assert r.status_code == 422
    assert r.json()["detail"] == "Le fichier est vide."

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
    r = await upload(client, auditor_headers, "classeur.docx", buffer.getvalue())
    assert r.status_code == 415
    assert "CSV" in r.json()["detail"]


async def test_oversized_file_gets_413(client, auditor_headers, monkeypatch):
    monkeypatch.setattr(settings, "FILES_MAX_MB", 0.01)  # about 10 KB
    r = await upload(client, auditor_headers, "gros.txt", b"a" * 20_000)
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"
    assert created(await upload(client, auditor_headers, "petit.txt", b"a" * 5_000))["size"] == 5_000


async def test_zip_bomb_renamed_docx_is_stopped(client, auditor_headers):
    bomb = make_zip_bomb()
    assert len(bomb) < 200_000
    r = await upload(client, auditor_headers, "rapport.docx", bomb, files_service.CONTENT_TYPES["docx"])
    assert r.status_code == 422
    assert r.json()["code"] == "file_too_complex"
    assert "compression" in r.json()["detail"]


async def test_extraction_bounds_pages_unzipped_size_and_time():
    base = files_service.Limits.from_settings()
    pdf = make_pdf([f"Page numéro {i}" for i in range(1, 6)])
    result = await files_service.extract(pdf, limits=dataclasses.replace(base, max_pages=2))
    assert result.pages == 5
    assert "Page numéro 2" in result.text and "Page numéro 3" not in result.text
    assert result.text_truncated

    with pytest.raises(files_service.FileTooComplex, match="décompressé"):
        await files_service.extract(make_docx(), limits=dataclasses.replace(base, max_unzipped_bytes=1000))

    with pytest.raises(files_service.FileTooComplex, match="dépassé"):
        await files_service.extract(pdf, limits=dataclasses.replace(base, timeout_seconds=0))


# --------------------------------------------------------------------------- ownership, delete, expiry


async def test_another_users_file_is_not_found(client, admin_headers, auditor_headers):
    meta = created(await upload(client, admin_headers, "confidentiel.txt", b"Mot de passe du coffre"))
    file_id = meta["id"]
    for method, path in (
        ("GET", f"/api/files/{file_id}"),
        ("GET", f"/api/files/{file_id}/content"),
        ("DELETE", f"/api/files/{file_id}"),
    ):
        r = await client.request(method, path, headers=auditor_headers)
        assert r.status_code == 404, (method, path)
        assert r.json()["code"] == "file_not_found"
    listed = (await client.get("/api/files", headers=auditor_headers)).json()["files"]
    assert file_id not in {f["id"] for f in listed}
    assert (await client.get(f"/api/files/{file_id}", headers=admin_headers)).status_code == 200

    assert (await client.get("/api/files/not-an-id", headers=auditor_headers)).status_code == 404
    assert (await client.get("/api/files")).status_code == 401


async def test_delete_removes_metadata_and_bytes(client, store, auditor_headers):
    meta = created(await upload(client, auditor_headers, "a-effacer.txt", b"temporaire"))
    oid = files_service._oid(meta["id"])
    assert await store["uploads.files"].count_documents({"_id": oid}) == 1
    r = await client.delete(f"/api/files/{meta['id']}", headers=auditor_headers)
    assert r.status_code == 204
    assert (await client.get(f"/api/files/{meta['id']}", headers=auditor_headers)).status_code == 404
    assert await store["uploads.files"].count_documents({"_id": oid}) == 0
    assert await store["uploads.chunks"].count_documents({"files_id": oid}) == 0
    assert (await client.delete(f"/api/files/{meta['id']}", headers=auditor_headers)).status_code == 404


async def test_expired_file_leaves_the_list_at_once_and_gridfs_after_the_sweep(
    client, store, auditor_headers, monkeypatch
):
    monkeypatch.setattr(settings, "FILES_TTL_DAYS", -1)  # expired as soon as stored
    meta = created(await upload(client, auditor_headers, "perime.txt", b"vieux fichier " * 50_000))
    oid = files_service._oid(meta["id"])
    listed = (await client.get("/api/files", headers=auditor_headers)).json()["files"]
    assert meta["id"] not in {f["id"] for f in listed}
    assert (await client.get(f"/api/files/{meta['id']}", headers=auditor_headers)).status_code == 404
    assert (await client.get(f"/api/files/{meta['id']}/content", headers=auditor_headers)).status_code == 404
    assert await store["uploads.chunks"].count_documents({"files_id": oid}) >= 2  # bytes still there

    assert await files_service.sweep_expired(store) >= 1
    assert await store["uploads.files"].count_documents({"_id": oid}) == 0
    assert await store["uploads.chunks"].count_documents({"files_id": oid}) == 0
    assert await store[files_service.COLLECTION].count_documents({"_id": oid}) == 0


async def test_files_collection_has_a_ttl_index(store):
    indexes = await store[files_service.COLLECTION].index_information()
    ttl = [spec for spec in indexes.values() if "expireAfterSeconds" in spec]
    assert ttl and ttl[0]["key"] == [("expires_at", 1)]


# --------------------------------------------------------------------------- chat and import


async def test_get_files_for_chat_returns_own_files_only(client, store, admin_headers, auditor_headers):
    mine = created(await upload(client, auditor_headers, "a.txt", b"premier"))
    other = created(await upload(client, auditor_headers, "b.csv", AUDIT_CSV.encode()))
    theirs = created(await upload(client, admin_headers, "c.txt", b"admin"))

    files = await files_service.get_files_for_chat(
        store, owner="auditor1", file_ids=[other["id"], mine["id"], other["id"]]
    )
    assert [f["id"] for f in files] == [other["id"], mine["id"]]
    assert files[0]["type"] == "csv" and "SCOTT" in files[0]["text"]
    assert files[1]["text"] == "premier"

    with pytest.raises(files_service.FileNotFound):
        await files_service.get_files_for_chat(store, owner="auditor1", file_ids=[mine["id"], theirs["id"]])
    with pytest.raises(files_service.FileNotFound):
        await files_service.get_files_for_chat(store, owner="auditor1", file_ids=["nope"])
    assert await files_service.get_files_for_chat(store, owner="auditor1", file_ids=[]) == []


async def test_admin_imports_an_attached_audit_export(client, admin_headers, auditor_headers, scratch_audit):
    meta = created(await upload(client, admin_headers, "export.csv", AUDIT_CSV.encode("cp1252")))
    r = await client.post(f"/api/files/{meta['id']}/import", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "inserted": 3,
        "duplicates": 0,
        "errors": [],
        "error_count": 0,
        "errors_truncated": False,
    }
    assert await scratch_audit.count_documents({"object_name": "SALAIRES_ÉTÉ"}) == 1

    r = await client.post(f"/api/files/{meta['id']}/import", headers=admin_headers)
    assert r.json() == {
        "inserted": 0,
        "duplicates": 3,
        "errors": [],
        "error_count": 0,
        "errors_truncated": False,
    }

    # An auditor's JSON Lines export in UTF-16: the admin imports it with one call.
    rows = [
        {"EVENT_TIMESTAMP": "2024-03-02T08:00:00Z", "DBUSERNAME": "ÉLODIE", "ACTION_NAME": "LOGON"},
        {"EVENT_TIMESTAMP": "2024-03-02T08:01:00Z", "DBUSERNAME": "ÉLODIE", "ACTION_NAME": "LOGOFF"},
    ]
    jsonl = "\n".join(json.dumps(row, ensure_ascii=False) for row in rows).encode("utf-16")
    shared = created(await upload(client, auditor_headers, "export.jsonl", jsonl))
    assert shared["type"] == "json"
    r = await client.post(f"/api/files/{shared['id']}/import", headers=admin_headers)
    assert r.json()["inserted"] == 2
    assert await scratch_audit.count_documents({"dbusername": "ÉLODIE"}) == 2

    r = await client.post(f"/api/files/{shared['id']}/import", headers=auditor_headers)
    assert r.status_code == 403
    pdf = created(await upload(client, admin_headers, "rapport.pdf", make_pdf(["pas un export"])))
    r = await client.post(f"/api/files/{pdf['id']}/import", headers=admin_headers)
    assert r.status_code == 415
    assert r.json()["code"] == "not_an_audit_export"

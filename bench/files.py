"""Text extraction of uploaded files: time per kind, the bombs' time to be stopped, passage search.

Runs `files_service.extract` (the upload path's CPU work, in its worker thread) on files made here,
and `keyword_passages` on a 1,000,000-character text. Prints figures; asserts nothing on time.

    .venv/bin/python bench/files.py
"""

import asyncio
import dataclasses
import io
import sys
import threading
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docx

import files_service
from tests.test_files import make_pdf, make_zip_bomb


def heavy_pdf(mb: float, pages: int = 1) -> bytes:
    """`pages` pages sharing one content stream that inflates to `mb` MB of text operators."""
    ops = b"BT /F1 12 Tf 72 720 Td " + b"(audit) Tj " * int(mb * 2**20 // 11) + b"ET"
    packed = zlib.compress(ops, 9)
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(packed), packed),
    ]
    objects += [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>"
    ] * pages
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def big_docx(paragraphs: int) -> bytes:
    document = docx.Document()
    for i in range(paragraphs):
        document.add_paragraph(f"Paragraphe {i} : le compte SCOTT a consulté la table HR.EMPLOYEES. " * 3)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def big_csv(mb: int) -> bytes:
    header = "EVENT_TIMESTAMP;DBUSERNAME;ACTION_NAME;RETURN_CODE;OBJECT_SCHEMA;OBJECT_NAME\n"
    row = "2024-03-01 10:00:00;SCOTT;SELECT;0;HR;SALAIRES_ÉTÉ\n"
    return (header + row * (mb * 2**20 // len(row))).encode("cp1252")


async def pool_free() -> float:
    """Seconds until both extraction workers are idle (a job per worker, meeting at a barrier)."""
    barrier = threading.Barrier(2)
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    jobs = [loop.run_in_executor(files_service._EXTRACTORS, barrier.wait, 120) for _ in range(2)]
    await asyncio.gather(*jobs)
    return time.perf_counter() - started


async def measure(label: str, data: bytes, limits: files_service.Limits) -> None:
    started = time.perf_counter()
    try:
        result = await files_service.extract(data, limits=limits)
        outcome = f"{result.type}, {len(result.text):,} chars, pages={result.pages}, rows={result.rows}"
    except files_service.FilesError as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    answered = time.perf_counter() - started
    lingered = await pool_free()
    print(
        f"{label:<40} {len(data) / 2**20:6.2f} MB  answer {answered * 1000:7.0f} ms"
        f"  workers free +{lingered * 1000:5.0f} ms  -> {outcome[:80]}"
    )


async def main() -> None:
    limits = files_service.Limits.from_settings()
    print(f"limits: {limits}")
    pages = [
        "\n".join(f"Ligne {j} de la page {i} : connexion de SCOTT depuis 10.0.0.{j}" for j in range(40))
        for i in range(200)
    ]
    await measure("PDF, 200 pages of 40 lines", make_pdf(pages), limits)
    await measure("DOCX, 3,000 paragraphs", big_docx(3000), limits)
    await measure("CSV, 10 MB, Windows-1252", big_csv(10), limits)
    await measure("Zip bomb renamed .docx (64 MB of zeros)", make_zip_bomb(), limits)
    await measure("PDF bomb: 1 page inflating to 30 MB", heavy_pdf(30), limits)
    await measure("PDF bomb: 1 page, 8 MB of operators", heavy_pdf(8), limits)
    slow = heavy_pdf(0.5, pages=500)
    five_seconds = dataclasses.replace(limits, timeout_seconds=5)
    await measure("PDF: 500 pages of 0.5 MB operators, 5 s", slow, five_seconds)

    text = ("Les sauvegardes sont vérifiées chaque semaine par l'équipe d'exploitation. " * 8 + "\n\n") * 1700
    text = text[:1_000_000]
    started = time.perf_counter()
    passages = files_service.keyword_passages(text, "Qui vérifie les sauvegardes ?")
    elapsed = time.perf_counter() - started
    print(f"keyword_passages on {len(text):,} chars: {elapsed * 1000:.0f} ms, {len(passages)} passages")


if __name__ == "__main__":
    asyncio.run(main())

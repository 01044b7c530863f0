"""The web page's server side: the static files, the offline docs, and asking an edited plan again."""

import re
from pathlib import Path

from tests.test_chat import ask, check_figures

STATIC = Path(__file__).resolve().parent.parent / "static"


async def test_the_page_and_its_files_are_served_without_a_token(client):
    r = await client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert '<html lang="fr">' in html
    for src in re.findall(r'(?:src|href)="([^"]+)"', html):
        if src.startswith("#") or src == "/docs":
            continue  # in-page links, the API docs
        assert src.startswith("/static/"), src  # nothing from another origin
        assert (await client.get(src)).status_code == 200, src
    r = await client.get("/static/vendor/chartjs/chart.umd.min.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]


def test_no_inline_script_style_or_handler_in_the_pages():
    """CSP-friendly: every script is a file; no on* attribute, no style attribute, no <style>."""
    for page in [STATIC / "index.html"]:
        html = page.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page
        assert not re.search(r"\son[a-z]+\s*=", html), page
        assert not re.search(r"\sstyle\s*=", html) and "<style" not in html, page
    for js in (STATIC / "js").glob("*.js"):
        text = js.read_text(encoding="utf-8")
        assert "innerHTML" not in text, js  # DOM built with textContent/createElement
        assert "eval(" not in text and "new Function" not in text, js


async def test_docs_and_redoc_load_local_assets_only(client):
    for path in ("/docs", "/redoc"):
        r = await client.get(path)
        assert r.status_code == 200
        assert "cdn" not in r.text.lower()
        refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert refs and all(ref.startswith("/static/") for ref in refs), refs
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text)
        for ref in refs:
            assert (await client.get(ref)).status_code == 200, ref
    assert (await client.get("/openapi.json")).status_code == 200


async def test_an_edited_plan_is_asked_again(client, auditor_headers, demo):
    body = await ask(client, auditor_headers, "Combien de connexions échouées par jour cette semaine ?")
    spec = body["plan"]["spec"]
    assert spec["group_by"] == ["day"]
    # the "period" chip changed: naive bounds are read in APP_TIMEZONE
    edited = {**spec, "period": {"start": "2000-01-01T00:00:00", "end": "2100-01-01T00:00:00", "label": ""}}
    edited["group_by"] = []
    again = await ask(
        client, auditor_headers, "Combien de connexions échouées ?", plan=edited,
        conversation_id=body["conversation_id"],
    )  # fmt: skip
    assert again["conversation_id"] == body["conversation_id"]
    assert again["plan"]["spec"]["filters"] == spec["filters"]
    assert again["plan"]["group_by"] == []
    assert again["plan"]["period"]["start"].startswith("2000-01-01T00:00:00+01:00")
    check_figures(demo.events, again)
    # a filter chip removed
    edited = {**spec, "filters": {"failed": True}}
    again = await ask(client, auditor_headers, "Combien d'échecs par jour cette semaine ?", plan=edited)
    assert [c["op"] for c in again["plan"]["filters"]] == ["failed"]
    check_figures(demo.events, again)


async def test_a_bad_plan_is_a_422_and_operators_are_never_values(client, auditor_headers):
    for plan in (
        {"group_by": ["salary"]},
        {"measure": "everything"},
        {"filters": {"include": {"dbusername": [{"$where": "sleep(1000)"}]}}},
        {"filters": {"include": {"dbusername": {"$ne": None}}}},
        {"period": {"start": "2025-01-02T00:00:00", "end": "2025-01-01T00:00:00"}},
    ):
        r = await client.post(
            "/api/chat/message", json={"message": "x", "plan": plan}, headers=auditor_headers
        )
        assert r.status_code == 422, (plan, r.text)
        assert r.json()["code"] in ("invalid_plan", "validation_error")
        assert r.json()["detail"].startswith("Plan refusé") or r.json()["code"] == "validation_error"


def test_vendored_files_are_the_npm_packages_files():
    """static/vendor/README.md lists each vendored file's SHA-256: the files are unchanged."""
    import hashlib

    readme = (STATIC / "vendor" / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, flags=re.M)
    assert len(listed) == 5
    for digest, name in listed:
        assert hashlib.sha256((STATIC / "vendor" / name).read_bytes()).hexdigest() == digest, name

"""The web page in a real browser: Playwright driving Debian's chromium against a real uvicorn server.

The server is the app (a second instance, with its own lifespan) on a loopback port, on the tests'
SecantusDB store with the demo trail. Every request the page makes to another origin is refused and
recorded, and each test fails if there was one: the page and the docs work with the network cut off.
Screenshots are taken at 390 and 1,440 px; with WRITE_SCREENSHOTS=1 they replace those of the README
(docs/screenshots/).
"""

import asyncio
import csv
import io
import json
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.async_api import expect

from config import settings
from database import free_port
from tests.conftest import ADMIN, AUDITOR, SCRATCH_AUDIT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = (
    Path(__file__).resolve().parent.parent / "docs" / "screenshots"
    if os.environ.get("WRITE_SCREENSHOTS") == "1"
    else Path(tempfile.mkdtemp(prefix="sio-screenshots-"))
)
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium) for browser tests",
)


class LiveServer:
    """The app served by uvicorn in a thread (its own event loop and store client)."""

    def __init__(self) -> None:
        from main import create_app

        self.app = create_app()
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="web-live-server", daemon=True)

    def start(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the live server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live(app, demo, auditor_headers) -> Iterator[LiveServer]:
    server = LiveServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def browser():
    from playwright.async_api import async_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


class Page:
    """A browser tab on the live server; requests to any other origin are aborted and recorded."""

    def __init__(self, page, live: LiveServer, foreign: list[str]) -> None:
        self.page = page
        self.live = live
        self.foreign = foreign

    async def sign_in(self, who: dict[str, str]) -> None:
        page = self.page
        await page.goto(self.live.base_url + "/")
        await page.get_by_label("Identifiant").fill(who["username"])
        await page.get_by_label("Mot de passe").fill(who["password"])
        await page.get_by_role("button", name="Se connecter").click()
        await page.wait_for_selector("#view-chat:not([hidden])")

    async def ask(self, question: str) -> Any:
        """Type a question, send it, wait for the whole answer; the new turn's locator."""
        page = self.page
        before = await page.locator(".turn").count()
        await page.get_by_label("Votre question").fill(question)
        await page.get_by_role("button", name="Demander").click()
        return await self.answered(before)

    async def answered(self, before: int) -> Any:
        # locators only: the page's CSP forbids the string evaluation of wait_for_function
        turn = self.page.locator(".turn").nth(before)
        await turn.locator('.answer[aria-busy="false"]').wait_for()
        return turn


async def new_page(browser, live: LiveServer, *, width: int = 1440, height: int = 900) -> tuple[Any, Page]:
    context = await browser.new_context(
        viewport={"width": width, "height": height}, locale="fr-FR", accept_downloads=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    foreign: list[str] = []
    origin = urlsplit(live.base_url).netloc

    async def guard(route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).netloc != origin:
            foreign.append(url)
            await route.abort("internetdisconnected")
        else:
            await route.continue_()

    await context.route("**/*", guard)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # a CSP violation or any script error is reported on the console
    # (an HTTP error the page handles, such as a 401, is logged too: those are not script errors)
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    context.errors = errors
    page.context.errors = errors
    return context, Page(page, live, foreign)


@pytest.fixture
async def tab(browser, live) -> AsyncIterator[Page]:
    context, page = await new_page(browser, live)
    yield page
    await context.close()
    assert page.foreign == [], f"requests to another origin: {page.foreign}"
    assert context.errors == [], f"script errors: {context.errors}"


async def edit_session(page, change: str) -> None:
    """Change the stored session (a JS statement on `s`), as time or a revoked token would."""
    key = "sio-audit-session"
    await page.evaluate(
        f"() => {{ const s = JSON.parse(sessionStorage.getItem('{key}')); {change}; "
        f"sessionStorage.setItem('{key}', JSON.stringify(s)); }}"
    )


async def click_first_bar(page, turn) -> None:
    """Click the middle of the first bar of the turn's Chart.js chart."""
    await asyncio.sleep(0.2)  # drawn on the next animation frame
    await turn.locator(".chart-bar canvas").scroll_into_view_if_needed()
    box = await turn.locator(".chart-bar canvas").bounding_box()
    index = await page.locator(".turn").count() - 1
    x, y = await page.evaluate(
        """(i) => { const chart = document.querySelectorAll('.turn')[i].querySelector('.chart-bar').chart;
                    const bar = chart.getDatasetMeta(0).data[0];
                    return [(bar.x + bar.base) / 2, bar.y]; }""",
        index,
    )
    await page.mouse.click(box["x"] + x, box["y"] + y)


async def api_answer(client, headers, question: str) -> dict[str, Any]:
    r = await client.post("/api/chat/message", json={"message": question}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


# ---------------------------------------------------------------------------------------------- tests


async def test_sign_in_messages_expiry_and_sign_out(tab: Page, live: LiveServer, app):
    page = tab.page
    await page.goto(live.base_url + "/")
    assert await page.locator("html").get_attribute("lang") == "fr"
    await page.get_by_role("button", name="Se connecter").click()
    await page.get_by_text("Saisissez votre identifiant et votre mot de passe.").wait_for()
    # 401: wrong password, then 429 after repeated failures, each with its message
    await page.get_by_label("Identifiant").fill(AUDITOR["username"])
    await page.get_by_label("Mot de passe").fill("not-the-password")
    await page.get_by_role("button", name="Se connecter").click()
    await page.get_by_text("Identifiant ou mot de passe incorrect.").wait_for()
    try:
        for _ in range(6):
            await page.get_by_label("Mot de passe").fill("not-the-password")
            await page.get_by_role("button", name="Se connecter").click()
            await page.locator("#login-submit:not([disabled])").wait_for()
        await page.get_by_text("Trop de tentatives de connexion").wait_for()
        assert "Réessayez dans" in await page.locator("#login-error").inner_text()
    finally:
        await app.state.login_throttle.reset()  # the attempts are in the store both servers share
    await tab.sign_in(AUDITOR)
    assert await page.locator("#nav-admin").is_hidden()  # an auditor has no admin view
    assert AUDITOR["username"] in await page.locator("#whoami-name").inner_text()
    # an expired or revoked token: the next call signs out with a message
    await edit_session(page, "s.token = 'expired.' + s.token")
    await page.reload()
    await page.wait_for_selector("#view-login:not([hidden])")
    await page.get_by_text("Votre session a expiré ou n'est plus valide. Reconnectez-vous.").wait_for()
    # a token whose expiry has passed is dropped without a call
    await tab.sign_in(AUDITOR)
    await edit_session(page, "s.expiresAt = Date.now() - 1000")
    await page.reload()
    await page.wait_for_selector("#view-login:not([hidden])")
    # sign out
    await tab.sign_in(AUDITOR)
    await page.get_by_role("button", name="Se déconnecter").click()
    await page.get_by_text("Vous êtes déconnecté.").wait_for()
    assert await page.evaluate("sessionStorage.getItem('sio-audit-session')") is None


async def test_ask_stream_chips_table_chart_csv_follow_up_and_suggestion(tab: Page, client, auditor_headers):
    page = tab.page
    await tab.sign_in(AUDITOR)
    # count the text nodes added to answers: one per streamed piece, then one for the whole answer
    await page.evaluate(
        """() => { window.__pieces = 0;
          new MutationObserver((records) => { for (const r of records)
            if (r.target.classList && r.target.classList.contains('answer'))
              window.__pieces += r.addedNodes.length; })
          .observe(document.getElementById('thread'), { childList: true, subtree: true }); }"""
    )
    q1 = "Combien de connexions échouées par jour cette semaine ?"
    turn = await tab.ask(q1)
    expected = await api_answer(client, auditor_headers, q1)
    assert await turn.locator(".answer").inner_text() == expected["answer"]
    assert await page.evaluate("window.__pieces") >= 3  # streamed in pieces, then replaced by `done`
    # chips: what was understood, above the answer
    assert "cette semaine" in await turn.locator(".chip-period").inner_text()
    filters = await turn.locator(".chip-filter .chip-value").all_inner_texts()
    assert filters == [c["label"] for c in expected["plan"]["filters"]]
    assert await turn.locator(".chip-group select").input_value() == "day"
    # a line chart over time, and the table: Monday to today (the days to come are not listed)
    await turn.locator(".chart-line canvas").wait_for()
    days = datetime.now(settings.tz).weekday() + 1
    assert await turn.locator(".data-table tbody tr").count() == len(expected["data"]["rows"]) == days
    # sort by count, descending first
    await turn.get_by_role("button", name="Nombre").click()
    counts = sorted((row[1] for row in expected["data"]["rows"]), reverse=True)
    first = await turn.locator(".data-table tbody tr").first.locator("td").nth(1).inner_text()
    assert first.replace("\u202f", "").replace("\xa0", "") == str(counts[0])
    assert await turn.locator("th[aria-sort=descending]").count() == 1
    # the CSV holds the API's rows
    async with page.expect_download() as info:
        await turn.get_by_role("button", name="Télécharger en CSV").click()
    download = await info.value
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0] == expected["data"]["columns"]
    as_text = sorted([[str(v) for v in row] for row in expected["data"]["rows"]])
    assert sorted(rows[1:]) == as_text
    # the query that ran, on demand
    query = turn.locator(".query pre")
    assert await query.is_hidden()
    await turn.get_by_text("Voir la requête exécutée").click()
    assert json.loads(await query.inner_text()) == expected["query"]

    # a ranking: bars; then a weekday × hour pattern: a heat map, and a paginated table
    turn = await tab.ask("Quels sont les utilisateurs les plus actifs ?")
    await turn.locator(".chart-bar canvas").wait_for()
    assert await turn.locator(".data-table tbody tr").count() == 20
    # a click on the first bar drills down: that user, by action
    top_user = await turn.locator(".data-table tbody tr").first.locator("td").first.inner_text()
    await click_first_bar(page, turn)
    turn = await tab.answered(2)
    assert f"détail : {top_user}" in await turn.locator(".question").inner_text()
    assert top_user in await turn.locator(".chip-filter").first.inner_text()
    assert await turn.locator(".data-table th").first.inner_text() == "Action"
    turn = await tab.ask("Activité par jour de la semaine et par heure sur les 30 derniers jours")
    assert await turn.locator(".heatmap tbody tr").count() == 7
    assert await turn.locator(".heatmap tbody td").count() == 7 * 24
    assert await turn.locator(".page-info").inner_text() == "Page 1 sur 9"
    await turn.get_by_role("button", name="Page suivante").click()
    assert await turn.locator(".page-info").inner_text() == "Page 2 sur 9"
    # a single figure: no chart
    turn = await tab.ask("Combien de connexions échouées cette semaine ?")
    assert await turn.locator(".chart-slot *").count() == 0
    assert await turn.locator(".data-table").count() == 1

    # a follow-up keeps the context (same conversation, previous plan)
    await tab.ask("Quels sont les utilisateurs les plus actifs ?")
    turn = await tab.ask("seulement les DELETE")
    assert "DELETE" in await turn.locator(".chip-filter").first.inner_text()
    assert await turn.locator(".chip-group select").input_value() == "dbusername"
    assert await page.locator("#conv-list li").first.locator(".conv-date").inner_text() != ""
    # the list is refreshed after the answer is shown: wait for it
    await expect(page.locator("#conv-list li").first).to_contain_text("7 questions")

    # change a chip: a filter's values, the grouping, then remove the filter; each asks again
    before = await page.locator(".turn").count()
    await turn.get_by_role("button", name="Modifier le filtre").click()
    editor = turn.locator(".chip-editor-row form")
    await editor.get_by_label("Action (valeurs séparées par des virgules)").fill("INSERT, UPDATE")
    await editor.get_by_role("button", name="Appliquer").click()
    turn = await tab.answered(before)
    chip = await turn.locator(".chip-filter").first.inner_text()
    assert "INSERT" in chip and "UPDATE" in chip and "DELETE" not in chip
    before += 1
    await turn.locator(".chip-group select").select_option("action_name")
    turn = await tab.answered(before)
    assert "regroupement : par action" in await turn.locator(".question").inner_text()
    assert await turn.locator(".data-table th").first.inner_text() == "Action"
    before += 1
    await turn.get_by_role("button", name="Retirer le filtre").first.click()
    turn = await tab.answered(before)
    assert await turn.locator(".chip-filter").count() == 0
    assert await turn.locator(".data-table tbody tr").count() > 1
    # change the period through its editor
    before += 1
    await turn.get_by_role("button", name="Modifier la période").click()
    await turn.get_by_label("Nouvelle période").select_option("yesterday")
    await turn.locator(".period-editor").get_by_role("button", name="Appliquer").click()
    turn = await tab.answered(before)
    assert "hier" in await turn.locator(".chip-period").inner_text()

    # a suggestion can be clicked
    suggestion = turn.locator(".suggestions-slot .suggestion").first
    text = await suggestion.inner_text()
    before = await page.locator(".turn").count()
    await suggestion.click()
    turn = await tab.answered(before)
    assert text in await turn.locator(".question").inner_text()
    assert "pas compris" not in await turn.locator(".answer").inner_text()


async def test_conversations_list_open_delete_new(tab: Page, client, auditor_headers):
    page = tab.page
    await tab.sign_in(AUDITOR)
    await tab.ask("Combien d'événements hier ?")
    await tab.ask("et avant-hier ?")
    await page.get_by_role("button", name="Nouvelle conversation").click()
    assert await page.locator(".turn").count() == 0
    await tab.ask("Quelles actions sont les plus fréquentes ?")
    # completions while typing
    await page.get_by_label("Votre question").fill("Quels sont les util")
    await page.locator('#ask-completions option[value*="utilisateurs les plus actifs"]').first.wait_for(
        state="attached"
    )
    await page.get_by_label("Votre question").fill("")
    items = page.locator("#conv-list li")
    assert await items.count() >= 2
    # open the earlier one: its two turns
    # pinned by its id: the list is re-sorted as conversations change, and other tests asked the same
    conversation = await items.filter(has_text="Combien d'événements hier ?").first.get_attribute("data-id")
    earlier = page.locator(f'#conv-list li[data-id="{conversation}"]')
    await earlier.locator(".conv-open").click()
    await expect(page.locator(".turn")).to_have_count(2)
    assert await earlier.locator(".conv-open").get_attribute("aria-current") == "true"
    assert "avant-hier" in await page.locator(".turn .question").nth(1).inner_text()
    # a stored turn asked again as it was read: its table comes back
    await page.locator(".turn").nth(1).get_by_role("button", name="Reposer la question").click()
    turn = await tab.answered(2)
    assert "reposée" in await turn.locator(".question").inner_text()
    assert "avant-hier" in await turn.locator(".chip-period").inner_text()
    assert await turn.locator(".data-table").count() == 1
    # a follow-up in the opened conversation keeps its context
    turn = await tab.ask("et hier ?")
    assert "hier" in await turn.locator(".chip-period").inner_text()
    # delete it
    count = await items.count()
    await earlier.get_by_role("button", name="Supprimer la conversation").click()
    # the list shows the 50 latest: when full, the next older one takes the freed place
    await expect(items).to_have_count(count - 1 if count < 50 else 50)
    await expect(page.locator(".turn")).to_have_count(0)  # waits: a full list keeps its count
    gone = await client.get(f"/api/chat/conversations/{conversation}", headers=auditor_headers)
    assert conversation and gone.status_code == 404


async def test_anomalies_view_and_ask_about_it(tab: Page, client, auditor_headers):
    page = tab.page
    await tab.sign_in(AUDITOR)
    await page.get_by_role("link", name="Anomalies").click()
    await page.locator(".finding").first.wait_for()
    r = await client.get("/api/audit/anomalies?timeframe=7d", headers=auditor_headers)
    report = r.json()
    assert await page.locator(".finding").count() == report["count"]
    high = page.locator("details.severity-group").first
    assert f"Gravité élevée ({report['by_severity']['high']})" in await high.locator("h2").inner_text()
    assert await high.get_attribute("open") is not None
    finding = high.locator(".finding").first
    assert await finding.locator("h3").inner_text() == report["anomalies"][0]["title"]
    # the evidence, on demand
    await finding.get_by_text("Voir les preuves").click()
    assert await finding.locator(".evidence dt").count() >= 1
    # another window
    await page.get_by_label("Période").select_option("30d")
    await page.get_by_role("button", name="Afficher").click()
    await page.get_by_text("sur les 30 derniers jours.").wait_for()
    # every finding's question is read, and lists the events behind it
    questions = [await b.get_attribute("data-question") for b in await page.locator(".ask-about").all()]
    assert len(questions) >= report["count"]
    for question in set(questions):
        body = await api_answer(client, auditor_headers, question)
        assert body["intent"] == "search_events", (question, body["answer"])
        assert body["data"]["total"] >= 1, question
    assert any(" entre " in q and q.startswith("Qu'a fait ") for q in questions)  # hours of a same-day window
    # ask about it: the chat opens on the question, and reads it
    finding = page.locator(".severity-high .ask-about").first
    question = await finding.get_attribute("data-question")
    await finding.click()
    await page.wait_for_selector("#view-chat:not([hidden])")
    turn = await tab.answered(0)
    assert question in await turn.locator(".question").inner_text()
    answer = await turn.locator(".answer").inner_text()
    assert "pas compris" not in answer and answer.strip()
    assert await turn.locator(".data-table tbody tr").count() >= 1


async def test_activity_view_opens_chat_questions(tab: Page):
    page = tab.page
    await tab.sign_in(AUDITOR)
    await page.get_by_role("link", name="Activité").click()
    await page.locator(".activity-card canvas").first.wait_for()
    assert await page.locator(".activity-card").count() == 5
    assert await page.locator(".activity-card canvas").count() == 5
    titles = await page.locator(".activity-card h2").all_inner_texts()
    assert titles == [
        "Événements par jour", "Utilisateurs les plus actifs", "Actions les plus fréquentes",
        "Objets les plus utilisés", "Connexions échouées par jour",
    ]  # fmt: skip
    for i in (1, 4):  # each question opened from a card is understood
        await page.get_by_role("link", name="Activité").click()
        card = page.locator(".activity-card").nth(i)
        await card.locator("canvas").wait_for()
        await card.locator(".ask-about").click()
        turn = await tab.answered(0)
        assert "pas compris" not in await turn.locator(".answer").inner_text()
        await turn.locator(".chart canvas").wait_for()


async def test_admin_import_documents_and_oracle_metrics(tab: Page, live: LiveServer, store):
    page = tab.page
    await tab.sign_in(ADMIN)
    await page.get_by_role("link", name="Administration").click()
    await page.get_by_role("heading", name="Importer un export de la piste d'audit").wait_for()
    good = {
        "EVENT_TIMESTAMP": "2024-05-01T10:00:00Z", "DBUSERNAME": "WEBTEST", "ACTION_NAME": "SELECT",
        "OBJECT_SCHEMA": "HR", "OBJECT_NAME": "EMPLOYEES", "RETURN_CODE": 0,
    }  # fmt: skip
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "EVENT_TIMESTAMP": "2024-05-01T10:01:00Z"}),
        json.dumps({**good, "EVENT_TIMESTAMP": "pas une date"}),
        json.dumps({**good, "EVENT_TIMESTAMP": "2024-05-01T10:02:00Z"}),
    ]
    previous = live.app.state.store.audit_name
    live.app.state.store.audit_name = SCRATCH_AUDIT
    await store.db[SCRATCH_AUDIT].delete_many({})
    try:
        await page.get_by_label("Fichier à importer").set_input_files(
            {"name": "export.jsonl", "mimeType": "application/x-ndjson", "buffer": "\n".join(lines).encode()}
        )
        await page.get_by_role("button", name="Importer", exact=True).click()
        await page.get_by_text("Import terminé").wait_for()
        status = await page.locator("#import-status").inner_text()
        assert "3 événement(s) ajouté(s)" in status and "2 ligne(s) en erreur" in status
        assert await page.locator("#import-progress").get_attribute("value") == "100"
        report = page.locator("#import-errors tbody tr")
        assert await report.count() == 2
        assert [await report.nth(i).locator("td").first.inner_text() for i in (0, 1)] == ["2", "4"]
        assert await store.db[SCRATCH_AUDIT].count_documents({}) == 3
    finally:
        live.app.state.store.audit_name = previous
        await store.db[SCRATCH_AUDIT].delete_many({})
        await store.bump_audit_version()
    # a document
    await page.get_by_label("Document à envoyer").set_input_files(
        {"name": "note.txt", "mimeType": "text/plain", "buffer": "Revue des accès du 12 mai.".encode()}
    )
    await page.get_by_role("button", name="Envoyer", exact=True).click()
    await page.get_by_text("Document « note.txt » enregistré").wait_for()
    await page.locator("#files-list li", has_text="note.txt").wait_for()
    # the Oracle pool (not configured here) and its live metrics, read with fetch
    assert "non" in await page.locator("#oracle-pool").inner_text()
    await page.get_by_role("button", name="Suivre en direct").click()
    await page.get_by_text("Mis à jour").wait_for()
    assert await page.get_by_role("button", name="Arrêter le suivi").get_attribute("aria-pressed") == "true"
    await page.get_by_role("button", name="Arrêter le suivi").click()
    await page.get_by_text("Suivi en direct arrêté.").wait_for()


async def test_docs_and_redoc_offline_with_authorize(tab: Page, live: LiveServer):
    page = tab.page
    requests: list[str] = []
    failed: dict[str, str | None] = {}
    page.on("request", lambda r: requests.append(r.url))
    page.on("requestfailed", lambda r: failed.__setitem__(r.url, r.failure))
    await page.goto(live.base_url + "/docs")
    await page.locator(".swagger-ui .info .title").wait_for()
    # OAuth2 password flow: Authorize, then call a protected route with Try it out
    await page.locator(".swagger-ui .btn.authorize").first.click()
    await page.locator("#oauth_username").fill(ADMIN["username"])
    await page.locator("#oauth_password").fill(ADMIN["password"])
    await page.locator(".auth-btn-wrapper .btn.modal-btn.authorize").click()
    await page.locator(".auth-btn-wrapper .btn.modal-btn", has_text="Logout").wait_for()
    await page.locator(".auth-btn-wrapper .btn-done").click()
    operation = page.locator("#operations-auth-me_api_auth_me_get")
    await operation.locator(".opblock-summary").click()
    await operation.get_by_role("button", name="Try it out").click()
    await operation.get_by_role("button", name="Execute").click()
    body = operation.locator(".live-responses-table .response-col_description pre").first
    await body.wait_for()
    assert '"username": "admin"' in await body.inner_text()
    await page.goto(live.base_url + "/redoc")
    await page.locator("redoc h1", has_text="SIO Audit").first.wait_for()
    # ReDoc's sidebar logo points at its vendor's CDN: the page's CSP refuses it in the browser, so it
    # never reaches the network (the route guard, which sees every request that would, saw nothing).
    blocked = [e for e in tab.page.context.errors if "cdn.redoc.ly" in e]
    tab.page.context.errors[:] = [e for e in tab.page.context.errors if e not in blocked]
    origin = live.base_url
    outside = [u for u in requests if not u.startswith((origin, "data:", "blob:"))]
    assert requests
    assert all(failed.get(u) in ("csp", "net::ERR_BLOCKED_BY_CSP") for u in outside), (outside, failed)
    assert tab.foreign == []


async def test_keyboard_390_px_and_screenshots(browser, live: LiveServer):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((390, 844), (1440, 900)):
        context, tab = await new_page(browser, live, width=width, height=height)
        page = tab.page
        try:
            await page.goto(live.base_url + "/")
            # keyboard only: the sign-in form has the focus, the skip link comes before it
            await expect(page.locator("#login-username")).to_be_focused()
            await page.keyboard.press("Shift+Tab")
            assert await page.evaluate("document.activeElement.textContent") == "Aller au contenu"
            await page.keyboard.press("Tab")
            await page.keyboard.type(AUDITOR["username"])
            await page.keyboard.press("Tab")
            await page.keyboard.type(AUDITOR["password"])
            await page.keyboard.press("Enter")
            await page.wait_for_selector("#view-chat:not([hidden])")
            await page.locator("#ask-input").focus()
            await page.keyboard.type("Quels sont les utilisateurs les plus actifs cette semaine ?")
            await page.keyboard.press("Enter")
            turn = await tab.answered(0)
            await turn.locator(".chart canvas").wait_for()
            await asyncio.sleep(0.3)  # the chart is drawn on the next frame
            if width == 1440:
                await page.screenshot(path=str(SCREENSHOTS / f"chat-{width}.png"), full_page=True)
            else:
                await page.evaluate("document.querySelector('.turn').scrollIntoView()")
                await page.screenshot(path=str(SCREENSHOTS / f"chat-{width}.png"))
            # focus is visible, on every kind of control
            # the skip link moves the focus to the content, in the same view
            await page.locator(".skip-link").focus()
            await page.keyboard.press("Enter")
            await expect(page.locator("main")).to_be_focused()
            assert await page.locator("#view-chat").is_visible()
            await page.locator("#nav a").first.focus()
            for _ in range(14):  # links, buttons, the conversation list, the chips' controls
                await page.keyboard.press("Tab")
                outline = await page.evaluate(
                    "(() => { const s = getComputedStyle(document.activeElement);"
                    " return [s.outlineStyle, parseFloat(s.outlineWidth)]; })()"
                )
                focused = await page.evaluate("document.activeElement.outerHTML.slice(0, 120)")
                assert outline[0] != "none" and outline[1] >= 2, (outline, focused)
            # every control has a name; nothing is wider than the screen
            unnamed = await page.evaluate(
                """() => [...document.querySelectorAll('input, select, button')].filter((e) =>
                    e.offsetParent !== null && !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                    && !e.textContent.trim()).map((e) => e.outerHTML)"""
            )
            assert unnamed == []
            assert await page.evaluate("document.documentElement.scrollWidth") <= width
            await page.get_by_role("link", name="Anomalies").click()
            await page.locator(".finding").first.wait_for()
            assert await page.evaluate("document.documentElement.scrollWidth") <= width
            await page.screenshot(path=str(SCREENSHOTS / f"anomalies-{width}.png"))
            await page.get_by_role("link", name="Activité").click()
            await page.locator(".activity-card canvas").first.wait_for()
            await asyncio.sleep(0.3)
            assert await page.evaluate("document.documentElement.scrollWidth") <= width
            await page.screenshot(path=str(SCREENSHOTS / f"activity-{width}.png"))
        finally:
            await context.close()
        assert tab.foreign == [], tab.foreign
        assert context.errors == [], context.errors


async def test_alerts_view_acknowledge_and_close(tab: Page, client, admin_headers, auditor_headers):
    r = await client.post("/api/alerts/run", headers=admin_headers)
    assert r.status_code == 200, r.text
    listed = (await client.get("/api/alerts?status=new,acknowledged", headers=auditor_headers)).json()
    if not listed["total"]:
        pytest.skip("no open alert on this trail")
    page = tab.page
    await tab.sign_in(AUDITOR)
    await page.get_by_role("link", name="Alertes").click()
    await page.locator("#alerts-list .finding").first.wait_for()
    assert await page.locator("#alerts-list .finding").count() == min(listed["total"], 50)
    first = page.locator("#alerts-list .finding").first
    alert_id = await first.get_attribute("data-alert")
    if await first.get_by_role("button", name="Prendre en compte").count():
        await first.get_by_role("button", name="Prendre en compte").click()
        await page.locator(f'[data-alert="{alert_id}"]').get_by_text("Prise en compte").wait_for()
    await page.locator(f'[data-alert="{alert_id}"]').get_by_role("button", name="Clore").click()
    await page.locator(f'[data-alert="{alert_id}"]').wait_for(state="detached")  # open alerts only
    alert = (await client.get(f"/api/alerts/{alert_id}", headers=auditor_headers)).json()
    assert alert["status"] == "closed" and alert["status_by"] == AUDITOR["username"]


async def test_alert_policies_edited_and_reports_sent_from_the_page(
    tab: Page, client, admin_headers, store, monkeypatch
):
    import report_schedules
    from config import settings
    from tests.receivers import SmtpReceiver

    await store["alert_policies"].delete_many({})
    for name in (report_schedules.SCHEDULES, report_schedules.RUNS):
        await store[name].delete_many({})
    detectors = (await client.get("/api/alert-policies", headers=admin_headers)).json()["detectors"]
    schedule = {
        "name": "Échecs de connexion hebdomadaires", "kind": "failed_logins", "format": "csv",
        "frequency": "weekly", "weekday": 0, "hour": 6, "recipients": ["dpo@example.com"],
    }  # fmt: skip
    assert (
        await client.post("/api/report-schedules", json=schedule, headers=admin_headers)
    ).status_code == 201
    smtp = SmtpReceiver().start()
    monkeypatch.setattr(settings, "SMTP_HOST", "127.0.0.1")  # the live server runs in this process
    monkeypatch.setattr(settings, "SMTP_PORT", smtp.port)
    page = tab.page

    async def policies() -> list[dict]:
        return (await client.get("/api/alert-policies", headers=admin_headers)).json()["policies"]

    try:
        await tab.sign_in(ADMIN)
        await page.get_by_role("link", name="Alertes").click()
        await page.get_by_role("heading", name="Politiques d'alerte").wait_for()
        await page.locator("#policies-list").get_by_text("Aucune politique.").wait_for()
        # create
        await page.get_by_role("button", name="Nouvelle politique").click()
        await page.get_by_label("Nom de la politique").fill("Comptes sensibles")
        await page.get_by_label(detectors["failed_logon_burst"]).check()
        await page.get_by_label("Gravité minimale").select_option("high")
        await page.get_by_label("Comptes surveillés").fill("alice, bob")
        await page.get_by_label("Heures calmes : de").fill("22")
        await page.get_by_label("à", exact=True).fill("7")
        await page.get_by_label("Seuils propres").fill("failed_logon_threshold=3")
        await page.get_by_label("E-mails").fill("soc@example.com")
        await page.get_by_role("button", name="Enregistrer la politique").click()
        item = page.locator("#policies-list li", has_text="Comptes sensibles")
        await item.wait_for()
        await expect(page.locator("#policy-form")).to_be_hidden()
        [created] = await policies()
        assert created["detectors"] == ["failed_logon_burst"] and created["min_severity"] == "high"
        assert created["watch_users"] == ["ALICE", "BOB"] and created["quiet_hours"] == {
            "start": 22,
            "end": 7,
        }
        assert created["parameters"] == {"failed_logon_threshold": 3} and created["emails"] == [
            "soc@example.com"
        ]
        # a mistake: the API's French message, nothing saved
        await page.get_by_role("button", name="Nouvelle politique").click()
        await page.get_by_label("Nom de la politique").fill("Mauvaise")
        await page.get_by_label("E-mails").fill("pas-une-adresse")
        await page.get_by_role("button", name="Enregistrer la politique").click()
        await page.locator("#policy-error").get_by_text("adresse(s) e-mail invalide(s)").wait_for()
        await page.get_by_role("button", name="Annuler").click()
        assert len(await policies()) == 1
        # edit: the form holds the policy; a change keeps the rest
        await item.get_by_role("button", name="Modifier").click()
        assert await page.get_by_label("Nom de la politique").input_value() == "Comptes sensibles"
        assert await page.get_by_label("Comptes surveillés").input_value() == "ALICE, BOB"
        await page.get_by_label("Gravité minimale").select_option("medium")
        await page.get_by_role("button", name="Enregistrer la politique").click()
        await item.get_by_text("gravité ≥ moyenne").wait_for()
        [edited] = await policies()
        assert edited["min_severity"] == "medium" and edited["watch_users"] == ["ALICE", "BOB"]
        assert edited["quiet_hours"] == {"start": 22, "end": 7} and edited["detectors"] == [
            "failed_logon_burst"
        ]
        # disable, enable
        await item.get_by_role("button", name="Désactiver").click()
        await item.get_by_text("Inactive").wait_for()
        assert [p["enabled"] for p in await policies()] == [False]
        await item.get_by_role("button", name="Activer").click()
        await item.get_by_role("button", name="Désactiver").wait_for()
        assert [p["enabled"] for p in await policies()] == [True]
        # delete: a second click confirms
        await item.get_by_role("button", name="Supprimer").click()
        await item.get_by_role("button", name="Confirmer la suppression").click()
        await item.wait_for(state="detached")
        assert await policies() == []

        # the scheduled reports: listed, and sent now to the SMTP server
        report = page.locator("#schedules-list li", has_text=schedule["name"])
        await report.get_by_text("Jamais envoyé.").wait_for()
        await report.get_by_role("button", name="Envoyer maintenant").click()
        await page.locator("#schedules-status").get_by_text("envoyé").wait_for()
        await page.locator("#schedules-list li").get_by_text("Dernier envoi : envoyé").wait_for()
        [message] = smtp.messages
        assert message["to"] == ["dpo@example.com"] and "rapport-failed_logins-" in message["data"]

        # an auditor sees neither
        await page.get_by_role("button", name="Se déconnecter").click()
        await tab.sign_in(AUDITOR)
        await page.get_by_role("link", name="Alertes").click()
        await page.locator("#alerts-status:not(:empty)").wait_for()
        assert await page.locator("#policies").is_hidden() and await page.locator("#schedules").is_hidden()
    finally:
        smtp.stop()
        await store["alert_policies"].delete_many({})
        for name in (report_schedules.SCHEDULES, report_schedules.RUNS):
            await store[name].delete_many({})


async def test_report_schedules_created_edited_disabled_and_deleted_from_the_page(
    tab: Page, client, admin_headers, store
):
    import report_schedules

    for name in (report_schedules.SCHEDULES, report_schedules.RUNS):
        await store[name].delete_many({})
    page = tab.page

    async def schedules() -> list[dict]:
        return (await client.get("/api/report-schedules", headers=admin_headers)).json()["schedules"]

    try:
        await tab.sign_in(ADMIN)
        await page.get_by_role("link", name="Alertes").click()
        await page.locator("#schedules-list").get_by_text("Aucun rapport programmé.").wait_for()
        # create: a monthly XLSX of the admins' activity, filtered
        await page.get_by_role("button", name="Nouveau rapport programmé").click()
        assert await page.locator("#schedule-day").is_hidden()  # weekly by default: the weekday
        await page.get_by_label("Nom de la programmation").fill("Administrateurs, chaque mois")
        await page.get_by_label("Rapport à envoyer").select_option("admin")
        await page.get_by_label("Format de la pièce jointe").select_option("xlsx")
        await page.get_by_label("Fréquence").select_option("monthly")
        assert await page.locator("#schedule-weekday").is_hidden()
        await page.get_by_label("Jour du mois").fill("15")
        await page.get_by_label("Heure d'envoi").fill("7")
        await page.get_by_label("Destinataires").fill("dpo@example.com, rssi@example.com")
        await page.get_by_label("Filtrer sur les comptes").fill("sys, system")
        await page.get_by_label("Filtrer sur les schémas").fill("hr")
        await page.get_by_role("button", name="Enregistrer la programmation").click()
        item = page.locator("#schedules-list > li", has_text="Administrateurs, chaque mois")
        await item.get_by_text("Le 15 de chaque mois à 7 h").wait_for()
        await expect(page.locator("#schedule-form")).to_be_hidden()
        [created] = await schedules()
        expected = {"kind": "admin", "format": "xlsx", "frequency": "monthly", "weekday": None, "day": 15,
                    "hour": 7, "enabled": True}  # fmt: skip
        assert {k: created[k] for k in expected} == expected
        assert created["recipients"] == ["dpo@example.com", "rssi@example.com"]
        assert created["dbusername"] == ["SYS", "SYSTEM"] and created["object_schema"] == ["HR"]
        assert created["objects"] == []
        await item.get_by_text("Filtres : comptes : SYS, SYSTEM ; schémas : HR").wait_for()

        # edit: the form holds the schedule; a bad address is refused with the API's French message
        await item.get_by_role("button", name="Modifier").click()
        assert await page.get_by_label("Nom de la programmation").input_value() == created["name"]
        assert await page.get_by_label("Rapport à envoyer").input_value() == "admin"
        assert await page.get_by_label("Fréquence").input_value() == "monthly"
        assert await page.get_by_label("Jour du mois").input_value() == "15"
        assert await page.get_by_label("Filtrer sur les comptes").input_value() == "SYS, SYSTEM"
        await page.get_by_label("Fréquence").select_option("weekly")
        await page.get_by_label("Jour de la semaine").select_option(label="vendredi")
        await page.get_by_label("Destinataires").fill("dpo@example.com, pas-une-adresse")
        await page.get_by_role("button", name="Enregistrer la programmation").click()
        await (
            page.locator("#schedule-error")
            .get_by_text("adresse(s) e-mail invalide(s) : pas-une-adresse")
            .wait_for()
        )
        assert await schedules() == [created]  # nothing saved
        await page.get_by_label("Destinataires").fill("dpo@example.com")
        await page.get_by_role("button", name="Enregistrer la programmation").click()
        await item.get_by_text("Chaque vendredi à 7 h").wait_for()
        await expect(page.locator("#schedule-form")).to_be_hidden()
        [edited] = await schedules()
        assert (edited["frequency"], edited["weekday"], edited["day"]) == ("weekly", 4, None)
        assert edited["recipients"] == ["dpo@example.com"] and edited["dbusername"] == ["SYS", "SYSTEM"]
        assert edited["kind"] == "admin" and edited["format"] == "xlsx" and edited["id"] == created["id"]

        # disable, enable
        await item.get_by_role("button", name="Désactiver").click()
        await item.get_by_text("inactif").wait_for()
        assert [s["enabled"] for s in await schedules()] == [False]
        await item.get_by_role("button", name="Activer").click()
        await item.get_by_role("button", name="Désactiver").wait_for()
        [enabled] = await schedules()
        assert enabled["enabled"] is True and enabled["next_run_at"]

        # delete: a second click confirms
        await item.get_by_role("button", name="Supprimer").click()
        await item.get_by_role("button", name="Confirmer la suppression").click()
        await item.wait_for(state="detached")
        await page.locator("#schedules-status").get_by_text("supprimé").wait_for()
        assert await schedules() == []
    finally:
        for name in (report_schedules.SCHEDULES, report_schedules.RUNS):
            await store[name].delete_many({})


async def test_a_failed_scheduled_report_is_retried_from_the_page(
    tab: Page, client, admin_headers, store, monkeypatch
):
    from datetime import datetime, timedelta

    import report_schedules
    from config import settings
    from tests.receivers import SmtpReceiver

    for name in (report_schedules.SCHEDULES, report_schedules.RUNS):
        await store[name].delete_many({})
    body = {
        "name": "Échecs de connexion", "kind": "failed_logins", "format": "csv", "frequency": "weekly",
        "weekday": 0, "hour": 6, "recipients": ["dpo@example.com"],
    }  # fmt: skip
    r = await client.post("/api/report-schedules", json=body, headers=admin_headers)
    assert r.status_code == 201, r.text
    schedule = r.json()
    # the SMTP server is down when the period comes: the run fails for good
    monkeypatch.setattr(settings, "SMTP_HOST", "127.0.0.1")  # the live server runs in this process
    monkeypatch.setattr(settings, "SMTP_PORT", free_port())
    monkeypatch.setattr(settings, "NOTIFY_MAX_ATTEMPTS", 1)
    due = datetime.fromisoformat(schedule["next_run_at"]) + timedelta(minutes=1)
    assert (await report_schedules.run_due(store, now=due)).failed == 1
    smtp = SmtpReceiver().start()
    page = tab.page
    try:
        await tab.sign_in(ADMIN)
        await page.get_by_role("link", name="Alertes").click()
        item = page.locator("#schedules-list > li", has_text=body["name"])
        await item.get_by_text("Dernier envoi : en échec").wait_for()
        row = item.locator(".runs tbody tr")
        assert await row.count() == 1
        cells = await row.locator("td").all_inner_texts()
        assert (
            cells[0].startswith("semaine ") and cells[2] == "en échec" and cells[3] == "1" and cells[4] != "–"
        )

        # the server is back: « Relancer l'envoi » sends it once
        monkeypatch.setattr(settings, "SMTP_PORT", smtp.port)
        await row.get_by_role("button", name="Relancer l'envoi").click()
        await page.locator("#schedules-status").get_by_text("envoyé").wait_for()
        await item.get_by_text("Dernier envoi : envoyé").wait_for()
        cells = await item.locator(".runs tbody tr").first.locator("td").all_inner_texts()
        assert cells[2] == "envoyé" and cells[3] == f"1 (relancé par {ADMIN['username']})"
        assert await item.get_by_role("button", name="Relancer l'envoi").count() == 0
        [message] = smtp.messages
        assert message["to"] == ["dpo@example.com"] and "rapport-failed_logins-" in message["data"]
        detail = (await client.get(f"/api/report-schedules/{schedule['id']}", headers=admin_headers)).json()
        [run] = detail["runs"]
        assert (run["status"], run["attempts"], run["retried_by"]) == ("sent", 1, ADMIN["username"])
    finally:
        smtp.stop()
        for name in (report_schedules.SCHEDULES, report_schedules.RUNS):
            await store[name].delete_many({})

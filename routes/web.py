"""The web page and the API docs, served from files in `static/` (nothing fetched from elsewhere).

`GET /` is the single-page app (static/index.html and its ES modules); `/docs` (Swagger UI) and
`/redoc` (ReDoc) load their scripts from `static/vendor/`, vendored from their npm packages. No page
has an inline script: each one loads its code from a file, so a CSP without 'unsafe-inline' for
scripts can be set in front of them.
"""

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
NO_CACHE = {"Cache-Control": "no-cache"}
# The page runs under a strict policy: its own scripts, styles and API only.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI and ReDoc style their elements inline and ReDoc searches in a blob worker; no image or
# request may leave the origin (ReDoc's sidebar logo points at its vendor's CDN: the policy blocks it
# before any request is made).
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

# One page for both docs: its head (title, styles) and its body (the viewer and its scripts).
DOCS_SHELL = """<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – {viewer}</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{css}">
</head>
<body>
{body}
</body>
</html>
"""
SWAGGER_BODY = """<div id="swagger-ui" data-openapi-url="/openapi.json"></div>
<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/js/swagger-init.js"></script>"""
REDOC_BODY = """<redoc spec-url="/openapi.json" hide-download-button></redoc>
<script src="/static/vendor/redoc/redoc.standalone.js"></script>"""
DOCS_VIEWERS = {
    "swagger": ("Swagger UI", "/static/vendor/swagger-ui/swagger-ui.css", SWAGGER_BODY),
    "redoc": ("ReDoc", "/static/css/redoc.css", REDOC_BODY),
}


def docs_page(viewer: str, title: str) -> HTMLResponse:
    name, css, body = DOCS_VIEWERS[viewer]
    page = DOCS_SHELL.format(title=title, viewer=name, css=css, body=body)
    return HTMLResponse(page, headers={**NO_CACHE, "Content-Security-Policy": DOCS_CSP})


OAUTH2_REDIRECT_PAGE = """<!doctype html>
<html lang="fr">
<body>
<script src="/static/vendor/swagger-ui/oauth2-redirect.js"></script>
</body>
</html>
"""


def mount(app: FastAPI) -> None:
    """Serve static/ under /static, the page at /, and the offline docs."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    title = app.title
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def index() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html", headers={**NO_CACHE, "Content-Security-Policy": PAGE_CSP}
        )

    @router.get("/favicon.ico")
    async def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    @router.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        return docs_page("swagger", title)

    @router.get("/docs/oauth2-redirect")
    async def swagger_ui_redirect() -> HTMLResponse:
        # for OAuth2 flows that redirect (the API's own flow, password, does not)
        return HTMLResponse(OAUTH2_REDIRECT_PAGE, headers={"Content-Security-Policy": DOCS_CSP})

    @router.get("/redoc")
    async def redoc() -> HTMLResponse:
        return docs_page("redoc", title)

    app.include_router(router)

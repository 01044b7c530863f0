"""The FastAPI app: lifespan, middleware and routers. Run with `python main.py`."""

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from loguru import logger
from pymongo.errors import PyMongoError

import audit_shape
import auth
import rollups
from config import settings
from database import make_store
from demo_data import seed_demo
from errors import document_errors, install_error_handlers
from logs import setup_logging
from middleware import RequestContextMiddleware, body_policies
from routes import (
    alerts,
    analyze,
    audit,
    cache,
    chat,
    files,
    imports,
    oracle,
    report_schedules,
    reports,
    system,
    web,
)
from routes import auth as auth_routes

# The alerts' schedule syncs Oracle: its area comes after the Oracle one; the report schedules add
# their runner to that schedule: their area comes after the alerts one.
AREAS = [system, auth_routes, imports, audit, analyze, chat, cache, oracle, files, alerts, reports,
         report_schedules]  # fmt: skip


async def seed_if_empty(store) -> None:
    # The rollups' counter first: counting the collection holds SecantusDB for 1.1 s at 200k events.
    if (
        not settings.SEED_DEMO_DATA
        or await rollups.counted(store)
        or await store.audit.estimated_document_count()
    ):
        logger.info("start-up 2/3: audit trail in place, no demo data to load")
        return
    logger.info("start-up 2/3: empty audit trail, loading {} demo events", settings.DEMO_EVENTS)
    inserted, _ = await seed_demo(
        store,
        n_events=settings.DEMO_EVENTS,
        days=settings.DEMO_DAYS,
        seed=settings.DEMO_SEED,
        tz=settings.tz,
    )
    logger.info("demo audit trail loaded: {} events", inserted)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    setup_logging(settings.LOG_LEVEL)
    settings.check_secrets()
    logger.info("start-up 1/3: store ({})", "MongoDB" if settings.MONGODB_URI else "embedded SecantusDB")
    store = make_store()
    await store.start()
    app.state.store = store
    app.state.health_checks = {}
    app.state.ready = asyncio.Event()  # set once the service answers; background reads wait for it
    sweep: asyncio.Task | None = None
    rebuild: asyncio.Task | None = None
    watch: asyncio.Task | None = None
    try:
        await audit_shape.protect(store)
        if settings.ADMIN_USERNAME and settings.ADMIN_PASSWORD:
            await auth.ensure_admin(
                store,
                username=settings.ADMIN_USERNAME,
                password=settings.ADMIN_PASSWORD,
                email=settings.ADMIN_EMAIL,
            )
        await seed_if_empty(store)
        logger.info("start-up 3/3: language model and services")
        async with contextlib.AsyncExitStack() as stack:
            for area in AREAS:
                if hasattr(area, "lifespan"):
                    await stack.enter_async_context(area.lifespan(app))
            # Objects made at start-up (gazetteer, spaCy model, settings) are never garbage: keep them
            # out of the collector's generations, so a full collection does not stall the event loop.
            gc.collect()
            gc.freeze()
            # Work that reads the whole trail runs in the background once the service answers: a count
            # holds SecantusDB (1.1 s at 200k events), and the index creations above would wait on it.
            rebuild = await rollups.prepare(store)  # the rollups' trust check, and a rebuild if they lag
            sweep = asyncio.create_task(
                _after(rebuild, lambda: audit_shape.quarantine(store)), name="audit-quarantine"
            )
            # Keeps the rollups' trust verdict fresh, so that no question waits on a count of the trail.
            watch = asyncio.create_task(rollups.watch(store), name="rollups-watch")
            app.state.ready.set()
            logger.info(
                "{} {} ready ({}): docs at http://localhost:{}/docs",
                settings.APP_NAME,
                settings.APP_VERSION,
                store.kind,
                settings.PORT,
            )
            yield
    finally:
        for task in (sweep, rebuild, watch):
            if task is not None:
                task.cancel()
                # a cancelled store command ends in pymongo's own error, not CancelledError
                with contextlib.suppress(asyncio.CancelledError, PyMongoError):
                    await task
        await store.close()


async def _after(first: asyncio.Task | None, then: Callable[[], Awaitable[Any]]) -> None:
    """Run `then` once `first` is over (whatever its outcome): the sweep reads the whole trail, so it
    waits for the start-up count of the rollups instead of holding the store with it."""
    if first is not None:
        await asyncio.wait({first})
    await then()


def _token_is_signed(token: str) -> bool:
    return auth.token_is_signed(token, secret=settings.SECRET_KEY or "")


def create_app() -> FastAPI:
    app = FastAPI(
        title=settings.APP_NAME,
        version=settings.APP_VERSION,
        description="Questions en français sur la piste d'audit Oracle (UNIFIED_AUDIT_TRAIL).",
        lifespan=lifespan,
        docs_url=None,  # served by routes/web.py from local assets
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_error_handlers(app)
    document_errors(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.CORS_ORIGINS,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["X-Request-ID"],
    )
    multipart_overhead = 2**20
    policy = body_policies(
        json_limit=settings.MAX_JSON_BODY_KB * 1024,
        uploads={
            ("POST", "/api/files"): settings.FILES_MAX_MB * 2**20 + multipart_overhead,
            ("POST", "/api/audit/import"): settings.IMPORT_MAX_MB * 2**20 + multipart_overhead,
        },
        public={"/api/auth/login", "/api/auth/register"},
    )
    app.add_middleware(RequestContextMiddleware, policy=policy, token_ok=_token_is_signed)
    api = APIRouter(prefix="/api")
    for area in AREAS:
        api.include_router(area.router)
    api.include_router(chat.chatbot_router)  # POST /api/chatbot, for the existing SPA
    app.include_router(api)
    web.mount(app)  # GET / (the web page), /static, /docs and /redoc
    return app


app = create_app()


if __name__ == "__main__":
    uvicorn.run(app, host=settings.HOST, port=settings.PORT, log_config=None)

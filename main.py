"""The FastAPI app: lifespan, middleware and routers. Run with `python main.py`."""

import contextlib
from collections.abc import AsyncIterator

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from loguru import logger

import auth
from config import settings
from database import make_store
from demo_data import seed_demo
from errors import install_error_handlers
from logs import setup_logging
from middleware import RequestContextMiddleware
from routes import analyze, audit, cache, chat, files, imports, oracle, system, web
from routes import auth as auth_routes

AREAS = [system, auth_routes, imports, audit, analyze, chat, cache, oracle, files]


async def seed_if_empty(store) -> None:
    if not settings.SEED_DEMO_DATA or await store.audit.estimated_document_count() > 0:
        return
    logger.info("empty audit trail: loading {} demo events", settings.DEMO_EVENTS)
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
    store = make_store()
    await store.start()
    app.state.store = store
    app.state.health_checks = {}
    try:
        if settings.ADMIN_USERNAME and settings.ADMIN_PASSWORD:
            await auth.ensure_admin(
                store,
                username=settings.ADMIN_USERNAME,
                password=settings.ADMIN_PASSWORD,
                email=settings.ADMIN_EMAIL,
            )
        await seed_if_empty(store)
        async with contextlib.AsyncExitStack() as stack:
            for area in AREAS:
                if hasattr(area, "lifespan"):
                    await stack.enter_async_context(area.lifespan(app))
            logger.info("{} {} ready ({})", settings.APP_NAME, settings.APP_VERSION, store.kind)
            yield
    finally:
        await store.close()


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
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.CORS_ORIGINS,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["X-Request-ID"],
    )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.MAX_BODY_MB * 2**20)
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

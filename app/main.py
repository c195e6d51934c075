"""The app factory. ``create_app(settings)`` builds the FastAPI app; its lifespan creates
the database engine, the trading calendar and the ONNX predictor (never at import).

Run it with ``deepregime serve`` or ``uvicorn --factory app.main:create_app``.

Routes:
    GET  /regime/today            latest regime, stale flag, filters, model part
    GET  /regime/{day}            one stored day
    GET  /regimes                 history (paged; JSON or CSV)
    POST /backtest                run and store a backtest; GET /backtest/{id} reads it back
    GET  /models, /models/{v}     model cards
    GET  /health, /ready, /metrics
    POST /admin/refresh, /admin/models/{v}/activate   (X-API-Key)
    GET  /regime/stream           publications as server-sent events
    /admin/webhooks               webhook subscriptions, deliveries, test (X-API-Key)
    GET  /backtest/{id}/report    tear sheet (HTML); /backtest/{id}/figures/{name}.{png,svg}
    GET  /dashboard               the dashboard (/ redirects there); /docs, /redoc offline
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from importlib.metadata import PackageNotFoundError, version

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from app import (
    routes_admin,
    routes_backtest,
    routes_ledger,
    routes_markets,
    routes_models,
    routes_ops,
    routes_regimes,
    routes_reports,
    routes_rule_sets,
    routes_stream,
    routes_sweeps,
    routes_track_record,
    routes_webhooks,
)
from app.dashboard import STATIC_DIR as DASHBOARD_STATIC
from app.dashboard import router as dashboard_router
from app.hot_path import TodayFastPath
from app.iso_params import require_iso_dates
from app.limits import BodySizeLimit
from app.methods import AllowHeader
from app.metrics import MetricsMiddleware, ServiceMetrics
from app.openapi import install_docs, install_openapi
from app.problems import install_problem_handlers
from app.query_names import reject_unknown_query
from app.scheduling import start_scheduler
from app.settings import Settings, get_settings
from app.startup import start_service

DESCRIPTION = """
Market-regime signals for sizing an equity book: a three-filter rule engine
(trend, volatility, credit) and a Transformer classifier, served per policy
(`rules`, `model`, `ensemble`), with backtests over the stored history.

Errors are problem details (`application/problem+json`).
"""


def _package_version() -> str:
    try:
        return version("deepregime")
    except PackageNotFoundError:
        return "0+unknown"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state = await run_in_threadpool(start_service, app.state.settings, app.state.metrics)
    app.state.service = state
    state.research.start()  # backtests and history pages run there; started meanwhile
    # Everything loaded so far (pandas, the calendar, onnxruntime, SQLAlchemy) lives as
    # long as the process: keep it out of the collector's full passes, which would
    # otherwise rescan it every few thousand requests (latency spikes).
    gc.collect()
    gc.freeze()
    # Set on shutdown (and as soon as the server is signalled): ends the regime streams
    # and the webhook delivery task.
    shutting_down = routes_stream.shutting_down(app)
    shutting_down.clear()
    undo_signals = routes_stream.chain_exit_signals(shutting_down)
    delivery = routes_webhooks.start_delivery(state.engine, app.state.settings, shutting_down)
    start_scheduler(state, shutting_down)  # only with `serve --schedule`
    routes_sweeps.start_runner(app, state.engine)  # queued sweeps, and those a stop interrupted
    # Every publication_check_s: the ledger's newest id, so a publication by another
    # process or replica drops this process's rendered answers (0: checked per request).
    watcher_stop = asyncio.Event()
    watcher = None
    if state.settings.publication_check_s > 0:
        newest = partial(routes_regimes.newest_publication, state)
        await state.check_ledger(newest)  # before serving: the first answers stay valid
        watcher = asyncio.create_task(state.watch_ledger(newest, watcher_stop))
    try:
        yield
    finally:
        shutting_down.set()
        undo_signals()
        watcher_stop.set()
        if watcher is not None:
            await watcher
        await routes_webhooks.stop_delivery(delivery)
        await run_in_threadpool(routes_sweeps.stop_runner, app)
        await run_in_threadpool(partial(state.research.close, wait=True))
        state.engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="deepregime",
        version=_package_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by install_docs from packaged assets (no CDN)
        redoc_url=None,
        # A query parameter a route does not declare is a 422 naming it, on every route;
        # so is a date or time parameter that is not ISO text.
        dependencies=[Depends(reject_unknown_query), Depends(require_iso_dates)],
    )
    app.state.settings = settings
    app.state.metrics = ServiceMetrics()
    install_problem_handlers(app)
    app.add_middleware(AllowHeader)  # inside CORS: preflights are CORS's
    if settings.cors_origins:  # closed unless origins are configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Accept", "Content-Type", "X-API-Key"],
        )
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        body_timeout_s=settings.http_body_timeout_s,
    )
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    # Outermost (added last): a rendered /regime/today is sent before anything else runs.
    app.add_middleware(TodayFastPath)
    # routes_stream first: /regime/stream must not be taken for /regime/{day}.
    for module in (
        routes_stream,
        routes_regimes,
        routes_ledger,
        routes_backtest,
        routes_reports,
        routes_models,
        routes_ops,
        routes_admin,
        routes_webhooks,
        routes_sweeps,
        routes_rule_sets,
        routes_markets,
        routes_track_record,
    ):
        app.include_router(module.router)
    app.include_router(dashboard_router)
    app.mount("/dashboard/static", StaticFiles(directory=DASHBOARD_STATIC), name="dashboard-static")
    install_docs(app)
    install_openapi(app)
    return app

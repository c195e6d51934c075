"""Work that writes: the admin refresh, model activation and backtest runs.

Refresh and activation hold the database lock ``refresh`` (store.locks), so one
runs at a time across every process sharing the database; a second caller gets
LockHeldError (409). All three run in FastAPI's thread pool, off the event loop.
"""

from __future__ import annotations

import datetime as dt
import time

import pandas as pd
from sqlalchemy import Connection, Engine

from app.model_loading import load_slot
from app.problems import ModelUnavailableError, NotFoundError
from app.schemas import Activation, RefreshReport
from app.settings import Settings
from app.state import ModelSlot, ResponseCache
from backtest.runner import BacktestInputs, run_backtest
from backtest.schemas import BacktestRequest
from backtest.strategies import uses_model
from core.errors import ConfigError, DataValidationError
from core.rules import RuleSet
from inference.registry import list_versions
from inference.versions import validate_version
from store.backtest_inputs import load_backtest_inputs as load_inputs_from_store
from store.backtest_runs import StoredRun, save_run
from store.ingest import IngestResult, ingest_csv_folder, ingest_yfinance
from store.locks import REFRESH_LOCK, held_lock
from store.model_registry import activate_predictor, store_outputs
from store.pipeline import refresh_features, refresh_regimes

# --- refresh --------------------------------------------------------------------


def _ingest(engine: Engine, settings: Settings, today: dt.date) -> list[IngestResult]:
    if settings.data_source == "csv":
        return ingest_csv_folder(engine, settings.data_path, today=today, symbols=None)
    return ingest_yfinance(
        engine,
        settings.symbols,
        today=today,
        default_start=dt.date.fromisoformat(settings.yfinance_start),
    )


def refresh_all(
    engine: Engine, *, settings: Settings, rule_set: RuleSet, model: ModelSlot, today: dt.date
) -> RefreshReport:
    """Ingest from the configured source, then recompute features, regimes and model outputs."""
    started = time.perf_counter()
    stale_after = dt.timedelta(seconds=settings.refresh_lock_stale_s)
    with held_lock(engine, REFRESH_LOCK, stale_after=stale_after):
        results = _ingest(engine, settings, today)
        with engine.begin() as connection:
            steps = [
                refresh_features(connection).summary(),
                refresh_regimes(connection, rule_set).summary(),
            ]
            model_line = _score_history(connection, model)
    return RefreshReport(
        source=settings.data_source,
        ingested=[r.summary() for r in results if r.status != "rejected"],
        rejected=[r.summary() for r in results if r.status == "rejected"],
        steps=steps,
        model=model_line,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )


def _score_history(connection: Connection, model: ModelSlot) -> str:
    if model.predictor is None:
        return f"model outputs: skipped ({model.reason})"
    outputs = store_outputs(connection, predictor=model.predictor)
    return f"model_outputs[{model.version}]: {len(outputs)} days scored"


# --- activation -------------------------------------------------------------------


def activate_model(
    engine: Engine, *, settings: Settings, version: str
) -> tuple[ModelSlot, Activation]:
    """Verify and load ``version``, record it as active and compute its daily outputs.

    ConfigError (bad name) -> 422, NotFoundError -> 404, a failed sha256 or
    feature check -> 422; nothing is recorded unless the model loads.
    """
    validate_version(version)
    if version not in list_versions(settings.model_dir):
        raise NotFoundError(f"model version {version} not found under {settings.model_dir}")
    slot = load_slot(settings.model_dir, version)
    if slot.predictor is None:
        raise ConfigError(str(slot.reason))
    stale_after = dt.timedelta(seconds=settings.refresh_lock_stale_s)
    with held_lock(engine, REFRESH_LOCK, stale_after=stale_after):
        with engine.begin() as connection:
            outputs = activate_predictor(connection, predictor=slot.predictor)
    return slot, Activation(version=version, outputs_written=len(outputs))


# --- backtests --------------------------------------------------------------------


def check_bounds(request: BacktestRequest, *, max_strategies: int) -> None:
    """Refuse more strategies than the service runs in one request (422 naming the field)."""
    if len(request.strategies) > max_strategies:
        raise DataValidationError(
            f"{len(request.strategies)} strategies in one request, at most {max_strategies} "
            "accepted (DEEPREGIME_MAX_BACKTEST_STRATEGIES)",
            field="body.strategies",
        )


def check_period(request: BacktestRequest, calendar: pd.DatetimeIndex) -> None:
    """Refuse a period outside the stored data (422 naming the field)."""
    first, last = calendar[0].date(), calendar[-1].date()
    if request.start is not None and request.start > last:
        raise DataValidationError(
            f"{request.start} is after the last day of data ({last})", field="body.start"
        )
    if request.end is not None and request.end < first:
        raise DataValidationError(
            f"{request.end} is before the first day of data ({first})", field="body.end"
        )


def load_backtest_inputs(
    connection: Connection, *, request: BacktestRequest, model: ModelSlot
) -> BacktestInputs:
    """store.backtest_inputs, after checking that a model strategy has a serving model."""
    if any(uses_model(strategy) for strategy in request.strategies) and (
        model.version is None or not model.loaded
    ):
        raise ModelUnavailableError(
            f"a strategy reads the classifier, which is not serving: {model.reason}"
        )
    return load_inputs_from_store(connection, request=request, model_version=model.version)


def run_and_store_backtest(
    engine: Engine,
    *,
    request: BacktestRequest,
    settings: Settings,
    model: ModelSlot,
    cache: ResponseCache,
) -> StoredRun:
    """Run the request on the stored data and store the run (request, result, duration).

    The loaded inputs are cached like rendered answers (dropped on refresh and
    activation, expired after the cache's TTL), so repeated runs skip the reads.
    """
    started = time.perf_counter()
    check_bounds(request, max_strategies=settings.max_backtest_strategies)
    needs_model = any(uses_model(strategy) for strategy in request.strategies)
    key = ("backtest-inputs", request.rate_source, model.version if needs_model else None)
    inputs = cache.get(key)
    if not isinstance(inputs, BacktestInputs):
        with engine.connect() as connection:
            inputs = load_backtest_inputs(connection, request=request, model=model)
        cache.put(key, inputs)
    check_period(request, inputs.features.index)
    result = run_backtest(request, inputs).result
    duration_ms = (time.perf_counter() - started) * 1000
    with engine.begin() as connection:
        return save_run(
            connection,
            request=request.model_dump(mode="json"),
            result=result.model_dump(mode="json"),
            duration_ms=duration_ms,
        )

"""Backtests on the stored history, for the command line and the API alike."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from backtest.rates import daily_cash_rate
from backtest.runner import BacktestInputs, run_backtest
from backtest.schemas import BacktestRequest
from backtest.strategies import AllocationConfig, VolTargetConfig, symbols_needed, uses_model
from core.errors import DataValidationError, ModelUnavailableError, NoDataError
from core.features import SPY
from inference.in_sample import in_sample_note
from operations.markets import current_universe
from operations.models import ModelSlot
from operations.rule_sets import resolve_request
from store.backtest_runs import StoredRun, prune_runs, run_by_idempotency_key, save_run
from store.db import SerialisedJSON
from store.repository import load_closes, load_features, load_served_model_outputs


def load_backtest_inputs(
    connection: Connection, *, request: BacktestRequest, model_version: str | None
) -> BacktestInputs:
    """The stored feature table (full history, for warm-up), SPY closes, the cash
    rate when stored, and ``model_version``'s daily outputs when a strategy reads
    the classifier. Raises NoDataError naming what is missing, including model
    outputs that stop before the features do (the period would shrink silently)."""
    features = load_features(connection)
    if features.empty:
        raise NoDataError("no features stored yet: run `deepregime update`")
    rate_symbol = request.rate_source.value
    # A few days before the first feature day, so the first day's cash rate is known.
    since = features.index[0].date() - dt.timedelta(days=10)
    asset = current_universe().market(request.market, field="body.market").symbol
    closes = load_closes(connection, symbols=[asset, rate_symbol], start=since)
    # Other symbols the strategies read (rule sets' inputs, defensive assets); one
    # that is not stored leaves its filter unavailable, as on the served side.
    others = sorted(symbols_needed(request.strategies) - {SPY, asset})
    other_closes = load_closes(connection, symbols=others, start=since) if others else {}
    _check_defensive_assets(request, other_closes)
    if asset not in closes:
        raise NoDataError(f"no {asset} prices stored: run `deepregime update`")
    if asset != SPY:
        # Strategies may read SPY (the published filters read it from the features).
        other_closes[asset] = closes[asset]
    cash_rate = None
    if rate_symbol in closes:
        cash_rate = daily_cash_rate(rate_symbol, closes[rate_symbol], features.index)
    elif request.cash_yield:  # financing needs the rate only on leveraged days (the engine)
        raise NoDataError(f"cash yield needs {rate_symbol} in the store: ingest it")
    outputs = None
    if any(uses_model(strategy) for strategy in request.strategies):
        if model_version is None:
            raise NoDataError(
                "a strategy reads the classifier, but no model is active "
                "(activate one, or name a model version)"
            )
        outputs = load_served_model_outputs(
            connection, model_version=model_version, history=request.model_history
        )
        if outputs.empty:
            raise NoDataError(f"no daily outputs stored for model version {model_version!r}")
        _check_outputs_cover(outputs, features.index, model_version, request)
    return BacktestInputs(
        features=features,
        asset_close=closes[asset],
        cash_rate=cash_rate,
        cash_rate_source=rate_symbol if cash_rate is not None else None,
        model_outputs=outputs,
        asset=asset,
        closes=other_closes,
    )


def _check_defensive_assets(request: BacktestRequest, closes: dict) -> None:
    """An allocation's defensive asset must be stored: the client named a symbol the
    service does not have (a bad field, 422), not a server fault."""
    for i, config in enumerate(request.strategies):
        where = f"body.strategies[{i}]"
        while isinstance(config, VolTargetConfig):
            config, where = config.base, f"{where}.base"
        if isinstance(config, AllocationConfig) and config.defensive not in closes:
            raise DataValidationError(
                f"no closes of {config.defensive!r} are stored (ingest it, or choose a "
                "stored symbol: `deepregime status` lists them)",
                field=f"{where}.defensive",
            )


def _check_outputs_cover(
    outputs: pd.DataFrame, days: pd.DatetimeIndex, version: str, request: BacktestRequest
) -> None:
    """Model outputs must reach the last day the backtest covers."""
    last_needed = days[-1] if request.end is None else min(days[-1], pd.Timestamp(request.end))
    last_output = outputs.index[-1]
    if last_output < last_needed:
        missing = int(((days > last_output) & (days <= last_needed)).sum())
        raise NoDataError(
            f"model {version} has no stored output after {last_output.date()}, but the period "
            f"runs to {last_needed.date()} ({missing} day(s) unscored): run `deepregime update` "
            "or end the period earlier"
        )


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


def serving_inputs(
    connection: Connection, *, request: BacktestRequest, model: ModelSlot
) -> BacktestInputs:
    """load_backtest_inputs for the serving model, after checking a model strategy has one."""
    if any(uses_model(strategy) for strategy in request.strategies) and (
        model.version is None or not model.loaded
    ):
        raise ModelUnavailableError(
            f"a strategy reads the classifier, which is not serving: {model.reason}"
        )
    return load_backtest_inputs(connection, request=request, model_version=model.version)


@dataclass(frozen=True)
class Retention:
    """Stored runs are kept within all three bounds (store.backtest_runs.prune_runs)."""

    keep_runs: int
    keep_bytes: int
    keep_days: float


@dataclass(frozen=True)
class BacktestAnswer:
    """A run as answered: the result as JSON bytes, and the stored run when kept.

    ``replayed``: the run was stored earlier under the same idempotency key and is
    answered again without running."""

    body: bytes
    run: StoredRun | None
    replayed: bool = False


class IdempotencyKeyReused(DataValidationError):
    """The idempotency key was used before with a different request."""


def request_fingerprint(request: BacktestRequest) -> str:
    """sha256 of the request's canonical JSON (``store`` aside: it does not change the run)."""
    document = request.model_dump(mode="json", exclude={"store"})
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def run_and_store_backtest(
    engine: Engine,
    *,
    request: BacktestRequest,
    max_strategies: int,
    model: ModelSlot,
    cache: object | None = None,
    idempotency_key: str | None = None,
    retention: Retention | None = None,
) -> BacktestAnswer:
    """Run the request on the stored data and, unless ``request.store`` is false, store
    the run (request, result, duration) and prune the stored runs to ``retention``.

    With ``idempotency_key``, a run stored earlier under that key is answered as it
    was, without running again (a different request under the same key is refused);
    two racing first attempts run both, and the second answers the first's stored run.
    ``cache`` (get/put) keeps the loaded inputs, so repeated runs skip the reads.
    """
    started = time.perf_counter()
    check_bounds(request, max_strategies=max_strategies)
    fingerprint = request_fingerprint(request) if idempotency_key else None
    if idempotency_key:
        with engine.connect() as connection:
            earlier = run_by_idempotency_key(connection, key=idempotency_key)
        if earlier is not None:
            return _replay(earlier, fingerprint, idempotency_key)
    with engine.connect() as connection:  # registered rule sets: their stored definitions
        request = resolve_request(connection, request)
    needs_model = any(uses_model(strategy) for strategy in request.strategies)
    key = (
        "backtest-inputs",
        request.market,
        tuple(sorted(symbols_needed(request.strategies))),
        request.rate_source,
        model.version if needs_model else None,
        request.model_history if needs_model else None,
    )
    inputs = cache.get(key) if cache is not None else None  # type: ignore[attr-defined]
    if not isinstance(inputs, BacktestInputs):
        with engine.connect() as connection:
            inputs = serving_inputs(connection, request=request, model=model)
        if cache is not None:
            cache.put(key, inputs)  # type: ignore[attr-defined]
    check_period(request, inputs.features.index)
    result = run_backtest(request, inputs).result
    if inputs.model_outputs is not None and "in_sample" in inputs.model_outputs:
        note = in_sample_note(
            inputs.model_outputs["in_sample"],
            version=str(model.version),
            start=request.start,
            end=request.end,
        )
        if note:
            result = result.model_copy(update={"notes": [*result.notes, note]})
    # Serialised once (pydantic's serialiser): the answer's bytes are also what is stored.
    text = result.model_dump_json()
    body = text.encode()
    if not request.store:
        return BacktestAnswer(body, None)
    document = request.model_dump(mode="json")
    duration_ms = (time.perf_counter() - started) * 1000
    try:
        with engine.begin() as connection:
            run = save_run(
                connection,
                request=document,
                result=SerialisedJSON(text),
                duration_ms=duration_ms,
                idempotency_key=idempotency_key,
                request_sha256=fingerprint,
                size_bytes=len(body) + len(json.dumps(document)),
            )
            if retention is not None:
                prune_runs(
                    connection,
                    keep_runs=retention.keep_runs,
                    keep_bytes=retention.keep_bytes,
                    older_than=run.created_at - dt.timedelta(days=retention.keep_days),
                )
    except IntegrityError:
        if idempotency_key is None:
            raise
        with engine.connect() as connection:  # a racing attempt stored it first
            earlier = run_by_idempotency_key(connection, key=idempotency_key)
        if earlier is None:
            raise
        return _replay(earlier, fingerprint, idempotency_key)
    return BacktestAnswer(body, run)


def _replay(earlier: StoredRun, fingerprint: str | None, key: str) -> BacktestAnswer:
    if earlier.request_sha256 != fingerprint:
        raise IdempotencyKeyReused(
            f"idempotency key {key!r} was used for a different request (run {earlier.id}); "
            "use a new key for a new request",
            field="header.Idempotency-Key",
        )
    body = json.dumps(earlier.result, separators=(",", ":")).encode()
    return BacktestAnswer(body, earlier, replayed=True)

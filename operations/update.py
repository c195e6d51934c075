"""The daily cycle: new market data in, one consistent published answer out.

``run_update`` is the one definition of an update, run by ``deepregime
update``, ``POST /admin/refresh`` and the scheduler alike:

1. ingest from the chosen source (one transaction per file; changes to days
   already stored are held back by the ingest and judged here, see
   operations.revisions);
2. recompute features and rule regimes (only changed days are written);
3. store the active model's outputs for every day not scored yet (and for days
   whose 60-day window a revision touched);
4. publish every served answer that changed into the ledger and queue its
   regime-change events (steps 2-4 in one transaction: all or nothing);
5. deliver due notifications (best effort: the outbox keeps what fails).

All of it runs under the database lock ``refresh``, so one update runs at a
time across every process sharing the database. Incremental and idempotent: a
rerun with nothing new publishes nothing and says so.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, func, insert, select, update

from core.features import FEATURE_INPUT_SYMBOLS
from core.rules import RuleSet, rule_set_preset
from core.rulesets import RuleSetDefinition
from operations import rule_sets
from operations.answers import stored_span
from operations.markets import load_universe
from operations.models import ModelSlot
from operations.notifications import deliver_configured
from operations.publish import data_fingerprint, publish_latest, published_days
from operations.revisions import Revision, altered_answers, classify, record_revision
from store.ingest import IngestResult, apply_price_changes, ingest_csv_folder, ingest_yfinance
from store.locks import PUBLISH_LOCK, REFRESH_LOCK, held_lock, hold_for_transaction
from store.pipeline import WARM_UP, refresh_features, refresh_regimes
from store.repository import (
    count_price_days,
    first_price_day_ingested_since,
    last_feature_day,
    last_model_output_day,
    load_closes,
    load_features,
    rescale_adjusted_closes,
    utcnow,
    write_model_outputs,
)
from store.sources import Downloader
from store.tables import update_runs

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger("deepregime.update")

Trigger = Literal["cli", "api", "schedule", "activation"]
RunStatus = Literal["published", "unchanged", "held", "failed"]


class StepReport(BaseModel):
    name: str
    seconds: float
    detail: str


class PublishedItem(BaseModel):
    id: int
    day: dt.date
    policy: str
    regime: str | None
    exposure: float | None


class UpdateReport(BaseModel):
    """What one update did, step by step; also the body of ``POST /admin/refresh``."""

    run_id: int
    status: RunStatus = Field(
        description="published (a new answer), unchanged (nothing new to publish), held "
        "(new days published, a revision held), failed."
    )
    trigger: str
    source: str
    ingested: list[str] = Field(default_factory=list)
    rejected: list[str] = Field(default_factory=list, description="Files or symbols refused.")
    revisions: list[str] = Field(default_factory=list, description="Revisions applied.")
    held: list[str] = Field(
        default_factory=list, description="Revisions held: rerun with --accept-revisions."
    )
    steps: list[StepReport] = Field(default_factory=list)
    publications: list[PublishedItem] = Field(default_factory=list)
    notifications_queued: int = 0
    notifications_delivered: int = 0
    duration_ms: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 done or nothing new; 2 done with problems to look at (held, rejected)."""
        return 2 if self.held or self.rejected else 0

    def summary_lines(self) -> list[str]:
        lines = [*self.ingested, *(f"rejected {line}" for line in self.rejected)]
        lines += [f"revision applied: {line}" for line in self.revisions]
        lines += [f"revision HELD: {line}" for line in self.held]
        lines += [
            f"{step.name:9s} {step.seconds * 1000:8.1f} ms  {step.detail}" for step in self.steps
        ]
        if self.publications:
            lines += [
                f"published #{item.id} {item.day} {item.policy}: {item.regime} "
                f"(exposure {item.exposure})"
                for item in self.publications
            ]
        else:
            lines.append("nothing new to publish")
        if self.held:
            lines.append("held revisions were not applied: rerun with --accept-revisions to apply")
        lines.append(
            f"update #{self.run_id} {self.status} in {self.duration_ms:.0f} ms; notifications "
            f"queued {self.notifications_queued}, delivered {self.notifications_delivered}"
        )
        return lines


class _Steps:
    """Times each named step of the cycle for the report."""

    def __init__(self) -> None:
        self.reports: list[StepReport] = []

    @contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        detail: list[str] = []
        started = time.perf_counter()
        yield detail
        self.reports.append(
            StepReport(name=name, seconds=time.perf_counter() - started, detail="; ".join(detail))
        )


# --- the run's audit row ----------------------------------------------------------


def _start_run(engine: Engine, *, trigger: str, source: str) -> int:
    """Audit row for this run; a run still 'running' under our lock was interrupted."""
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            update(update_runs)
            .where(update_runs.c.status == "running")
            .values(status="failed", message="interrupted (process stopped)", finished_at=now)
        )
        return connection.execute(
            insert(update_runs)
            .values(trigger=trigger, source=source, status="running", started_at=now)
            .returning(update_runs.c.id)
        ).scalar_one()


def _finish_run(connection: Connection, report: UpdateReport, message: str | None = None) -> None:
    connection.execute(
        update(update_runs)
        .where(update_runs.c.id == report.run_id)
        .values(
            status=report.status,
            summary=report.model_dump(mode="json"),
            message=message,
            finished_at=utcnow(),
        )
    )


def _record_failure(engine: Engine, run_id: int, error: BaseException) -> None:
    try:
        with engine.begin() as connection:
            connection.execute(
                update(update_runs)
                .where(update_runs.c.id == run_id)
                .values(status="failed", message=str(error)[:2000], finished_at=utcnow())
            )
    except Exception:  # noqa: BLE001 - the database may be what failed; the next run marks it
        log.warning("could not record the failure of update #%s", run_id)


# --- steps ------------------------------------------------------------------------


def _ingest(
    engine: Engine,
    *,
    source: str,
    path: Path,
    symbols: list[str],
    yfinance_start: dt.date,
    today: dt.date,
    download: Downloader | None,
) -> list[IngestResult]:
    if source == "csv":
        return ingest_csv_folder(engine, path, today=today, apply_changes=False)
    return ingest_yfinance(
        engine,
        symbols,
        today=today,
        default_start=yfinance_start,
        download=download,
        apply_changes=False,
    )


def _judge_revisions(
    engine: Engine,
    results: list[IngestResult],
    *,
    rule_set: RuleSet,
    model: ModelSlot,
    accept: bool,
    run_id: int,
    run_started: dt.datetime,
    report: UpdateReport,
) -> None:
    """Apply rescalings, harmless corrections and accepted ones; hold the rest.

    Every revision is judged against the same snapshot (the prices as stored before
    any of them), then all that are not held are applied in one transaction.
    """
    pending = [
        (r.symbol, r.changes, r.first_day)
        for r in results
        if r.changes is not None and len(r.changes)
    ]
    if not pending:
        return
    decisions: list[tuple[str, pd.DataFrame, Revision, str]] = []
    with engine.connect() as connection:
        closes = None
        by_name: dict[str, RuleSetDefinition] = {}
        for symbol, changes, first_day in pending:
            # The file's whole overlap with stored history, its earliest rows included.
            overlapping = count_price_days(
                connection, symbol=symbol, start=first_day, written_before=run_started
            )
            revision = classify(symbol, changes, overlapping_days=overlapping)
            status = "applied" if revision.kind == "rescale" or not accept else "accepted"
            if revision.kind == "correction" and not accept:
                if closes is None:
                    by_name = {
                        item.name: item.definition
                        for item in rule_sets.published_by_name(connection)
                    }
                    read = {s for d in by_name.values() for s in d.symbols}
                    closes = load_closes(
                        connection, symbols=sorted(read | set(FEATURE_INPUT_SYMBOLS))
                    )
                altered = altered_answers(
                    closes=closes,
                    symbol=symbol,
                    changes=changes,
                    published=published_days(connection, since=revision.first_date),
                    rule_set=rule_set,
                    model=model,
                    by_name=by_name,
                )
                if altered:
                    status = "held"
                    more = f"; ... {len(altered)} in all" if len(altered) > 3 else ""
                    report.held.append(
                        f"{revision.describe()}; would alter published "
                        f"{'; '.join(altered[:3])}{more}"
                    )
            decisions.append((symbol, changes, revision, status))
    with engine.begin() as connection:
        for symbol, changes, revision, status in decisions:
            if status != "held":
                apply_price_changes(connection, symbol=symbol, changes=changes, source="revision")
                if revision.factor is not None:
                    rescale_adjusted_closes(
                        connection,
                        symbol=symbol,
                        before=revision.first_date,
                        factor=revision.factor,
                    )
                report.revisions.append(f"{revision.describe()} [{status}]")
            record_revision(connection, revision=revision, status=status, run_id=run_id)


def score_new_days(
    connection: Connection, *, model: ModelSlot, since: pd.Timestamp | None
) -> tuple[int, str]:
    """Store the serving model's outputs for days after its last stored output, and for
    days on or after ``since`` (the first feature day that changed). Returns the count
    and a line for the report."""
    if model.predictor is None:
        return 0, f"skipped ({model.reason})"
    predictor = model.predictor
    stored_last = last_model_output_day(connection, model_version=predictor.version)
    first = None if stored_last is None else pd.Timestamp(stored_last) + pd.Timedelta(days=1)
    if first is not None and since is not None:
        first = min(first, since)
    # Enough calendar days before ``first`` to hold one window of sessions, usually;
    # when gaps leave fewer rows than a window, read the whole table instead.
    reach = pd.Timedelta(days=predictor.card.window * 2 + 15)
    features = load_features(connection, start=None if first is None else first - reach)
    if first is not None and int(features.index.searchsorted(first)) < predictor.card.window - 1:
        features = load_features(connection)
    if features.empty:
        return 0, "no features"
    first = features.index[0] if first is None else first
    position = int(features.index.searchsorted(first))
    if position >= len(features):
        return 0, f"[{predictor.version}] every day already scored"
    # The window ending on the first day to score starts window - 1 rows earlier.
    start = max(0, position - predictor.card.window + 1)
    outputs = predictor.predict_daily(features.iloc[start:]).loc[first:].dropna()
    outputs = predictor.with_in_sample(outputs)
    written = write_model_outputs(connection, table=outputs, model_version=predictor.version)
    return written, f"[{predictor.version}] {written} day(s) scored from {first.date()}"


def _last_complete_run_end(connection: Connection, *, current_run: int) -> dt.datetime | None:
    """When the last update that got through its recompute committed (None: never)."""
    finished = connection.execute(
        select(func.max(update_runs.c.finished_at)).where(
            update_runs.c.status.in_(("published", "unchanged", "held")),
            update_runs.c.id != current_run,
        )
    ).scalar()
    if finished is None:
        return None
    return finished if finished.tzinfo is not None else finished.replace(tzinfo=dt.UTC)


def _recompute_from(
    connection: Connection,
    *,
    current_run: int,
    symbols: tuple[str, ...] | list[str] = FEATURE_INPUT_SYMBOLS,
) -> pd.Timestamp | None:
    """The first day whose features (or what reads ``symbols``) may change; None
    (everything) when no feature is stored yet or no update ever completed.

    The watermark is durable: every input price written since the last complete
    update committed its recompute (by this run, by a run that died before its
    recompute, by the `ingest` step command; all under the same lock), so a crash
    between writing prices and recomputing is caught up by the next run.
    """
    last = last_feature_day(connection)
    watermark = _last_complete_run_end(connection, current_run=current_run)
    if last is None or watermark is None:
        return None
    first_written = first_price_day_ingested_since(
        connection, moment=watermark, symbols=list(symbols)
    )
    after_last = pd.Timestamp(last) + pd.Timedelta(days=1)
    return after_last if first_written is None else min(after_last, pd.Timestamp(first_written))


# --- the cycle ----------------------------------------------------------------------


def run_update(
    engine: Engine,
    *,
    settings: Settings,
    model: ModelSlot,
    trigger: Trigger,
    source: str | None = None,
    path: Path | None = None,
    accept_revisions: bool = False,
    lock_wait_s: float = 0.0,
    clock: Callable[[], dt.datetime] = utcnow,
    deliver: bool = True,
    download: Downloader | None = None,
) -> UpdateReport:
    """Run the daily cycle once (see the module docstring). Raises LockHeldError when
    another update holds the lock past ``lock_wait_s``; any other failure is recorded
    in ``update_runs`` and raised, with nothing of steps 2-4 written. ``download``
    replaces yfinance's (same call and frame shape) for ``source="yfinance"``."""
    started = time.perf_counter()
    source = source or settings.data_source
    rule_set = rule_set_preset(settings.rule_set).validate()
    universe = load_universe(settings.universe_file)
    steps = _Steps()
    with held_lock(engine, REFRESH_LOCK, wait_s=lock_wait_s):
        run_started = utcnow()
        run_id = _start_run(engine, trigger=trigger, source=source)
        report = UpdateReport(run_id=run_id, status="unchanged", trigger=trigger, source=source)
        try:
            with steps.step("ingest") as detail:
                results = _ingest(
                    engine,
                    source=source,
                    path=path or settings.data_path,
                    symbols=list(dict.fromkeys([*settings.symbols, *universe.symbols])),
                    yfinance_start=dt.date.fromisoformat(settings.yfinance_start),
                    today=clock().date(),
                    download=download,
                )
                report.ingested = [r.summary() for r in results if r.status != "rejected"]
                report.rejected = [r.summary() for r in results if r.status == "rejected"]
                detail.append(f"{len(results)} file(s)/symbol(s), {len(report.rejected)} rejected")
            with steps.step("revisions") as detail:
                _judge_revisions(
                    engine,
                    results,
                    rule_set=rule_set,
                    model=model,
                    accept=accept_revisions,
                    run_id=run_id,
                    run_started=run_started,
                    report=report,
                )
                detail.append(f"{len(report.revisions)} applied, {len(report.held)} held")
            with engine.begin() as connection:
                hold_for_transaction(connection, PUBLISH_LOCK)
                with steps.step("features") as detail:
                    since = _recompute_from(connection, current_run=run_id)
                    closes = load_closes(
                        connection,
                        symbols=FEATURE_INPUT_SYMBOLS,
                        start=None if since is None else since - WARM_UP,
                    )
                    features = refresh_features(connection, closes=closes, since=since)
                    detail.append(features.summary())
                with steps.step("regimes") as detail:
                    regimes_since = since if stored_span(connection, rule_set) else None
                    detail.append(
                        refresh_regimes(connection, rule_set, since=regimes_since).summary()
                    )
                    # Rule sets by name (operations.rule_sets), from the first day any
                    # input they read changed.
                    read = {
                        symbol
                        for item in rule_sets.published_by_name(connection)
                        for symbol in item.definition.symbols
                    }
                    by_name_since = _recompute_from(
                        connection,
                        current_run=run_id,
                        symbols=sorted(read | set(FEATURE_INPUT_SYMBOLS)),
                    )
                    detail.extend(
                        r.summary()
                        for r in rule_sets.refresh_registered(connection, since=by_name_since)
                    )
                with steps.step("model") as detail:
                    _, line = score_new_days(connection, model=model, since=features.first_changed)
                    detail.append(line)
                with steps.step("publish") as detail:
                    appended, queued = publish_latest(
                        connection,
                        rule_set=rule_set,
                        model=model,
                        fingerprint=data_fingerprint(closes),
                        run_id=run_id,
                        default_policy=settings.default_policy,
                        model_mapping=settings.model_mapping,
                    )
                    by_name, by_name_queued = rule_sets.publish_registered(
                        connection,
                        fingerprint=data_fingerprint(closes),
                        run_id=run_id,
                        default_policy=settings.default_policy,
                        model_mapping=settings.model_mapping,
                    )
                    appended += by_name
                    queued += by_name_queued
                    report.publications = [
                        PublishedItem(
                            id=p.id,
                            day=p.day,
                            policy=p.policy,
                            regime=p.document().get("regime"),
                            exposure=p.document().get("exposure"),
                        )
                        for p in appended
                    ]
                    report.notifications_queued = queued
                    detail.append(f"{len(appended)} publication(s), {queued} event(s) queued")
                report.status = (
                    "held" if report.held else ("published" if appended else "unchanged")
                )
                report.duration_ms = round((time.perf_counter() - started) * 1000, 1)
                report.steps = steps.reports
                _finish_run(connection, report)
        except BaseException as error:
            _record_failure(engine, run_id, error)
            raise
    if deliver:
        with steps.step("notify") as detail:
            try:
                stats = deliver_configured(engine, settings)
                report.notifications_delivered = stats.delivered
                detail.append(str(stats))
            except Exception as error:  # noqa: BLE001 - the outbox keeps them for the next try
                detail.append(f"delivery deferred: {error}")
        report.steps = steps.reports
    report.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    return report

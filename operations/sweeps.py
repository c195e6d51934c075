"""Sweeps as jobs: created by ``POST /sweeps`` or ``deepregime sweep``, kept in the
database (store.tables.sweeps, sweep_variants), run on Dask (research.sweep).

Life of a sweep:

    queued --(claimed by a runner)--> running --> done | failed | cancelled

- ``create_sweep`` checks the request's size and stores it ``queued``.
- A runner (``SweepRunner`` in the service, or the command line directly) claims
  it atomically (``claim``: one UPDATE ... WHERE status = 'queued'), so two serving
  processes never run the same sweep.
- While it runs, progress (variants done) and a heartbeat are written; a cancel
  request is read between chunks.
- The figures of every variant and the summary are written in one transaction
  with the status ``done``: a sweep has all its results or none.
- Restart: a ``running`` sweep whose heartbeat is older than ``stale_s`` (its
  process stopped) is queued again with the reason in ``message`` and rerun from
  the start by the next runner, up to ``max_attempts`` runs; then it is ``failed``
  with the reason. A failed or cancelled sweep can be queued again (``rerun``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from backtest.schemas import BacktestRequest
from backtest.strategies import RulesConfig
from core.errors import DataValidationError, DeepRegimeError, NotFoundError
from operations.backtests import load_backtest_inputs
from research.cluster import dask_client
from research.grid import SweepRequest
from store.ledger import as_utc
from store.tables import sweep_variants, sweeps

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    return None if moment is None else as_utc(moment)


@dataclass(frozen=True)
class Sweep:
    """A stored sweep, as the API and the command line show it."""

    id: str
    name: str | None
    status: str
    request: dict[str, Any]
    variants: int
    done_variants: int
    cancel_requested: bool
    attempts: int
    summary: dict[str, Any] | None
    message: str | None
    scheduler: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    finished_at: dt.datetime | None
    owner: str | None = None  # the key that queued it (operations.keys)

    @property
    def progress(self) -> float:
        return self.done_variants / self.variants if self.variants else 0.0

    @classmethod
    def of(cls, row: Any) -> Sweep:
        return cls(
            id=row.id,
            name=row.name,
            status=row.status,
            request=row.request,
            variants=row.variants,
            done_variants=row.done_variants,
            cancel_requested=bool(row.cancel_requested),
            attempts=row.attempts,
            summary=row.summary,
            message=row.message,
            scheduler=row.scheduler,
            created_at=_aware(row.created_at),  # type: ignore[arg-type]
            started_at=_aware(row.started_at),
            heartbeat_at=_aware(row.heartbeat_at),
            finished_at=_aware(row.finished_at),
            owner=row.owner,
        )


class SweepConflict(DeepRegimeError):
    """The sweep is not in a state that allows the action (answered 409)."""


class QuotaExceeded(DeepRegimeError):
    """The owner's quota leaves no room for the sweep (answered 429)."""


@dataclass(frozen=True)
class SweepQuota:
    """What one owner may queue: sweeps queued or running at once, variants a day."""

    max_concurrent: int
    max_variants_per_day: int


def _check_concurrency(connection: Connection, *, owner: str, quota: SweepQuota) -> None:
    active = connection.execute(
        select(func.count())
        .select_from(sweeps)
        .where(sweeps.c.owner == owner, sweeps.c.status.in_((QUEUED, RUNNING)))
    ).scalar_one()
    if active >= quota.max_concurrent:
        raise QuotaExceeded(
            f"{active} sweeps of this key are queued or running, at most "
            f"{quota.max_concurrent} at once: wait for one to finish or cancel one"
        )


def _check_quota(
    connection: Connection, *, owner: str, quota: SweepQuota, variants: int, now: dt.datetime
) -> None:
    _check_concurrency(connection, owner=owner, quota=quota)
    spent = connection.execute(
        select(func.coalesce(func.sum(sweeps.c.variants), 0)).where(
            sweeps.c.owner == owner, sweeps.c.created_at > now - dt.timedelta(days=1)
        )
    ).scalar_one()
    if spent + variants > quota.max_variants_per_day:
        raise QuotaExceeded(
            f"this key queued {spent} variants in the last 24 hours; {variants} more would "
            f"pass its {quota.max_variants_per_day} a day"
        )


def check_size(request: SweepRequest, *, max_variants: int) -> None:
    """Refuse a grid larger than the service runs (422 naming the field)."""
    size = request.grid.size
    if size > max_variants:
        raise DataValidationError(
            f"the grid expands to {size} variants, at most {max_variants} accepted "
            "(DEEPREGIME_SWEEP_MAX_VARIANTS): give fewer values on some axis",
            field="body.grid",
        )


def create_sweep(
    engine: Engine,
    *,
    request: SweepRequest,
    max_variants: int,
    owner: str | None = None,
    quota: SweepQuota | None = None,
    clock: Clock = utc_now,
) -> Sweep:
    """Store a new sweep, queued, owned by ``owner`` (within its ``quota`` when given)."""
    check_size(request, max_variants=max_variants)
    sweep_id = str(uuid.uuid4())
    now = clock()
    with engine.begin() as connection:
        if owner is not None and quota is not None:
            _check_quota(connection, owner=owner, quota=quota, variants=request.grid.size, now=now)
        connection.execute(
            insert(sweeps).values(
                id=sweep_id,
                name=request.name,
                status=QUEUED,
                request=request.model_dump(mode="json"),
                variants=request.grid.size,
                done_variants=0,
                cancel_requested=False,
                attempts=0,
                created_at=now,
                owner=owner,
            )
        )
        return _load(connection, sweep_id)


def _load(connection: Connection, sweep_id: str) -> Sweep:
    row = connection.execute(select(sweeps).where(sweeps.c.id == sweep_id)).first()
    if row is None:
        raise NotFoundError(f"no sweep with id {sweep_id!r}")
    return Sweep.of(row)


def load_sweep(connection: Connection, *, sweep_id: str) -> Sweep:
    return _load(connection, sweep_id)


def list_sweeps(
    connection: Connection, *, limit: int, offset: int = 0, status: str | None = None
) -> tuple[list[Sweep], int]:
    """Sweeps, newest first, and how many there are."""
    query = select(sweeps).order_by(sweeps.c.created_at.desc(), sweeps.c.id)
    count = select(func.count()).select_from(sweeps)
    if status is not None:
        query = query.where(sweeps.c.status == status)
        count = count.where(sweeps.c.status == status)
    rows = connection.execute(query.limit(limit).offset(offset)).all()
    return [Sweep.of(row) for row in rows], int(connection.execute(count).scalar_one())


def sweep_results(
    connection: Connection, *, sweep_id: str, page: int, page_size: int
) -> tuple[Sweep, list[dict[str, Any]]]:
    """One page (1-based) of a finished sweep's variants, best first."""
    sweep = _load(connection, sweep_id)
    if sweep.status != DONE:
        raise SweepConflict(f"sweep {sweep_id} is {sweep.status}: results exist once it is done")
    rows = connection.execute(
        select(sweep_variants)
        .where(sweep_variants.c.sweep_id == sweep_id)
        .order_by(sweep_variants.c.rank)
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    return sweep, [
        {
            "variant": row.variant,
            "rank": row.rank,
            "objective": row.objective,
            "parameters": row.parameters,
            "metrics": row.metrics,
        }
        for row in rows
    ]


def request_cancel(engine: Engine, *, sweep_id: str, clock: Clock = utc_now) -> Sweep:
    """Cancel a queued sweep at once, a running one at its next chunk. A finished sweep
    is answered as it is (cancelling twice is harmless)."""
    with engine.begin() as connection:
        sweep = _load(connection, sweep_id)
        if sweep.status == QUEUED:
            connection.execute(
                update(sweeps)
                .where(sweeps.c.id == sweep_id, sweeps.c.status == QUEUED)
                .values(status=CANCELLED, cancel_requested=True, finished_at=clock())
            )
        elif sweep.status == RUNNING:
            connection.execute(
                update(sweeps).where(sweeps.c.id == sweep_id).values(cancel_requested=True)
            )
        return _load(connection, sweep_id)


def rerun(engine: Engine, *, sweep_id: str, quota: SweepQuota | None = None) -> Sweep:
    """Queue a failed or cancelled sweep again (from the start), within its owner's
    ``quota`` of sweeps at once when given (its variants were counted when created)."""
    with engine.begin() as connection:
        sweep = _load(connection, sweep_id)
        if sweep.status not in (FAILED, CANCELLED):
            raise SweepConflict(
                f"sweep {sweep_id} is {sweep.status}: only a failed or cancelled sweep is rerun"
            )
        if sweep.owner is not None and quota is not None:
            _check_concurrency(connection, owner=sweep.owner, quota=quota)
        connection.execute(
            update(sweeps)
            .where(sweeps.c.id == sweep_id)
            .values(
                status=QUEUED,
                done_variants=0,
                cancel_requested=False,
                attempts=0,
                summary=None,
                message=None,
                started_at=None,
                heartbeat_at=None,
                finished_at=None,
            )
        )
        return _load(connection, sweep_id)


def claim(
    engine: Engine, *, sweep_id: str | None = None, scheduler: str, clock: Clock = utc_now
) -> Sweep | None:
    """Take a queued sweep (the oldest, or ``sweep_id``) for this runner; None when there
    is none or another runner took it first."""
    with engine.begin() as connection:
        query = select(sweeps.c.id).where(sweeps.c.status == QUEUED)
        if sweep_id is not None:
            query = query.where(sweeps.c.id == sweep_id)
        candidate = connection.execute(query.order_by(sweeps.c.created_at).limit(1)).scalar()
        if candidate is None:
            return None
        now = clock()
        taken = connection.execute(
            update(sweeps)
            .where(sweeps.c.id == candidate, sweeps.c.status == QUEUED)
            .values(
                status=RUNNING,
                started_at=now,
                heartbeat_at=now,
                attempts=sweeps.c.attempts + 1,
                scheduler=scheduler,
                done_variants=0,
            )
        )
        if taken.rowcount != 1:
            return None
        return _load(connection, candidate)


def recover_stale(
    engine: Engine, *, stale_s: float, max_attempts: int, clock: Clock = utc_now
) -> list[str]:
    """Queue again the running sweeps whose heartbeat stopped (their process ended), or
    fail them once they have run ``max_attempts`` times. Returns their ids."""
    now = clock()
    limit = now - dt.timedelta(seconds=stale_s)
    recovered = []
    with engine.begin() as connection:
        rows = connection.execute(
            select(sweeps.c.id, sweeps.c.attempts, sweeps.c.heartbeat_at).where(
                sweeps.c.status == RUNNING
            )
        ).all()
        for row in rows:
            beat = _aware(row.heartbeat_at)
            if beat is not None and beat > limit:
                continue
            reason = f"its process stopped while it ran (no heartbeat since {beat})"
            if row.attempts >= max_attempts:
                values = {
                    "status": FAILED,
                    "message": f"{reason}; failed after {row.attempts} attempt(s): "
                    "POST /sweeps/{id}/rerun to try again",
                    "finished_at": now,
                }
            else:
                values = {"status": QUEUED, "message": f"queued again: {reason}"}
            connection.execute(
                update(sweeps)
                .where(sweeps.c.id == row.id, sweeps.c.status == RUNNING)
                .values(**values)
            )
            recovered.append(row.id)
    return recovered


def load_sweep_inputs(
    connection: Connection, request: SweepRequest
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """The stored feature table, SPY's daily returns and the cash rate on its calendar,
    as a backtest of the same period reads them (operations.backtests)."""
    backtest = BacktestRequest(
        strategies=[RulesConfig()],
        cash_yield=request.cash_yield,
        financing=request.financing,
        rate_source=request.rate_source,
        store=False,
    )
    inputs = load_backtest_inputs(connection, request=backtest, model_version=None)
    days = inputs.calendar_arrays()
    return inputs.features, days.asset_returns, days.cash_rate


class _Heartbeat:
    """Writes the sweep's progress and heartbeat from a background thread every
    ``every_s``, and whenever progress moves (at most twice a second)."""

    def __init__(
        self,
        engine: Engine,
        sweep_id: str,
        every_s: float,
        clock: Clock,
        stopping: Callable[[], bool] | None = None,
    ) -> None:
        self.engine, self.sweep_id, self.every_s, self.clock = engine, sweep_id, every_s, clock
        self.stopping = stopping
        self.done = 0
        self._written = -1.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="sweep-heartbeat", daemon=True)
        self._cancel_checked = 0.0
        self._cancelled = False

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            self.write()

    def write(self) -> None:
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    update(sweeps)
                    .where(sweeps.c.id == self.sweep_id, sweeps.c.status == RUNNING)
                    .values(heartbeat_at=self.clock(), done_variants=self.done)
                )
            self._written = time.monotonic()
        except Exception:  # noqa: BLE001 - a missed beat is retried; the run goes on
            log.warning("sweep %s: could not write progress", self.sweep_id, exc_info=True)

    def progress(self, done: int, _total: int) -> None:
        self.done = done
        if time.monotonic() - self._written >= 0.5:
            self.write()

    def should_stop(self) -> bool:
        if self.stopping is not None and self.stopping():
            return True
        if time.monotonic() - self._cancel_checked < 0.5:
            return self._cancelled
        self._cancel_checked = time.monotonic()
        with self.engine.connect() as connection:
            flag = connection.execute(
                select(sweeps.c.cancel_requested).where(sweeps.c.id == self.sweep_id)
            ).scalar()
        self._cancelled = bool(flag)
        return self._cancelled


def execute_sweep(
    engine: Engine,
    sweep: Sweep,
    *,
    client: Any | None,
    chunk_variants: int,
    clock: Clock = utc_now,
    heartbeat_s: float = 10.0,
    progress: Callable[[int, int], None] | None = None,
    stopping: Callable[[], bool] | None = None,
) -> Sweep:
    """Run a claimed sweep to its end and store the outcome: ``done`` with every variant's
    figures, ``cancelled``, or ``failed`` with the reason (a domain error's message, or
    the kind of an unexpected error, which is logged). When ``stopping`` turns true (the
    service is shutting down) the sweep is queued again for the next runner."""
    # The sweep engine's compiled kernels load numba: imported when a sweep runs, so the
    # service starts without it.
    from research.sweep import SweepCancelled, run_sweep

    request = SweepRequest.model_validate(sweep.request)
    beat = _Heartbeat(engine, sweep.id, heartbeat_s, clock, stopping)

    def on_progress(done: int, total: int) -> None:
        beat.progress(done, total)
        if progress is not None:
            progress(done, total)

    try:
        with beat:
            with engine.connect() as connection:
                features, asset_returns, cash_rate = load_sweep_inputs(connection, request)
            outcome = run_sweep(
                request,
                features,
                asset_returns,
                cash_rate,
                client=client,
                chunk_variants=chunk_variants,
                progress=on_progress,
                should_stop=beat.should_stop,
            )
    except SweepCancelled:
        if stopping is not None and stopping():
            return _requeue(engine, sweep.id, "queued again: the service stopped while it ran")
        return _finish(engine, sweep.id, CANCELLED, "cancelled on request", clock)
    except DeepRegimeError as error:
        return _finish(engine, sweep.id, FAILED, str(error), clock)
    except Exception as error:
        log.exception("sweep %s failed", sweep.id)
        return _finish(engine, sweep.id, FAILED, f"internal error ({type(error).__name__})", clock)
    rows = outcome.variant_rows(request)
    summary = outcome.summary | {"timings_s": {k: round(v, 3) for k, v in outcome.timings.items()}}
    with engine.begin() as connection:
        connection.execute(delete(sweep_variants).where(sweep_variants.c.sweep_id == sweep.id))
        connection.execute(insert(sweep_variants), [{"sweep_id": sweep.id, **row} for row in rows])
        connection.execute(
            update(sweeps)
            .where(sweeps.c.id == sweep.id)
            .values(
                status=DONE,
                summary=summary,
                done_variants=len(rows),
                message=None,
                finished_at=clock(),
                heartbeat_at=clock(),
            )
        )
        return _load(connection, sweep.id)


def _requeue(engine: Engine, sweep_id: str, message: str) -> Sweep:
    with engine.begin() as connection:
        connection.execute(
            update(sweeps)
            .where(sweeps.c.id == sweep_id, sweeps.c.status == RUNNING)
            .values(status=QUEUED, message=message, done_variants=0)
        )
        return _load(connection, sweep_id)


def _finish(engine: Engine, sweep_id: str, status: str, message: str, clock: Clock) -> Sweep:
    with engine.begin() as connection:
        connection.execute(
            update(sweeps)
            .where(sweeps.c.id == sweep_id)
            .values(status=status, message=message, finished_at=clock())
        )
        return _load(connection, sweep_id)


@dataclass(frozen=True)
class ClusterSettings:
    scheduler: str | None
    workers: int
    processes: bool
    chunk_variants: int
    nice: int = 0  # a local cluster's workers below the serving processes' CPU priority

    @property
    def label(self) -> str:
        return (
            self.scheduler
            or f"local ({self.workers} {'processes' if self.processes else 'threads'})"
        )


class SweepRunner:
    """Runs queued sweeps in a background thread of the service, one at a time, on one
    Dask client (a local cluster is started on first use and kept until ``stop``).
    Every ``poll_s`` it also queues again the sweeps whose process stopped."""

    def __init__(
        self,
        engine: Engine,
        cluster: ClusterSettings,
        *,
        poll_s: float,
        stale_s: float,
        max_attempts: int,
        clock: Clock = utc_now,
    ) -> None:
        self.engine, self.cluster, self.clock = engine, cluster, clock
        self.poll_s, self.stale_s, self.max_attempts = poll_s, stale_s, max_attempts
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client_context: Any = None
        self._client: Any = None

    def start(self) -> None:
        if self.poll_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="sweep-runner", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A sweep was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._client_context is not None:
            self._client_context.__exit__(None, None, None)
            self._client_context = self._client = None

    def _client_now(self) -> Any:
        if self._client is None:
            self._client_context = dask_client(
                self.cluster.scheduler,
                workers=self.cluster.workers,
                processes=self.cluster.processes,
                nice=self.cluster.nice,
            )
            self._client = self._client_context.__enter__()
        return self._client

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                recover_stale(
                    self.engine,
                    stale_s=self.stale_s,
                    max_attempts=self.max_attempts,
                    clock=self.clock,
                )
                while not self._stop.is_set():
                    sweep = claim(self.engine, scheduler=self.cluster.label, clock=self.clock)
                    if sweep is None:
                        break
                    execute_sweep(
                        self.engine,
                        sweep,
                        client=self._client_now(),
                        chunk_variants=self.cluster.chunk_variants,
                        clock=self.clock,
                        heartbeat_s=min(10.0, self.stale_s / 4),
                        stopping=self._stop.is_set,
                    )
            except Exception:  # noqa: BLE001 - the database may be down: try at the next poll
                log.warning("sweep runner: poll failed", exc_info=True)
            self._wake.wait(self.poll_s)
            self._wake.clear()


@contextmanager
def cluster_client(cluster: ClusterSettings, *, local: bool = False) -> Iterator[Any]:
    """A Dask client for ``cluster``, or none (chunks run in this process) with ``local``."""
    if local:
        with nullcontext(None) as nothing:
            yield nothing
        return
    with dask_client(
        cluster.scheduler, workers=cluster.workers, processes=cluster.processes, nice=cluster.nice
    ) as client:
        yield client

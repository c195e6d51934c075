"""Research off the serving event loop: backtests and history pages in worker processes.

A backtest or a history page holds the GIL for milliseconds to tens of
milliseconds; run on the serving process, every ``/regime/today`` waiting behind
it would wait as long. ``ResearchPool`` runs them in a pool of
``DEEPREGIME_RESEARCH_PROCESSES`` processes (started in the background as the
service starts, from a forkserver, so a new process costs a fork and not a fresh
import; shut down and joined when it stops, so nothing is left running or leaked).
A job reads the database itself and returns its answer as bytes, so the serving
process only copies the body out. Each process keeps the loaded backtest inputs until the
ledger moves on.

Bounds: at most ``processes + DEEPREGIME_RESEARCH_QUEUE`` jobs are accepted at a
time; beyond that ``ResearchBusy`` (503 with ``Retry-After``), never a growing
queue. A job taking over ``DEEPREGIME_RESEARCH_TIMEOUT_S`` is answered 503 (its
slot stays taken until the process is done with it).

Jobs never raise across the process boundary: domain and database errors become
an ``Outcome`` with the status and problem fields the API answers with
(app.problems), so nothing depends on exceptions surviving pickling.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Response
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.problems import problem
from app.settings import Settings
from backtest.schemas import BacktestRequest
from core.errors import DataValidationError, DeepRegimeError
from operations.models import ModelSlot

log = logging.getLogger(__name__)
START_TIMEOUT_S = 60.0  # the longest the processes' start is waited for
# Imported once in the forkserver, so each research process starts warm.
PRELOAD = [
    "app.research",
    "app.services",
    "backtest.runner",
    "operations.answers",
    "operations.backtests",
    "store.ledger",
]


class ResearchBusy(Exception):
    """Every research slot is taken: answer 503 with Retry-After."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("the service is busy with research requests; retry shortly")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Outcome:
    """A job's answer: a body to send, or the problem to answer instead."""

    status: int
    body: bytes = b""
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    detail: str | None = None  # set for a problem
    errors: list[dict[str, str]] | None = None  # the fields named, as app.problems gives them
    cause: str | None = None
    retry_after_s: int | None = None

    @property
    def failed(self) -> bool:
        return self.detail is not None

    def response(self) -> Response:
        if not self.failed:
            return Response(self.body, self.status, self.headers, self.media_type)
        headers = {"Retry-After": str(self.retry_after_s)} if self.retry_after_s else None
        return problem(
            self.status, self.detail or "", errors=self.errors, headers=headers, cause=self.cause
        )


@dataclass(frozen=True)
class ModelFacts:
    """What a job needs to know of the serving model (the predictor stays behind)."""

    version: str | None
    loaded: bool
    reason: str | None

    @classmethod
    def of(cls, slot: ModelSlot) -> ModelFacts:
        return cls(slot.version, slot.loaded, slot.reason)


@dataclass(frozen=True)
class _RemoteModel(ModelSlot):
    """A ModelSlot standing for the serving process's model inside a research process."""

    serving: bool = False

    @property
    def loaded(self) -> bool:
        return self.serving


@dataclass(frozen=True)
class Database:
    url: str
    timeout_s: float


@dataclass(frozen=True)
class BacktestJob:
    database: Database
    request: BacktestRequest
    model: ModelFacts
    max_strategies: int
    idempotency_key: str | None
    keep_runs: int
    keep_bytes: int
    keep_days: float


@dataclass(frozen=True)
class HistoryJob:
    database: Database
    rule_set: str
    model: ModelFacts
    query: dict[str, Any]  # operations.answers.regime_history's keywords
    csv: bool


class ResearchPool:
    """A bounded process pool for research jobs (see the module's docstring)."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.processes = settings.research_processes
        self.capacity = max(1, settings.research_processes) + settings.research_queue
        self.timeout_s = settings.research_timeout_s
        self.nice = settings.research_nice
        self.busy = 0
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._executor_lock = threading.Lock()  # one pool, whichever thread asks first
        self._starting: threading.Thread | None = None
        self._database = Database(settings.database_url, settings.db_timeout_s)
        if self.in_process and engine is not None:
            _engines[self._database] = engine  # jobs in this process use the app's engine

    @property
    def in_process(self) -> bool:
        """``DEEPREGIME_RESEARCH_PROCESSES=0``: jobs run in the serving process's thread
        pool (no isolation from the event loop; for debugging and fault tests)."""
        return self.processes == 0

    def _pool(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(PRELOAD)
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=context,
                    initializer=_start_process,
                    initargs=(self.nice, os.getpid()),
                )
            return self._executor

    def start(self) -> None:
        """Start the processes in a background thread and have each answer once, so that
        no request pays for their start while the service answers from its first second
        (their imports take longer than the service's own start). A job sent meanwhile
        waits for them."""
        if self.in_process or self._starting is not None:
            return
        self._starting = threading.Thread(target=self._warm, name="research-start", daemon=True)
        self._starting.start()

    def _warm(self) -> None:
        try:
            pool = self._pool()
            for ready in [pool.submit(_ready) for _ in range(self.processes)]:
                ready.result(timeout=START_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - requests will start them again
            log.warning("research processes not started (%s); starting on first use", error)

    async def _submit(
        self, function: Callable[[Any], Outcome], job: object
    ) -> asyncio.Future[Outcome]:
        if self.in_process:
            return asyncio.get_running_loop().run_in_executor(None, function, job)
        pool = self._executor or await asyncio.to_thread(self._pool)
        try:
            return asyncio.wrap_future(pool.submit(function, job))
        except concurrent.futures.BrokenExecutor:  # a process died: start a new pool
            self.close()
            pool = await asyncio.to_thread(self._pool)
            return asyncio.wrap_future(pool.submit(function, job))

    async def run(self, job: BacktestJob | HistoryJob) -> Outcome:
        """The job's outcome; ResearchBusy when every slot is taken."""
        if self.busy >= self.capacity:
            raise ResearchBusy(retry_after_s=1 + self.busy // max(1, self.processes))
        function = _run_backtest if isinstance(job, BacktestJob) else _history_page
        self.busy += 1
        try:
            future = await self._submit(function, job)  # type: ignore[arg-type]
        except BaseException:
            self.busy -= 1
            raise
        # The slot is freed when the job is done, not when a caller stops waiting.
        future.add_done_callback(lambda _: self._release())
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except TimeoutError:
            return Outcome(
                503,
                detail=f"the research request took over {self.timeout_s:g} s "
                "(DEEPREGIME_RESEARCH_TIMEOUT_S)",
                retry_after_s=5,
            )
        except concurrent.futures.BrokenExecutor:
            self.close()
            return Outcome(503, detail="a research process stopped; retry", retry_after_s=1)

    def _release(self) -> None:
        self.busy -= 1

    def close(self, *, wait: bool = False) -> None:
        """Stop the processes. ``wait`` (the service's shutdown): until they have exited
        and the pool's queues and their semaphores are released. The server may end by
        raising its stop signal again, when no exit handler runs, so whatever is still
        open then is reported by multiprocessing's resource tracker as leaked."""
        if self.in_process:
            _engines.pop(self._database, None)
        if wait and self._starting is not None:
            self._starting.join(timeout=START_TIMEOUT_S)
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)


# --- inside the research processes ----------------------------------------------------


def _start_process(nice: int, server_pid: int) -> None:
    """Research yields the CPU to the serving processes when both want it, and ends
    with the serving process however that one ends (even killed, when the pool's own
    shutdown never runs)."""
    if nice:
        os.nice(nice)
    threading.Thread(target=_exit_with, args=(server_pid,), daemon=True).start()


def _ready() -> bool:
    return True


def _exit_with(server_pid: int) -> None:
    while True:
        time.sleep(1.0)
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # the pid now belongs to another user's process
            os._exit(0)


_engines: dict[Database, Engine] = {}
_inputs: dict[object, object] = {}
_inputs_ledger_id: list[int] = [-1]


def _engine(database: Database) -> Engine:
    from store.db import make_engine

    engine = _engines.get(database)
    if engine is None:
        engine = _engines[database] = make_engine(database.url, database.timeout_s)
    return engine


class _InputsCache:
    """Backtest inputs kept in this process while the ledger's newest id stays put."""

    def __init__(self, ledger_id: int) -> None:
        if ledger_id != _inputs_ledger_id[0]:
            _inputs.clear()
            _inputs_ledger_id[0] = ledger_id

    def get(self, key: object) -> object | None:
        return _inputs.get(key)

    def put(self, key: object, value: object) -> None:
        _inputs[key] = value


def _model(facts: ModelFacts) -> ModelSlot:
    return _RemoteModel(
        predictor=None, version=facts.version, reason=facts.reason, serving=facts.loaded
    )


def _run_backtest(job: BacktestJob) -> Outcome:
    from operations.backtests import Retention, run_and_store_backtest
    from store.ledger import latest_publication_id

    try:
        engine = _engine(job.database)
        with engine.connect() as connection:
            ledger_id = latest_publication_id(connection)
        answer = run_and_store_backtest(
            engine,
            request=job.request,
            max_strategies=job.max_strategies,
            model=_model(job.model),
            cache=_InputsCache(ledger_id),
            idempotency_key=job.idempotency_key,
            retention=Retention(
                keep_runs=job.keep_runs, keep_bytes=job.keep_bytes, keep_days=job.keep_days
            ),
        )
    except Exception as error:  # noqa: BLE001 - every failure becomes an answer
        return _failure(error)
    headers: dict[str, str] = {}
    if answer.run is not None:
        headers = {"Location": f"/backtest/{answer.run.id}", "X-Backtest-Id": answer.run.id}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Outcome(201 if answer.run is not None else 200, answer.body, headers=headers)


def _history_page(job: HistoryJob) -> Outcome:
    from app import services
    from core.rules import rule_set_preset
    from operations import answers

    try:
        with _engine(job.database).connect() as connection:
            page = answers.regime_history(
                connection,
                rule_set=rule_set_preset(job.rule_set).validate(),
                model=_model(job.model),
                **job.query,
            )
    except Exception as error:  # noqa: BLE001 - every failure becomes an answer
        return _failure(error)
    if job.csv:
        headers = {"X-Next-Cursor": page.next_cursor.isoformat()} if page.next_cursor else {}
        return Outcome(200, services.page_as_csv(page).encode(), "text/csv; charset=utf-8", headers)
    return Outcome(200, page.model_dump_json().encode())


def _failure(error: Exception) -> Outcome:
    """The answer app.problems gives for ``error``, built where the error happened."""
    from app.problems import APPLICATION_MISTAKES, DOMAIN_STATUS
    from store.db import classify_database_error

    if isinstance(error, DeepRegimeError):
        status = next((code for kind, code in DOMAIN_STATUS if isinstance(error, kind)), 400)
        errors = None
        if isinstance(error, DataValidationError) and error.field:
            errors = [{"field": error.field, "message": error.reason}]
        return Outcome(status, detail=str(error), errors=errors)
    if isinstance(error, DBAPIError | PoolTimeoutError):
        fault = classify_database_error(error)
        if not (fault.cause == "error" and isinstance(error, APPLICATION_MISTAKES)):
            return Outcome(
                503, detail=fault.detail, cause=fault.cause, retry_after_s=fault.retry_after_s
            )
    log.exception("research job failed", exc_info=error)
    return Outcome(500, detail="internal error in a research process")

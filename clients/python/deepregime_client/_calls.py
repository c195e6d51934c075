"""The service's operations, each declared once and bound to both clients.

An operation is a function returning the ``Call`` to make (path, parameters, how
to read the answer), or a generator yielding several calls in turn (the history's
pages) and returning the result. ``@operation`` makes it a method of ``Client``
(which runs it and answers the result) and of ``AsyncClient`` (which answers a
coroutine), with this signature and docstring.

A parameter is sent only when it is not None: the service answers 422 to a query
parameter a route does not declare, so ``market=`` reaches it only when asked for.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable, Coroutine, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from deepregime_client._exchange import Call, Plan
from deepregime_client.models import (
    BacktestResult,
    PublicationPage,
    RegimePage,
    RegimeReport,
    RegimeRow,
    RuleSetPage,
    RuleSetReport,
    RuleSetRow,
    SweepResultsPage,
    SweepStatus,
)

if TYPE_CHECKING:
    from deepregime_client._async import AsyncClient
    from deepregime_client._sync import Client

P = ParamSpec("P")
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

Day = dt.date | str
Moment = dt.datetime | str
Report = RegimeReport | RuleSetReport
Row = RegimeRow | RuleSetRow
JsonBody = Mapping[str, Any] | BaseModel


class operation(Generic[P, T]):  # noqa: N801 - used as a decorator
    """A method of both clients: ``Client`` answers ``T``, ``AsyncClient`` a coroutine of it."""

    def __init__(self, plan: Callable[P, Plan[T]]) -> None:
        self.plan = plan
        self.__name__ = plan.__name__
        self.__doc__ = plan.__doc__

    @overload
    def __get__(self, client: None, owner: type) -> operation[P, T]: ...
    @overload
    def __get__(self, client: Client, owner: type) -> Callable[P, T]: ...
    @overload
    def __get__(self, client: AsyncClient, owner: type) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, client: Any, owner: type) -> Any:
        if client is None:
            return self
        plan = self.plan

        @functools.wraps(plan)
        def method(*args: P.args, **kwargs: P.kwargs) -> Any:
            return client._perform(plan(*args, **kwargs))

        return method


# --- request parts -----------------------------------------------------------------------


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


def query(**values: object) -> dict[str, str]:
    """The query parameters that were given (not None), as text."""
    return {name: _text(value) for name, value in values.items() if value is not None}


def segment(value: object) -> str:
    """One path segment: a date as YYYY-MM-DD, anything else quoted whole."""
    return quote(_text(value), safe="")


def body_json(body: JsonBody) -> Any:
    if isinstance(body, BaseModel):
        return body.model_dump(mode="json", exclude_unset=True)
    return dict(body)


def model(kind: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: kind.model_validate_json(response.content)


def report_model(rule_set: str | None) -> Callable[[httpx.Response], Report]:
    return model(RuleSetReport if rule_set is not None else RegimeReport)


# --- answers -----------------------------------------------------------------------------


@operation
def today(
    market: str | None = None, rule_set: str | None = None, policy: str | None = None
) -> Call[Report]:
    """The latest published answer (a ``RuleSetReport`` when ``rule_set`` names a
    registered rule set). Revalidated with ``If-None-Match``: unchanged, it costs a 304."""
    params = query(market=market, rule_set=rule_set, policy=policy)
    return Call("GET", "/regime/today", report_model(rule_set), params)


@operation
def regime(
    day: Day,
    as_known_at: Moment | None = None,
    *,
    market: str | None = None,
    rule_set: str | None = None,
    policy: str | None = None,
) -> Call[Report]:
    """The answer for one trading day; with ``as_known_at``, what had been published
    for it by then (ISO 8601; without a zone, UTC)."""
    params = query(as_known_at=as_known_at, market=market, rule_set=rule_set, policy=policy)
    return Call("GET", f"/regime/{segment(day)}", report_model(rule_set), params)


@operation
def history(
    start: Day | None = None,
    end: Day | None = None,
    *,
    market: str | None = None,
    rule_set: str | None = None,
    policy: str | None = None,
    model_history: str | None = None,
    page_size: int | None = None,
    as_frame: bool | None = None,
) -> Generator[Call[Any], Any, Any]:
    """Every day from ``start`` to ``end``, all pages read: a pandas DataFrame indexed
    by date when pandas is installed, else a list of ``RegimeRow`` (``RuleSetRow``
    with ``rule_set``); ``as_frame`` asks for either."""
    page_model = RuleSetPage if rule_set is not None else RegimePage
    rows: list[Row] = []
    cursor: dt.date | None = None
    while True:
        params = query(
            start=start,
            end=end,
            cursor=cursor,
            market=market,
            rule_set=rule_set,
            policy=policy,
            model_history=model_history,
            limit=page_size,
        )
        page = yield Call("GET", "/regimes", model(page_model), params)
        rows += page.items
        if (cursor := page.next_cursor) is None:
            return history_result(rows, as_frame)


def history_result(rows: Sequence[Row], as_frame: bool | None) -> Any:
    """The rows as a DataFrame indexed by date when pandas is there (or ``as_frame``
    asks for one), else as they are."""
    if as_frame is False:
        return list(rows)
    try:
        import pandas as pd
    except ImportError:
        if as_frame:
            raise ImportError("history(as_frame=True) needs pandas: pip install pandas") from None
        return list(rows)
    frame = pd.DataFrame([row.model_dump() for row in rows])
    if frame.empty:
        return frame
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.set_index("date")


@operation
def publications(
    since: Moment | None = None,
    after_id: int | None = None,
    policy: str | None = None,
    limit: int | None = None,
) -> Call[PublicationPage]:
    """One page of the ledger, oldest first; ``next_after_id`` is where the next starts."""
    params = query(since=since, after_id=after_id, policy=policy, limit=limit)
    return Call("GET", "/publications", model(PublicationPage), params)


# --- research ----------------------------------------------------------------------------


def _backtest_result(response: httpx.Response) -> BacktestResult:
    result = BacktestResult.model_validate_json(response.content)
    result._run_id = response.headers.get("x-backtest-id")
    return result


@operation
def backtest(request: JsonBody, idempotency_key: str | None = None) -> Call[BacktestResult]:
    """Run a backtest (the body of ``POST /backtest``, as a dict or a pydantic model).

    Sent with an ``Idempotency-Key`` (a new one unless given): a retry after a
    dropped connection answers the first run instead of running it twice."""
    key = idempotency_key or str(uuid.uuid4())
    headers = {"Idempotency-Key": key}
    return Call("POST", "/backtest", _backtest_result, json=body_json(request), headers=headers)


@operation
def create_sweep(request: JsonBody) -> Call[SweepStatus]:
    """Queue a sweep (the body of ``POST /sweeps``); ``sweep(id)`` shows its progress."""
    body = body_json(request)
    return Call("POST", "/sweeps", model(SweepStatus), json=body, idempotent=False)


@operation
def sweep(sweep_id: str) -> Call[SweepStatus]:
    """A sweep's status and progress, and its summary once done."""
    return Call("GET", f"/sweeps/{segment(sweep_id)}", model(SweepStatus))


@operation
def sweep_results(
    sweep_id: str, page: int | None = None, page_size: int | None = None
) -> Call[SweepResultsPage]:
    """A page of a finished sweep's variants, best first (409 until it is done)."""
    params = query(page=page, page_size=page_size)
    return Call("GET", f"/sweeps/{segment(sweep_id)}/results", model(SweepResultsPage), params)


@operation
def cancel_sweep(sweep_id: str) -> Call[SweepStatus]:
    """Cancel a sweep: a queued one at once, a running one after its current chunk."""
    # Cancelling twice is cancelling once: safe to retry.
    return Call("POST", f"/sweeps/{segment(sweep_id)}/cancel", model(SweepStatus))

"""Routes of the dashboard: the page, and the history figure over a chosen span."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from string import Template
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.deps import StateDep
from app.routes_regimes import MarketQuery, RuleSetQuery, database_finder
from app.schemas import Problem
from backtest.plots import regime_figure, render
from backtest.runner import run_backtest
from backtest.schemas import BacktestRequest, EquitySampling
from backtest.strategies import RulesConfig, RuleSetConfig
from core.errors import DataValidationError, NoDataError
from core.rules import FILTER_DEFINITIONS, RULE_SET_PRESETS
from operations import rule_sets
from operations.answers import no_regimes, stored_span
from operations.asks import resolve_ask
from operations.backtests import check_period, load_backtest_inputs

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_SPAN_YEARS = 3  # the history shown first: the last three years of data
NO_POLICY = {"policy": None, "mapping": None}  # the rule engine's regimes, never the model's
MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}

router = APIRouter(tags=["dashboard"])


@router.get("/", include_in_schema=False)
async def home() -> RedirectResponse:
    return RedirectResponse("/dashboard")


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(state: StateDep) -> HTMLResponse:
    """The dashboard page (HTML; its data comes from the API as the page runs)."""
    page = Template((STATIC_DIR / "index.html").read_text(encoding="utf-8"))
    # Which side of its threshold means stress, per filter: the page computes how far
    # each value is from flipping.
    sides = {
        name.value: "below" if d.fires_below else "above" for name, d in FILTER_DEFINITIONS.items()
    }
    html = page.substitute(
        policy=state.settings.default_policy.value,
        filter_sides=json.dumps(sides),
    )
    return HTMLResponse(html)


def _rules_preset(name: str) -> str:
    return name if name in RULE_SET_PRESETS else "published"


@router.get(
    "/dashboard/history.{image_format}",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}, "image/svg+xml": {}}, "description": "The figure."},
        422: {
            "model": Problem,
            "description": "A span outside the stored data, or a bad market or rule set.",
        },
        503: {"model": Problem, "description": "No data stored yet for that market."},
    },
)
def history_figure(
    image_format: Literal["png", "svg"],
    state: StateDep,
    start: Annotated[dt.date | None, Query(description="first day (default: 3 years back)")] = None,
    end: Annotated[dt.date | None, Query(description="last day (default: the last stored)")] = None,
    market: MarketQuery = None,
    rule_set: RuleSetQuery = None,
) -> Response:
    """The market with the regime of its rule set shaded (default: the market's own),
    the exposure held and the drawdowns of the market and of the rules, from ``start``
    to ``end``. The span drawn comes back in ``X-History-Start`` and ``X-History-End``."""
    # The same resolution as the regime routes: the market's own rule set by default,
    # a rule set of another market a 422 naming the parameter.
    with state.engine.connect() as connection:
        find = database_finder(connection)
        ask = resolve_ask(state.settings, market=market, rule_set=rule_set, **NO_POLICY, find=find)
        if ask.item is None or rule_sets.is_service_preset(ask.item):
            span = stored_span(connection, state.rule_set)
            if span is None:
                raise no_regimes(state.rule_set)
            preset = _rules_preset(state.settings.rule_set)
            strategy: RulesConfig | RuleSetConfig = RulesConfig(
                preset=preset, name=f"Rules ({preset})"
            )
        else:
            span = rule_sets.stored_span(connection, ask.item.definition)
            if span is None:
                raise NoDataError(f"no regimes computed yet for rule set {ask.item.name!r}")
            strategy = RuleSetConfig(
                rule_set=ask.item.name,
                definition=ask.item.definition.to_dict(),
                name=f"Rules ({ask.item.name})",
            )
        first, last = _span_drawn(span, start, end)
        request = BacktestRequest(
            strategies=[strategy],
            market=ask.market.id,
            start=first,
            end=last,
            equity_sampling=EquitySampling.NONE,
        )
        inputs = load_backtest_inputs(connection, request=request, model_version=None)
    check_period(request, inputs.features.index)
    try:
        run = run_backtest(request, inputs)
    except NoDataError as error:
        raise DataValidationError(str(error), field="query.start") from None
    body = render(regime_figure(run), image_format)
    headers = {"X-History-Start": first.isoformat(), "X-History-End": last.isoformat()}
    return Response(body, media_type=MEDIA_TYPES[image_format], headers=headers)


def _span_drawn(
    stored: tuple[dt.date, dt.date], start: dt.date | None, end: dt.date | None
) -> tuple[dt.date, dt.date]:
    """The days drawn: ``start``..``end`` within the stored span (default: its last
    three years). A span wholly outside the stored one, or reversed, is a named 422."""
    if end is not None and end < stored[0]:
        raise DataValidationError(
            f"{end} is before the first day of data ({stored[0]})", field="query.end"
        )
    if start is not None and start > stored[1]:
        raise DataValidationError(
            f"{start} is after the last day of data ({stored[1]})", field="query.start"
        )
    last = min(end or stored[1], stored[1])
    default_first = last - dt.timedelta(days=365 * DEFAULT_SPAN_YEARS)
    first = max(start or default_first, stored[0])
    if first > last:
        raise DataValidationError(f"start {first} is after end {last}", field="query.start")
    return first, last

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
from app.schemas import Problem
from backtest.plots import regime_figure, render
from backtest.runner import run_backtest
from backtest.schemas import BacktestRequest, EquitySampling
from backtest.strategies import RulesConfig
from core.errors import DataValidationError, NoDataError
from core.rules import FILTER_DEFINITIONS, RULE_SET_PRESETS
from operations.answers import no_regimes, stored_span
from operations.backtests import check_period, load_backtest_inputs

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_SPAN_YEARS = 3  # the history shown first: the last three years of data
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
        422: {"model": Problem, "description": "A span outside the stored data."},
    },
)
def history_figure(
    image_format: Literal["png", "svg"],
    state: StateDep,
    start: Annotated[dt.date | None, Query(description="first day (default: 3 years back)")] = None,
    end: Annotated[dt.date | None, Query(description="last day (default: the last stored)")] = None,
) -> Response:
    """The asset with the rule engine's regime shaded, the exposure held and the drawdowns
    of the asset and of the rules, from ``start`` to ``end``."""
    with state.engine.connect() as connection:
        span = stored_span(connection, state.rule_set)
        if span is None:
            raise no_regimes(state.rule_set)
        if end is not None and end < span[0]:
            raise DataValidationError(
                f"{end} is before the first day of data ({span[0]})", field="query.end"
            )
        if start is not None and start > span[1]:
            raise DataValidationError(
                f"{start} is after the last day of data ({span[1]})", field="query.start"
            )
        last = min(end or span[1], span[1])
        first = start or max(span[0], last - dt.timedelta(days=365 * DEFAULT_SPAN_YEARS))
        if first > last:
            raise DataValidationError(f"start {first} is after end {last}", field="query.start")
        preset = _rules_preset(state.settings.rule_set)
        request = BacktestRequest(
            strategies=[RulesConfig(preset=preset, name=f"Rules ({preset})")],
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
    return Response(body, media_type=MEDIA_TYPES[image_format])

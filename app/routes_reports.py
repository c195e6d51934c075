"""Tear sheets of stored backtest runs: ``GET /backtest/{id}/report`` (HTML) and its
figures, ``GET /backtest/{id}/figures/{name}.{png|svg}``.

A stored run keeps its request and result, not the daily frames behind the figures,
so the report replays the stored request over the stored period on the stored data
(the same inputs a new ``POST /backtest`` reads). When the data was revised since, the
figures follow today's data and the page says that the metrics moved.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Engine

from app.deps import EngineDep, PredictorDep
from app.problems import NotFoundError
from app.schemas import Problem
from backtest.plots import FIGURES, render
from backtest.report import report_title, tear_sheet_html
from backtest.runner import BacktestRun, run_backtest
from backtest.schemas import BacktestRequest, BacktestResult, StrategyMetrics
from operations.backtests import serving_inputs
from operations.models import ModelSlot
from store.backtest_runs import load_run

router = APIRouter(tags=["backtest"])

FigureName = StrEnum("FigureName", {name.upper(): name for name in FIGURES})  # type: ignore[misc]


class ImageFormat(StrEnum):
    PNG = "png"
    SVG = "svg"


MEDIA_TYPES = {ImageFormat.PNG: "image/png", ImageFormat.SVG: "image/svg+xml"}
REPLAYS_KEPT = 8  # replayed runs kept per app: a report page asks for six figures at once

RunId = Annotated[str, Path(max_length=36, description="Id returned by POST /backtest.")]


@dataclass(frozen=True)
class Replay:
    """A stored run replayed: the run, its report's title, and warnings when its metrics
    moved since it was stored."""

    run: BacktestRun
    title: str
    warnings: list[str]


class ReplayCache:
    """The last few replayed runs by (run id, serving model), so a page's figures share one
    replay. One lock: two requests for one run wait for a single replay."""

    def __init__(self, size: int = REPLAYS_KEPT) -> None:
        self._size = size
        self._runs: OrderedDict[tuple[str, str | None], Replay] = OrderedDict()
        self._lock = threading.Lock()

    def replay(self, engine: Engine, run_id: str, model: ModelSlot) -> Replay:
        key = (run_id, model.version)
        with self._lock:
            if key in self._runs:
                self._runs.move_to_end(key)
                return self._runs[key]
            replayed = _replay(engine, run_id, model)
            self._runs[key] = replayed
            while len(self._runs) > self._size:
                self._runs.popitem(last=False)
            return replayed


def _replay(engine: Engine, run_id: str, model: ModelSlot) -> Replay:
    """The stored run replayed on the stored data (a request stored before financing was
    on by default says ``financing: false`` and is replayed so)."""
    with engine.connect() as connection:
        stored = load_run(connection, run_id=run_id)
        if stored is None:
            raise NotFoundError(f"no backtest run with id {run_id!r}")
        result = BacktestResult.model_validate(stored.result)
        request = BacktestRequest.model_validate(
            {**stored.request, "start": result.period.start, "end": result.period.end}
        )
        inputs = serving_inputs(connection, request=request, model=model)
    run = run_backtest(request, inputs)
    return Replay(run, report_title(request.title, result), _moved(result, run.result))


def _moved(stored: BacktestResult, replayed: BacktestResult) -> list[str]:
    before = {s.name: s.metrics for s in stored.strategies}
    moved = [
        s.name
        for s in replayed.strategies
        if before.get(s.name) is None or not _same_metrics(before[s.name], s.metrics)
    ]
    if not moved:
        return []
    return [
        "The stored data changed since this run (a revision or a new model): the figures "
        f"and metrics below are today's replay, and differ for {', '.join(moved)}."
    ]


def _same_metrics(stored: StrategyMetrics, replayed: StrategyMetrics) -> bool:
    """Equal metrics; time invested aside for a run stored before leveraged days were
    counted apart from full ones (the same days, split differently)."""
    if stored.time_invested.leveraged is None:
        ignore = {"time_invested"}
        return stored.model_dump(exclude=ignore) == replayed.model_dump(exclude=ignore)
    return stored == replayed


def _replays(request: Request) -> ReplayCache:
    cache = getattr(request.app.state, "report_replays", None)
    if cache is None:
        cache = request.app.state.report_replays = ReplayCache()
    return cache


@router.get(
    "/backtest/{run_id}/report",
    response_class=HTMLResponse,
    responses={404: {"model": Problem, "description": "No run with that id."}},
)
def backtest_report(
    run_id: RunId, request: Request, engine: EngineDep, model: PredictorDep
) -> HTMLResponse:
    """The tear sheet of a stored run: title (the request's, else the strategies'
    names), metrics, conventions and every figure."""
    replay = _replays(request).replay(engine, run_id, model)

    def figure_url(name: str, image_format: str) -> str:
        return str(
            request.url_for(
                "backtest_figure", run_id=run_id, figure=name, image_format=image_format
            ).path
        )

    html = tear_sheet_html(
        replay.run.result,
        title=replay.title,
        figure_url=figure_url,
        figures=list(FIGURES),
        warnings=replay.warnings,
        about=[f"Backtest run {run_id}"],
    )
    return HTMLResponse(html)


@router.get(
    "/backtest/{run_id}/figures/{figure}.{image_format}",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}, "image/svg+xml": {}}, "description": "The figure."},
        404: {"model": Problem, "description": "No run with that id."},
    },
)
def backtest_figure(
    run_id: RunId,
    figure: FigureName,
    image_format: ImageFormat,
    request: Request,
    engine: EngineDep,
    model: PredictorDep,
) -> Response:
    """One figure of a stored run's tear sheet, as PNG or SVG."""
    run = _replays(request).replay(engine, run_id, model).run
    body = render(FIGURES[figure.value](run), image_format.value)
    return Response(
        body,
        media_type=MEDIA_TYPES[image_format],
        headers={"Cache-Control": "private, max-age=300"},
    )

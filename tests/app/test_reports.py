"""Tear sheets over HTTP: GET /backtest/{id}/report and its figures as PNG and SVG."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select, update

from backtest.plots import FIGURES
from store.db import make_engine
from store.tables import backtest_runs
from tests.app.conftest import write_csv_folder

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIVE_STRATEGIES = {
    "strategies": [
        {"kind": "buy_and_hold"},
        {"kind": "rules"},
        {"kind": "single_filter", "filter": "trend"},
        {"kind": "single_filter", "filter": "volatility"},
        {"kind": "single_filter", "filter": "credit"},
    ],
    "start": "2011-06-01",
}


REGIME_STRATEGIES = ["Rules (published)", "Trend only", "Volatility only", "Credit only"]
LEVERED = {
    "kind": "vol_target",
    "base": {"kind": "rules"},
    "target_volatility": 0.5,
    "max_leverage": 2.0,
    "name": "Rules levered",
}


@pytest.fixture
def csv_folder(tmp_path: Path, market: pd.DataFrame) -> Path:
    """The made-up market plus the Fed funds rate (5%), so leverage can be financed."""
    folder = write_csv_folder(tmp_path / "market", market)
    days = pd.date_range(market.index[0], market.index[-1], freq="D")  # FRED: every day
    lines = ["observation_date,DFF", *(f"{day:%Y-%m-%d},5.00" for day in days)]
    (folder / "DFF.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def run_id(client) -> str:
    created = client.post("/backtest", json=FIVE_STRATEGIES)
    assert created.status_code == 201, created.text
    return created.headers["X-Backtest-Id"]


def test_the_report_shows_every_strategy_and_links_every_figure(client, run_id):
    page = client.get(f"/backtest/{run_id}/report")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    stored = client.get(f"/backtest/{run_id}").json()["result"]
    rows = re.findall(r"<tr><td>([^<]+)</td>", html)
    assert rows == [s["name"].replace("&", "&amp;") for s in stored["strategies"]]
    for name in FIGURES:
        assert f"src='/backtest/{run_id}/figures/{name}.png'" in html
        assert f"href='/backtest/{run_id}/figures/{name}.svg'" in html
    # Period and conventions as stored; nothing loaded from elsewhere.
    assert f"Period: {stored['period']['start']} .. {stored['period']['end']}" in html
    assert "http://" not in html and "https://" not in html
    assert "data changed" not in html  # replayed on the same data: the same metrics


def test_every_figure_comes_as_png_and_svg(client, run_id):
    for name in FIGURES:
        png = client.get(f"/backtest/{run_id}/figures/{name}.png")
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.content[:8] == PNG_SIGNATURE
        svg = client.get(f"/backtest/{run_id}/figures/{name}.svg")
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert b"<svg" in svg.content[:2000]
    # The equity legend carries each strategy's metrics (text is kept in the SVG).
    equity = client.get(f"/backtest/{run_id}/figures/equity.svg").text
    assert "Sharpe" in equity and "Trend only" in equity
    # Every strategy that has regimes gets its panel in the regime figure.
    regimes = client.get(f"/backtest/{run_id}/figures/regimes.svg").text
    assert all(name in regimes for name in REGIME_STRATEGIES)


def test_a_report_is_titled_by_its_request_else_by_its_strategies(client, run_id):
    html = client.get(f"/backtest/{run_id}/report").text
    built = "Buy &amp; hold vs Rules (published) vs Trend only and 2 more"
    assert f"<title>{built}</title>" in html and f"<h1>{built}</h1>" in html
    assert f"Backtest run {run_id}" in html
    titled = client.post("/backtest", json={**FIVE_STRATEGIES, "title": "Filters, 2011 on"})
    assert titled.status_code == 201, titled.text
    page = client.get(f"/backtest/{titled.headers['X-Backtest-Id']}/report").text
    assert "<h1>Filters, 2011 on</h1>" in page
    too_long = client.post("/backtest", json={**FIVE_STRATEGIES, "title": "x" * 201})
    assert too_long.status_code == 422
    assert too_long.json()["errors"][0]["field"] == "body.title"


def test_a_run_stored_before_leverage_was_counted_apart_still_has_its_report(
    client, run_id, settings
):
    """Older stored results have no ``leveraged`` share and a request without a title:
    the report replays them, titled by their strategies, and warns of nothing."""
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as connection:
            stored = connection.execute(
                select(backtest_runs.c.request, backtest_runs.c.result).where(
                    backtest_runs.c.id == run_id
                )
            ).one()
            result, request = dict(stored.result), dict(stored.request)
            for strategy in result["strategies"]:
                del strategy["metrics"]["time_invested"]["leveraged"]
            del request["title"]
            connection.execute(
                update(backtest_runs)
                .where(backtest_runs.c.id == run_id)
                .values(result=result, request=request)
            )
    finally:
        engine.dispose()
    page = client.get(f"/backtest/{run_id}/report")
    assert page.status_code == 200, page.text
    assert "<h1>Buy &amp; hold vs Rules (published) vs Trend only and 2 more</h1>" in page.text
    assert "data changed" not in page.text
    assert client.get(f"/backtest/{run_id}").status_code == 200


def _report_row(html: str, name: str) -> list[str]:
    row = re.search(rf"<tr><td>{re.escape(name)}</td>(.*?)</tr>", html)
    assert row is not None, name
    return re.findall(r"<td>([^<]*)</td>", row.group(1))


def test_leverage_is_financed_unless_asked_and_an_unfinanced_row_says_so(client):
    body = {"strategies": [{"kind": "buy_and_hold"}, LEVERED], "start": "2011-06-01"}
    financed = client.post("/backtest", json=body)
    unfinanced = client.post("/backtest", json={**body, "financing": False})
    assert financed.status_code == unfinanced.status_code == 201, financed.text
    results = [answer.json() for answer in (financed, unfinanced)]
    assert [r["conventions"]["financing"] for r in results] == [True, False]
    levered = [r["strategies"][1]["metrics"] for r in results]
    assert levered[0]["time_invested"]["leveraged"] > 0.5
    assert levered[0]["cumulative_return"] < levered[1]["cumulative_return"]  # it paid
    pages = [
        client.get(f"/backtest/{answer.headers['X-Backtest-Id']}/report").text
        for answer in (financed, unfinanced)
    ]
    financed_row, unfinanced_row = (_report_row(page, "Rules levered") for page in pages)
    assert "cash rate" in financed_row and "NONE: financing off" in unfinanced_row
    assert any("% lev" in cell for cell in unfinanced_row)
    assert "-" in _report_row(pages[1], "Buy &amp; hold")  # nothing borrowed, nothing owed
    assert "financing of exposure above 1x OFF" in pages[1]


def test_unknown_runs_figures_and_formats_are_refused(client, run_id):
    missing = client.get("/backtest/00000000-0000-0000-0000-000000000000/report")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert client.get(f"/backtest/{run_id}/figures/nonsense.png").status_code == 422
    assert client.get(f"/backtest/{run_id}/figures/equity.gif").status_code == 422

"""Tear sheets over HTTP: GET /backtest/{id}/report and its figures as PNG and SVG."""

from __future__ import annotations

import re

import pytest

from backtest.plots import FIGURES

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


def test_unknown_runs_figures_and_formats_are_refused(client, run_id):
    missing = client.get("/backtest/00000000-0000-0000-0000-000000000000/report")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert client.get(f"/backtest/{run_id}/figures/nonsense.png").status_code == 422
    assert client.get(f"/backtest/{run_id}/figures/equity.gif").status_code == 422

"""The dashboard's routes over HTTP (the page's behaviour: test_dashboard_browser.py)."""

from __future__ import annotations

import json
import re

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_page_and_its_assets_are_served_by_the_app(client):
    assert client.get("/", follow_redirects=False).headers["location"] == "/dashboard"
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    sides = re.search(r'<script id="filter-sides"[^>]*>(.*?)</script>', page.text)
    assert sides is not None
    assert json.loads(sides.group(1)) == {
        "trend": "below",
        "volatility": "above",
        "credit": "below",
    }
    assert 'data-policy="rules"' in page.text
    for asset in re.findall(r"""(?:src|href)=["'](/dashboard/static/[^"']+)["']""", page.text):
        assert client.get(asset).status_code == 200, asset
    assert "http://" not in page.text and "https://" not in page.text


def test_the_history_figure_over_a_span(client):
    png = client.get("/dashboard/history.png?start=2011-06-01&end=2012-04-05")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == PNG_SIGNATURE
    svg = client.get("/dashboard/history.svg")
    assert svg.status_code == 200 and b"<svg" in svg.content[:2000]
    assert b"2012-04-05" in svg.content  # the default span ends on the last stored day


def test_a_span_outside_the_data_is_a_named_problem(client):
    before = client.get("/dashboard/history.png?end=1990-01-01")
    assert before.status_code == 422 and "query.end" in before.json()["detail"]
    after = client.get("/dashboard/history.png?start=2030-01-01")
    assert after.status_code == 422 and "query.start" in after.json()["detail"]
    reversed_span = client.get("/dashboard/history.png?start=2012-03-01&end=2012-01-01")
    assert reversed_span.status_code == 422


def test_the_span_drawn_comes_back_with_the_figure(client):
    """The page fills its date inputs from these headers: a start before the data is
    drawn from the first stored day."""
    default = client.get("/dashboard/history.png")
    first_day = default.headers["x-history-start"]
    assert default.headers["x-history-end"] == "2012-04-05"
    clipped = client.get("/dashboard/history.png?start=2001-06-01&end=2012-01-03")
    assert clipped.status_code == 200
    assert (clipped.headers["x-history-start"], clipped.headers["x-history-end"]) == (
        first_day,
        "2012-01-03",
    )


def test_the_figure_follows_the_market_and_rule_set_chosen(client):
    platform = client.get("/dashboard/history.svg?market=SPY&rule_set=platform")
    assert platform.status_code == 200
    assert b"Rules (platform)" in platform.content
    assert b"Rules (published)" not in platform.content
    published = client.get("/dashboard/history.svg?market=SPY")
    assert b"Rules (published)" in published.content
    # A rule set of another market is refused, naming the parameter.
    other = client.get("/dashboard/history.png?market=SPY&rule_set=qqq-trend-rv-credit")
    assert other.status_code == 422 and "query.rule_set" in other.json()["detail"]
    unknown = client.get("/dashboard/history.png?market=NOPE")
    assert unknown.status_code == 422 and "market" in unknown.json()["detail"]

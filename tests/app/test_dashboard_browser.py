"""The dashboard and the docs in a real headless Chromium (Selenium, the system browser).

The app runs in a uvicorn server on a free local port over the made-up market of
tests/app/conftest.py (SQLite). The test loads the dashboard, reads the regime, runs
the daily cycle on one more day (the real update path) and waits for the page to show
the new publication from the event stream, then runs a backtest through the form. The
docs pages must render from the app's own assets (no internet here or in CI).

Screenshots go to ``test-artifacts/`` (or DEEPREGIME_TEST_ARTIFACTS); the folder is
printed. Needs ``chromium`` and ``chromium-driver`` (Debian packages; .ci/run installs
them). Without them the test skips locally and fails where DEEPREGIME_REQUIRE_BROWSER=1
(set by .ci/run).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pandas as pd
import pytest
import uvicorn

from app.deps import get_clock
from app.main import create_app
from app.settings import Settings
from operations.models import load_active_model
from store.db import make_engine
from store.migrations import upgrade
from tests.app.conftest import (
    LAST_DAY,
    MONDAY_BEFORE_OPEN,
    load_market,
    market_days,
    market_frame,
    write_csv_folder,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("DEEPREGIME_TEST_ARTIFACTS", ROOT / "test-artifacts"))
REQUIRE_BROWSER = os.environ.get("DEEPREGIME_REQUIRE_BROWSER") == "1"
NEXT_DAY = dt.date(2012, 4, 9)  # the session after LAST_DAY (Good Friday was closed)
WAIT_S = 30.0

pytestmark = pytest.mark.slow


def _browser_missing() -> str | None:
    for tool in ("chromium", "chromedriver"):
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the dev extra)"
    return None


@pytest.fixture
def browser() -> Iterator[object]:
    reason = _browser_missing()
    if reason:
        if REQUIRE_BROWSER:
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--window-size=1400,1200",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(
        options=options, service=Service(shutil.which("chromedriver") or "chromedriver")
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots in {ARTIFACTS}")
    try:
        yield driver
    finally:
        driver.quit()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def market_folder(tmp_path: Path) -> Path:
    return write_csv_folder(tmp_path / "market", market_frame(market_days()))


@contextmanager
def _serving(settings: Settings, now: dt.datetime) -> Iterator[str]:
    """The app on a free port with its clock fixed at ``now``; yields its base URL."""
    app = create_app(settings)
    app.dependency_overrides[get_clock] = lambda: lambda: now
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=3
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def served(tmp_path: Path, market_folder: Path) -> Iterator[tuple[str, Settings]]:
    """The app over the made-up market; yields its base URL and settings."""
    url = f"sqlite:///{tmp_path / 'dashboard.db'}"
    upgrade(url)
    load_market(url, market_folder)
    settings = Settings(
        database_url=url,
        model_dir=tmp_path / "no-models",
        data_source="csv",
        data_path=market_folder,
        publication_check_s=0.2,
        stream_poll_s=0.2,
        _env_file=None,
    )
    with _serving(settings, MONDAY_BEFORE_OPEN) as base:
        yield base, settings


def _wait_for(check: Callable[[], object], what: str, timeout: float = WAIT_S) -> object:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - the page is still changing
            last_error = error
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error!r})")


def _text(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, element_id).text)


def _image_loaded(driver, element_id: str) -> bool:
    return bool(
        driver.execute_script(
            "const img = document.getElementById(arguments[0]);"
            "return img !== null && img.complete && img.naturalWidth > 0;",
            element_id,
        )
    )


def _publish_next_day(settings: Settings, folder: Path) -> None:
    """One more session of calm markets through the daily cycle: back to risk-on."""
    frame = market_frame(market_days())
    calm = frame.iloc[-1].copy()
    calm["SPY"] = frame["SPY"].iloc[-1] * 1.001
    calm["^VIX"], calm["^VIX3M"] = 12.0, 15.0
    calm["HYG"], calm["IEF"] = 50.5, 100.0
    frame.loc[pd.Timestamp(NEXT_DAY)] = calm
    write_csv_folder(folder, frame)
    load_market(settings.database_url, folder, today=NEXT_DAY)


def _select(driver, element_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, element_id)).select_by_value(value)


def _filter_row(driver, name: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, f"#filters tr[data-filter='{name}']").text)


def _history_span(driver) -> tuple[str, str, str, str]:
    """The date inputs, and the span of the figure on screen (its data attributes)."""
    return tuple(  # type: ignore[return-value]
        driver.execute_script(
            "const form = document.getElementById('history-form');"
            "const img = document.getElementById('history-figure');"
            "return [form.start.value, form.end.value, img.dataset.start || '',"
            " img.dataset.end || ''];"
        )
    )


# Each filter row against the header row (one line, nowrap), and whether the filter
# table fits its card without scrolling.
FILTER_LAYOUT = """
const header = document.querySelector('#filters thead tr').getBoundingClientRect().height;
const wrapper = document.querySelector('#filters').parentElement;
return {
  header: header,
  rows: [...document.querySelectorAll('#filters tbody tr')].map(
    (row) => [row.dataset.filter, row.getBoundingClientRect().height]),
  fits: wrapper.scrollWidth <= wrapper.clientWidth,
};
"""


def _assert_one_line_per_filter(driver) -> None:
    """At 1400 px every filter reads in one line, and the table fits its card."""
    layout = driver.execute_script(FILTER_LAYOUT)
    assert layout["fits"], layout
    for name, height in layout["rows"]:
        assert height < 1.4 * layout["header"], (name, height, layout["header"])


# ISO moment "2026-12-04T16:35:11.558035+00:00": the card shows it to the second, local
# and UTC.
PUBLICATION = re.compile(r"#(\d+), (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+) \((\d\d:\d\d:\d\d) UTC\)")
NEW_YORK = ZoneInfo("America/New_York")


def _publication_shown(driver, base: str, query: str = "") -> None:
    today = httpx.get(f"{base}/regime/today{query}").json()
    shown = PUBLICATION.fullmatch(_text(driver, "publication"))
    assert shown is not None, _text(driver, "publication")
    assert int(shown.group(1)) == today["publication_id"]
    published = dt.datetime.fromisoformat(today["published_at"])
    assert shown.group(2) == f"{published.astimezone(NEW_YORK):%Y-%m-%d %H:%M:%S %Z}"
    assert shown.group(3) == f"{published.astimezone(dt.UTC):%H:%M:%S}"


# ``served`` before ``browser``: the browser closes (and with it the event stream) before
# the server stops.
def test_dashboard_shows_the_regime_follows_publications_and_runs_a_backtest(
    served, browser, market_folder
):
    from selenium.webdriver.common.by import By

    base, settings = served
    driver = browser
    # A trader in New York: the publication time reads in local time and in UTC.
    driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "America/New_York"})
    driver.get(f"{base}/dashboard")

    # Today: the made-up market ends risk-off (volatility and credit firing, trend clear).
    _wait_for(lambda: _text(driver, "regime") == "risk-off", "the regime")
    assert _text(driver, "exposure") == "0%"
    assert _text(driver, "as-of") == LAST_DAY.isoformat()
    assert _text(driver, "market") == "SPY"
    rows = driver.find_elements(By.CSS_SELECTOR, "#filters tbody tr")
    states = {row.get_attribute("data-filter"): row for row in rows}
    assert set(states) == {"trend", "volatility", "credit"}
    assert "firing" in states["volatility"].text and "firing" in states["credit"].text
    # VIX / VIX3M is 1.1 against 1.0: it clears after a fall of 0.1.
    volatility_distance = states["volatility"].find_element(By.CLASS_NAME, "distance").text
    assert volatility_distance == "clears after a fall of 0.100"
    assert "fires after a fall of" in states["trend"].find_element(By.CLASS_NAME, "distance").text
    assert "model unavailable" in _text(driver, "model")
    assert not driver.find_element(By.ID, "banner-stale").is_displayed()
    _publication_shown(driver, base)
    _assert_one_line_per_filter(driver)
    # No model: readiness is degraded, and the page says so.
    _wait_for(lambda: "Degraded" in _text(driver, "banner-degraded"), "the degraded banner")
    _wait_for(lambda: _image_loaded(driver, "history-figure"), "the history figure")
    # The date inputs hold the span drawn: all the stored days (under three years).
    first_day, last_day = market_days()[0].date().isoformat(), LAST_DAY.isoformat()
    _wait_for(
        lambda: _history_span(driver) == (first_day, last_day, first_day, last_day),
        "the span drawn in the date inputs",
    )
    # The regime statistics: one day of risk-off after months of risk-on.
    _wait_for(
        lambda: (
            "current spell: risk-off since 2012-04-05, 1 days" in _text(driver, "stats-summary")
        ),
        "the regime statistics",
    )
    stats = httpx.get(f"{base}/regimes/stats").json()
    on_days = stats["regimes"]["risk-on"]["days"]
    on_row = driver.find_element(By.CSS_SELECTOR, "#stats-regimes tr[data-regime='risk-on']")
    assert on_row.text.split()[:4] == ["risk-on", str(on_days), "(100%)", "1"]
    off_row = driver.find_element(By.CSS_SELECTOR, "#stats-regimes tr[data-regime='risk-off']")
    assert off_row.text.split() == ["risk-off", "1", "(0%)", "1", "1", "1", "1"] + ["n/a"] * 3
    # From risk-on: every day but the last stayed, the last went risk-off.
    to_off = driver.find_element(By.CSS_SELECTOR, "#stats-transitions tr[data-from='risk-on']")
    stayed = f"{100 * (on_days - 1) / on_days:.1f}%"
    assert to_off.text.split() == ["risk-on", stayed, "0.0%", f"{100 / on_days:.1f}%"]
    _wait_for(lambda: _text(driver, "live") == "live", "the event stream")
    driver.save_screenshot(str(ARTIFACTS / "dashboard-1-loaded.png"))
    first_publication = _text(driver, "publication")

    # A new publication through the real daily cycle shows without reloading the page:
    # the card, the history drawn to the new day, and the statistics.
    _publish_next_day(settings, market_folder)
    _wait_for(lambda: _text(driver, "regime") == "risk-on", "the new publication", timeout=20)
    assert _text(driver, "as-of") == NEXT_DAY.isoformat()
    assert _text(driver, "exposure") == "100%"
    assert _text(driver, "publication") != first_publication
    _wait_for(
        lambda: _history_span(driver) == (first_day, NEXT_DAY.isoformat()) * 2,
        "the history drawn to the new day",
    )
    _wait_for(lambda: _image_loaded(driver, "history-figure"), "the redrawn history figure")
    _wait_for(
        lambda: "current spell: risk-on since 2012-04-09, 1 days" in _text(driver, "stats-summary"),
        "the statistics of the new day",
    )
    _publication_shown(driver, base)
    driver.save_screenshot(str(ARTIFACTS / "dashboard-2-updated.png"))

    # A span of history redraws the figure, and a start before the data is drawn from
    # the first stored day (the inputs say so).
    driver.execute_script(
        "const form = document.getElementById('history-form');"
        "form.start.value = '2001-06-01'; form.end.value = '2012-04-05';"
    )
    driver.find_element(By.CSS_SELECTOR, "#history-form button").click()
    _wait_for(
        lambda: _history_span(driver) == (first_day, last_day) * 2,
        "the span drawn in the date inputs",
    )
    _wait_for(lambda: _image_loaded(driver, "history-figure"), "the redrawn history figure")

    # The rule-set selector switches the answer: the platform preset's credit filter
    # reads a 100-day z-score against -2.
    _select(driver, "rule-set-select", "platform")
    _wait_for(lambda: _text(driver, "rule-set") == "platform", "the platform rule set")
    _wait_for(lambda: "< -2.00" in _filter_row(driver, "credit"), "the platform threshold")
    assert "100d" in _filter_row(driver, "credit")
    _assert_one_line_per_filter(driver)
    _publication_shown(driver, base, "?market=SPY&rule_set=platform")
    # The market selector: QQQ's own rule set. No QQQ closes here, so its filters on
    # QQQ have no input, and credit (clear since the calm day) alone votes: risk-on.
    _select(driver, "market-select", "QQQ")
    _wait_for(lambda: _text(driver, "market") == "QQQ", "the QQQ answer")
    _wait_for(lambda: "no input" in _filter_row(driver, "trend"), "QQQ's filters")
    assert "clear" in _filter_row(driver, "credit")
    assert _text(driver, "regime") == "risk-on"
    assert _text(driver, "rule-set") == "qqq-trend-rv-credit"
    assert "no input" in _filter_row(driver, "trend")
    assert "QQQ realised vol 20d / 250d" in _filter_row(driver, "volatility")
    _assert_one_line_per_filter(driver)
    _wait_for(lambda: "no QQQ" in _text(driver, "history-status"), "the history's refusal")
    assert not driver.find_element(By.ID, "history-figure").is_displayed()
    driver.save_screenshot(str(ARTIFACTS / "dashboard-3-qqq.png"))
    _select(driver, "market-select", "SPY")
    _wait_for(lambda: _text(driver, "regime") == "risk-on", "back to SPY")
    assert "< -1.00" in _filter_row(driver, "credit")

    # The backtest form posts to /backtest and shows the metrics and the equity figure.
    driver.find_element(By.CSS_SELECTOR, "input[value='trend']").click()
    driver.find_element(By.ID, "backtest-run").click()
    _wait_for(
        lambda: len(driver.find_elements(By.CSS_SELECTOR, "#backtest-metrics tbody tr")) == 3,
        "the backtest result",
    )
    names = [
        row.find_element(By.TAG_NAME, "td").text
        for row in driver.find_elements(By.CSS_SELECTOR, "#backtest-metrics tbody tr")
    ]
    assert names == ["Buy & hold", "Rules (published)", "Trend only"]
    report = driver.find_element(By.ID, "backtest-report").get_attribute("href")
    assert "/backtest/" in report and report.endswith("/report")
    _wait_for(lambda: _image_loaded(driver, "backtest-equity"), "the equity figure")
    driver.execute_script("document.getElementById('backtest').scrollIntoView();")
    driver.save_screenshot(str(ARTIFACTS / "dashboard-4-backtest.png"))

    # Its tear sheet renders with every figure.
    driver.get(report)
    _wait_for(
        lambda: len(driver.find_elements(By.CSS_SELECTOR, "#metrics tbody tr")) == 3,
        "the tear sheet",
    )
    for name in ("equity", "drawdowns", "regimes", "yearly", "rolling_sharpe"):
        image = driver.find_element(By.CSS_SELECTOR, f"#figure-{name} img")
        driver.execute_script("arguments[0].scrollIntoView();", image)
        _wait_for(
            lambda image=image: driver.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0;", image
            ),
            f"the {name} figure",
        )
    driver.execute_script("window.scrollTo(0, 0);")
    driver.save_screenshot(str(ARTIFACTS / "tear-sheet.png"))


def test_a_phone_wide_page_does_not_scroll_sideways(served, browser):
    """390 px (a phone): everything stacks in one column, nothing wider than the screen."""
    base, _settings = served
    driver = browser
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
    )
    driver.get(f"{base}/dashboard")
    _wait_for(lambda: _text(driver, "regime") == "risk-off", "the regime")
    _wait_for(lambda: _image_loaded(driver, "history-figure"), "the history figure")
    _wait_for(lambda: "current spell" in _text(driver, "stats-summary"), "the statistics")
    widths = driver.execute_script(
        "return [window.innerWidth, document.documentElement.scrollWidth,"
        " document.body.scrollWidth];"
    )
    assert widths[0] == 390, widths
    assert max(widths[1:]) <= 390, widths
    driver.save_screenshot(str(ARTIFACTS / "dashboard-390.png"))


def test_docs_render_from_the_apps_own_assets(served, browser):
    """Swagger UI and ReDoc draw the API without internet (none here, none in CI)."""
    from selenium.webdriver.common.by import By

    base, _settings = served
    driver = browser
    driver.get(f"{base}/docs")
    title = _wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"), "Swagger UI"
    )
    assert "deepregime" in title[0].text
    _wait_for(
        lambda: driver.find_elements(
            By.CSS_SELECTOR, "#operations-backtest-post_backtest_backtest_post"
        ),
        "the POST /backtest operation",
    )
    driver.save_screenshot(str(ARTIFACTS / "docs-swagger.png"))

    driver.get(f"{base}/redoc")
    # ReDoc draws the API's title as its heading, and one section per operation.
    _wait_for(
        lambda: any(
            h.text.startswith("deepregime") for h in driver.find_elements(By.TAG_NAME, "h1")
        ),
        "ReDoc's title",
    )
    _wait_for(
        lambda: (
            "Run the strategies on the stored history"
            in driver.find_element(By.TAG_NAME, "body").text
        ),
        "the POST /backtest section in ReDoc",
    )
    driver.save_screenshot(str(ARTIFACTS / "docs-redoc.png"))


# The shipped data ends on 2024-12-31; the screenshot is taken the next morning.
SHIPPED_LAST_DAY = dt.date(2024, 12, 31)
SHIPPED_MORNING = dt.datetime(2025, 1, 2, 13, 0, tzinfo=dt.UTC)


@pytest.mark.realdata
def test_the_readme_screenshot_is_drawn_from_the_shipped_data(tmp_path, market_dir, browser):
    """docs/dashboard.png: the shipped market folder through the daily cycle with the
    shipped model, at 1400 px. Written on every run, so it cannot go stale (about two
    minutes, most of it the model's outputs over the whole history)."""
    url = f"sqlite:///{tmp_path / 'shipped.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        model = load_active_model(engine, ROOT / "models")
    finally:
        engine.dispose()
    assert model.loaded, model.reason
    load_market(url, market_dir, today=SHIPPED_LAST_DAY, model=model)
    settings = Settings(
        database_url=url,
        model_dir=ROOT / "models",
        data_source="csv",
        data_path=market_dir,
        _env_file=None,
    )
    from selenium.webdriver.common.by import By

    driver = browser
    with _serving(settings, SHIPPED_MORNING) as base:
        driver.get(f"{base}/dashboard")
        # What README tells a user to wait for: the page marks itself drawn.
        _wait_for(
            lambda: driver.find_elements(By.CSS_SELECTOR, "body[data-ready]"), "data-ready", 60
        )
        assert _text(driver, "as-of") == SHIPPED_LAST_DAY.isoformat()
        assert _image_loaded(driver, "history-figure")
        assert "current spell" in _text(driver, "stats-summary")
        _assert_one_line_per_filter(driver)
        assert f"version {model.version}" in _text(driver, "model")
        driver.save_screenshot(str(ARTIFACTS / "dashboard-shipped.png"))
        driver.save_screenshot(str(ROOT / "docs" / "dashboard.png"))

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
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import uvicorn

from app.deps import get_clock
from app.main import create_app
from app.settings import Settings
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


@pytest.fixture
def served(tmp_path: Path, market_folder: Path) -> Iterator[tuple[str, Settings]]:
    """The app on a free port over the made-up market; yields its base URL and settings."""
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
    app = create_app(settings)
    app.dependency_overrides[get_clock] = lambda: lambda: MONDAY_BEFORE_OPEN
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
        yield f"http://127.0.0.1:{port}", settings
    finally:
        server.should_exit = True
        thread.join(timeout=15)


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


# ``served`` before ``browser``: the browser closes (and with it the event stream) before
# the server stops.
def test_dashboard_shows_the_regime_follows_publications_and_runs_a_backtest(
    served, browser, market_folder
):
    from selenium.webdriver.common.by import By

    base, settings = served
    driver = browser
    driver.get(f"{base}/dashboard")

    # Today: the made-up market ends risk-off (volatility and credit firing, trend clear).
    _wait_for(lambda: _text(driver, "regime") == "risk-off", "the regime")
    assert _text(driver, "exposure") == "0%"
    assert _text(driver, "as-of") == LAST_DAY.isoformat()
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
    # No model: readiness is degraded, and the page says so.
    _wait_for(lambda: "Degraded" in _text(driver, "banner-degraded"), "the degraded banner")
    _wait_for(lambda: _image_loaded(driver, "history-figure"), "the history figure")
    _wait_for(lambda: _text(driver, "live") == "live", "the event stream")
    driver.save_screenshot(str(ARTIFACTS / "dashboard-1-loaded.png"))
    first_publication = _text(driver, "publication")

    # A new publication through the real daily cycle shows without reloading the page.
    _publish_next_day(settings, market_folder)
    _wait_for(lambda: _text(driver, "regime") == "risk-on", "the new publication", timeout=20)
    assert _text(driver, "as-of") == NEXT_DAY.isoformat()
    assert _text(driver, "exposure") == "100%"
    assert _text(driver, "publication") != first_publication
    driver.save_screenshot(str(ARTIFACTS / "dashboard-2-updated.png"))

    # A span of history redraws the figure.
    driver.execute_script(
        "const form = document.getElementById('history-form');"
        "form.start.value = '2011-06-01'; form.end.value = '2012-04-05';"
    )
    driver.find_element(By.CSS_SELECTOR, "#history-form button").click()
    _wait_for(
        lambda: (
            "start=2011-06-01" in driver.find_element(By.ID, "history-figure").get_attribute("src")
        ),
        "the span in the figure's address",
    )
    _wait_for(lambda: _image_loaded(driver, "history-figure"), "the redrawn history figure")

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
    driver.save_screenshot(str(ARTIFACTS / "dashboard-3-backtest.png"))

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

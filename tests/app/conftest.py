"""A small made-up market whose regimes are known by hand, loaded through the real pipeline.

300 business days ending Thursday 2012-04-05 (the NYSE was closed on Good
Friday 2012-04-06). Built so each filter's answer is obvious:

- SPY grows 0.1% a day: close / SMA200 > 1, trend always clear.
- VIX is 12, then 20 over the last 10 days; VIX3M = VIX / 0.8 (ratio 0.8,
  clear) except on the last day, where VIX / VIX3M = 1.1 (firing).
- HYG alternates 50.5 / 49.5 against IEF at 100 (credit z-score about +-0.998,
  clear), then drops to 40 on the last day (z far below -1, firing).

So the last day has 2 votes (risk-off, 0%) and every earlier day with all three
filters has 0 votes (risk-on, 100%).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.deps import get_clock
from app.main import create_app
from app.settings import Settings
from operations.models import ModelSlot, load_active_model
from operations.update import UpdateReport, run_update
from store.db import make_engine
from tests.store.days import xnys_days

LAST_DAY = dt.date(2012, 4, 5)
N_DAYS = 300
API_KEY = "test-admin-key-0123456789"
# Monday morning after Good Friday: the last closed session is still 2012-04-05.
MONDAY_BEFORE_OPEN = dt.datetime(2012, 4, 9, 13, 0, tzinfo=dt.UTC)


def market_days(end: dt.date = LAST_DAY, periods: int = N_DAYS) -> pd.DatetimeIndex:
    return xnys_days(end=str(end), periods=periods)  # the ingest keeps to NYSE sessions


def market_frame(days: pd.DatetimeIndex) -> pd.DataFrame:
    """Closes per symbol (columns SPY, ^VIX, ^VIX3M, HYG, IEF) on ``days``."""
    n = len(days)
    i = np.arange(n)
    vix = np.where(i >= n - 10, 20.0, 12.0)
    vix3m = vix / 0.8
    vix3m[-1] = 20.0 / 1.1
    hyg = 50.0 + 0.5 * (-1.0) ** i
    hyg[-1] = 40.0
    return pd.DataFrame(
        {
            "SPY": 100.0 * 1.001**i,
            "^VIX": vix,
            "^VIX3M": vix3m,
            "HYG": hyg,
            "IEF": np.full(n, 100.0),
        },
        index=days,
    )


def write_csv_folder(folder: Path, frame: pd.DataFrame) -> Path:
    """The frame as the files the ingest reads: yfinance exports and Cboe histories."""
    folder.mkdir(parents=True, exist_ok=True)
    for symbol in ("SPY", "HYG", "IEF"):
        lines = [
            "Price,Price,Close,High,Low,Open,Volume",
            f"Ticker,{symbol},{symbol},{symbol},{symbol},{symbol},{symbol}",
            "Date,,,,,,",
        ]
        for day, value in frame[symbol].items():
            lines.append(
                f"{day:%Y-%m-%d} 00:00:00,{value!r},{value!r},{value!r},{value!r},{value!r},1000"
            )
        (folder / f"{symbol}.csv").write_text("\n".join(lines) + "\n")
    for symbol, name in (("^VIX", "VIX"), ("^VIX3M", "VIX3M")):
        lines = ["DATE,OPEN,HIGH,LOW,CLOSE"]
        for day, value in frame[symbol].items():
            lines.append(f"{day:%m/%d/%Y},{value!r},{value!r},{value!r},{value!r}")
        (folder / f"{name}_History.csv").write_text("\n".join(lines) + "\n")
    return folder


def load_market(
    database_url: str, folder: Path, today: dt.date = LAST_DAY, model: ModelSlot | None = None
) -> UpdateReport:
    """Run the daily cycle on the folder (ingest, features, regimes, publication)."""
    engine = make_engine(database_url)
    settings = Settings(
        database_url=database_url,
        data_source="csv",
        data_path=folder,
        model_dir=folder / "no-models",
        _env_file=None,
    )
    moment = dt.datetime.combine(today, dt.time(23, 0), tzinfo=dt.UTC)
    try:
        report = run_update(
            engine,
            settings=settings,
            model=model or load_active_model(engine, settings.model_dir),
            trigger="cli",
            clock=lambda: moment,
        )
        assert not report.rejected, report.rejected
        return report
    finally:
        engine.dispose()


@pytest.fixture
def market() -> pd.DataFrame:
    return market_frame(market_days())


@pytest.fixture
def csv_folder(tmp_path: Path, market: pd.DataFrame) -> Path:
    return write_csv_folder(tmp_path / "market", market)


@pytest.fixture
def populated_url(database_url: str, csv_folder: Path) -> str:
    load_market(database_url, csv_folder)
    return database_url


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    return folder


@pytest.fixture
def settings(populated_url: str, models_dir: Path, csv_folder: Path) -> Settings:
    return Settings(
        database_url=populated_url,
        model_dir=models_dir,
        data_source="csv",
        data_path=csv_folder,
        api_key=API_KEY,
        _env_file=None,
    )


@contextmanager
def running(
    settings: Settings, now: dt.datetime = MONDAY_BEFORE_OPEN, **client_options: object
) -> Iterator[TestClient]:
    """A started app (lifespan run) on ``settings`` with the clock fixed at ``now``."""
    app = create_app(settings)
    app.dependency_overrides[get_clock] = lambda: lambda: now
    with TestClient(app, **client_options) as client:  # type: ignore[arg-type]
        yield client


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with running(settings) as client:
        yield client


def admin(key: str = API_KEY) -> dict[str, str]:
    return {"X-API-Key": key}

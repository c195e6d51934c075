"""Refreshes racing each other, and an ingest racing readers.

- Two admin refreshes at once: each answers 200 or 409 (never 5xx), and the
  tables end exactly as one refresh leaves them: no duplicate, no missing day.
- Readers polling /regimes while new days are ingested and recomputed: every
  page they get is complete (each row's votes equal its firing filters, its
  exposure is its regime's) and the history only grows.
"""

from __future__ import annotations

import datetime as dt
import threading

import pandas as pd
import pytest
from sqlalchemy import func, select

from core.rules import PUBLISHED_FRAMEWORK
from operations import rule_sets
from store.db import make_engine
from store.ingest import ingest_csv_folder
from store.pipeline import refresh_features, refresh_regimes
from store.tables import features, prices, regimes
from tests.app.conftest import (
    LAST_DAY,
    admin,
    market_days,
    market_frame,
    running,
    write_csv_folder,
)
from tests.store.days import xnys_days

pytestmark = pytest.mark.slow
AFTER_THE_NEW_DAYS = dt.datetime(2012, 6, 1, 13, 0, tzinfo=dt.UTC)
EXPOSURE = {"risk-on": 1.0, "caution": 0.5, "risk-off": 0.0}


def counts(url: str) -> dict[str, tuple[int, int]]:
    """Rows and distinct keys per table."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table.name: (
                    connection.execute(select(func.count()).select_from(table)).scalar_one(),
                    connection.execute(
                        select(func.count()).select_from(
                            select(*table.primary_key.columns).distinct().subquery()
                        )
                    ).scalar_one(),
                )
                for table in (prices, features, regimes)
            }
    finally:
        engine.dispose()


def longer_market(extra_days: int) -> pd.DataFrame:
    later = xnys_days(str(LAST_DAY + dt.timedelta(days=1)), periods=extra_days)
    return market_frame(market_days().append(later))


def test_two_refreshes_racing_leave_the_tables_as_one_does(settings, csv_folder):
    write_csv_folder(csv_folder, longer_market(10))
    statuses: list[int] = []
    with running(settings, now=AFTER_THE_NEW_DAYS) as client:

        def refresh() -> None:
            statuses.append(client.post("/admin/refresh", headers=admin()).status_code)

        threads = [threading.Thread(target=refresh) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert sorted(statuses) in ([200, 200], [200, 409])
    tables = counts(settings.database_url)
    # 310 SPY days; 5 symbols with 310 rows each; every key once, the regimes of the
    # preset and of each rule set published by name (operations.rule_sets).
    rule_set_count = len(rule_sets.built_in())
    regimes = 310 * rule_set_count
    assert tables == {
        "prices": (1550, 1550),
        "features": (310, 310),
        "regimes": (regimes, regimes),
    }


def test_readers_see_complete_days_while_new_days_arrive(settings, csv_folder):
    engine = make_engine(settings.database_url)
    stop = threading.Event()
    problems: list[str] = []
    seen_counts: list[int] = []

    def writer() -> None:
        try:
            for extra in range(5, 45, 5):
                write_csv_folder(csv_folder, longer_market(extra))
                ingest_csv_folder(engine, csv_folder, today=pd.Timestamp("2030-01-01").date())
                with engine.begin() as connection:
                    refresh_features(connection)
                    refresh_regimes(connection, PUBLISHED_FRAMEWORK)
        finally:
            stop.set()

    with running(settings) as client:
        thread = threading.Thread(target=writer)
        thread.start()
        while not stop.is_set():
            response = client.get("/regimes", params={"start": "2011-06-01", "limit": 5000})
            if response.status_code != 200:
                problems.append(f"status {response.status_code}: {response.text[:200]}")
                continue
            items = response.json()["items"]
            seen_counts.append(len(items))
            for item in items:
                firing = sum(
                    item[f"{name}_state"] == "firing" for name in ("trend", "volatility", "credit")
                )
                if item["votes"] != firing or EXPOSURE[item["regime"]] != item["exposure"]:
                    problems.append(f"incomplete row {item}")
        thread.join(timeout=120)
    engine.dispose()
    assert problems == []
    assert len(seen_counts) > 3
    assert seen_counts == sorted(seen_counts)  # the history only grows
    assert seen_counts[-1] > seen_counts[0]

"""Faults in the middle of the daily cycle, on SQLite and PostgreSQL.

- `deepregime update` killed with SIGKILL at six points (inside a file's
  ingest, after the ingest, inside the derived transaction at three places, and
  after the commit before notifications): no partial day is ever visible, no
  lock is left, and a rerun converges to the state of a clean run, with every
  regime change notified exactly once.
- The database taken away in the middle of an update and brought back: the
  update fails with a clear error, nothing is half-written, and the next update
  succeeds as soon as the database is back (no lock left behind).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from app.settings import Settings
from operations import rule_sets
from operations.models import load_active_model
from operations.notifications import create_subscription
from operations.update import run_update
from store.db import make_engine
from store.migrations import upgrade
from store.tables import features, model_outputs, prices, publications, regimes, update_runs
from tests.app.conftest import market_days, market_frame, write_csv_folder
from tests.app.tcp_proxy import TcpProxy
from tests.faults.update_driver import POINTS
from tests.operations.replay import Receiver

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
runner = CliRunner()
LOOPBACK = ["127.0.0.1/32"]


def _environment(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DEEPREGIME_DATABASE_URL": database_url,
        "DEEPREGIME_MODEL_DIR": str(MODELS),
        # The test's webhook receiver listens on loopback, which webhooks refuse by default.
        "DEEPREGIME_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.1/32"]',
        "PYTHONPATH": str(ROOT),
    }


def _update_in_child(
    database_url: str, folder: Path, point: str | None
) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tests.faults.update_driver", point or "none"]
    if point is None:
        command = [sys.executable, "-m", "cli.main"]
    command += ["update", "--source", "csv", "--path", str(folder)]
    return subprocess.run(
        command,
        env=_environment(database_url),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _state(database_url: str) -> dict[str, list[tuple]]:
    """Everything a clean run determines (no timestamps, no ids)."""
    engine = make_engine(database_url)
    with engine.connect() as connection:
        state = {
            "prices": connection.execute(
                select(prices.c.symbol, prices.c.date, prices.c.adj_close).order_by(
                    prices.c.symbol, prices.c.date
                )
            ).all(),
            "features": connection.execute(select(features).order_by(features.c.date)).all(),
            "regimes": connection.execute(
                select(
                    regimes.c.date,
                    regimes.c.rule_set_version,
                    regimes.c.regime,
                    regimes.c.exposure,
                    regimes.c.votes,
                ).order_by(regimes.c.date, regimes.c.rule_set_version)
            ).all(),
            "model_outputs": connection.execute(
                select(model_outputs.c.date, model_outputs.c.p_distressed).order_by(
                    model_outputs.c.date
                )
            ).all(),
            "publications": connection.execute(
                select(publications.c.day, publications.c.policy, publications.c.body).order_by(
                    publications.c.day, publications.c.policy
                )
            ).all(),
        }
    engine.dispose()
    state["features"] = [row[:1] + row[2:-1] for row in state["features"]]  # drop computed_at
    return {name: [tuple(row) for row in rows] for name, rows in state.items()}


# A new day is published under the preset's four policies and once for each rule set
# published by name (operations.rule_sets: the other preset and each market's default).
PER_DAY = 4 + len(rule_sets.built_in()) - 1


def _published_days(database_url: str) -> dict[str, int]:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT CAST(day AS TEXT), COUNT(*) FROM publications GROUP BY day")
        ).all()
    engine.dispose()
    return {str(day)[:10]: count for day, count in rows}


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    return market_frame(market_days())


@pytest.fixture(scope="module")
def clean_state(tmp_path_factory, market) -> dict[str, list[tuple]]:
    """The reference: history then the new day, each updated cleanly, on SQLite."""
    folder = tmp_path_factory.mktemp("clean")
    url = f"sqlite:///{folder / 'clean.db'}"
    upgrade(url)
    assert (
        _update_in_child(url, write_csv_folder(folder / "h", market.iloc[:-1]), None).returncode
        == 0
    )
    assert (
        _update_in_child(url, write_csv_folder(folder / "d", market.iloc[-1:]), None).returncode
        == 0
    )
    return _state(url)


@pytest.mark.parametrize("point", list(POINTS))
def test_killed_update_converges_on_rerun(database_url, tmp_path, market, clean_state, point):
    receiver = Receiver().start()
    engine = make_engine(database_url)
    try:
        receiver.secret = create_subscription(engine, url=receiver.url, allowed=LOOPBACK).secret
        history = write_csv_folder(tmp_path / "history", market.iloc[:-1])
        assert _update_in_child(database_url, history, None).returncode == 0
        before = _published_days(database_url)
        new_day = write_csv_folder(tmp_path / "day", market.iloc[-1:])

        killed = _update_in_child(database_url, new_day, point)
        assert killed.returncode == -9, killed.stdout + killed.stderr
        # No partial day: the new day is published under every policy or not at all.
        after_kill = _published_days(database_url)
        new = {day: n for day, n in after_kill.items() if day not in before}
        assert new in ({}, {f"{market.index[-1]:%Y-%m-%d}": PER_DAY}), new

        rerun = _update_in_child(database_url, new_day, None)  # no lock left behind
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert _state(database_url) == clean_state
        with engine.connect() as connection:
            statuses = (
                connection.execute(select(update_runs.c.status).order_by(update_runs.c.id))
                .scalars()
                .all()
            )
        assert "running" not in statuses
        if point not in ("before-notify",):
            assert statuses[1] == "failed"  # the killed run, marked by the rerun
        # The history's first answer and the new day's change, each notified once.
        days = [event["data"]["day"] for event in receiver.events]
        assert receiver.failures == []
        assert days == [f"{market.index[-2]:%Y-%m-%d}", f"{market.index[-1]:%Y-%m-%d}"]
    finally:
        engine.dispose()
        receiver.stop()


@pytest.mark.postgres
def test_database_lost_mid_update_then_back(database_url, tmp_path, market, monkeypatch):
    if not database_url.startswith("postgresql"):
        pytest.skip("an outage of a database server: PostgreSQL")
    parsed = make_url(database_url)
    proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432).start()
    through_proxy = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False
    )
    settings = Settings(
        database_url=through_proxy,
        data_source="csv",
        model_dir=MODELS,
        db_timeout_s=2.0,
        _env_file=None,
    )
    engine = make_engine(through_proxy, timeout_s=2.0)
    try:
        model = load_active_model(engine, MODELS)
        history = write_csv_folder(tmp_path / "history", market.iloc[:-1])
        run_update(engine, settings=settings, model=model, trigger="cli", path=history)
        before = _published_days(database_url)
        new_day = write_csv_folder(tmp_path / "day", market.iloc[-1:])

        import operations.update as update_module

        original = update_module.refresh_regimes

        def cut_then_refresh(*args, **kwargs):
            proxy.stop()  # the database goes away inside the derived transaction
            return original(*args, **kwargs)

        monkeypatch.setattr(update_module, "refresh_regimes", cut_then_refresh)
        with pytest.raises(Exception) as failure:
            run_update(engine, settings=settings, model=model, trigger="cli", path=new_day)
        assert "connection" in str(failure.value).lower() or "server" in str(failure.value).lower()
        monkeypatch.setattr(update_module, "refresh_regimes", original)
        assert _published_days(database_url) == before  # nothing half-written

        proxy.start()  # the database is back
        report = run_update(engine, settings=settings, model=model, trigger="cli", path=new_day)
        assert report.status == "published"
        assert _published_days(database_url)[f"{market.index[-1]:%Y-%m-%d}"] == PER_DAY
    finally:
        engine.dispose()
        proxy.stop()

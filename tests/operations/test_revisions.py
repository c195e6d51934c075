"""Revisions of days already published, through `deepregime update` on both databases.

The made-up market of tests/app/conftest.py: 299 calm days (risk-on) are loaded
and published, then a new day arrives together with a change to stored days:

- a back-adjustment (every stored SPY close from some day on times 0.98, the new
  day continuing from there): accepted, recorded as a rescaling, applied to the
  whole series, no published answer changes;
- a correction of one HYG close that fires the credit filter on the published day:
  held (exit 2, named), the new day still published, nothing published changes;
  with --accept-revisions it is applied, the day reads `revised: true`, and
  `as_known_at` still gives the original publication;
- a level break inside a file (SPY halved from one day on): the file is refused,
  nothing published changes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from typer.testing import CliRunner

from app.main import create_app
from app.settings import Settings, get_settings
from cli.main import app as cli
from store.db import make_engine
from store.tables import prices, publications
from tests.app.conftest import API_KEY, market_days, market_frame, write_csv_folder

runner = CliRunner()


@pytest.fixture
def env(monkeypatch, database_url, tmp_path):
    monkeypatch.setenv("DEEPREGIME_DATABASE_URL", database_url)
    monkeypatch.setenv("DEEPREGIME_MODEL_DIR", str(tmp_path / "no-models"))
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


@pytest.fixture
def market() -> pd.DataFrame:
    return market_frame(market_days())


@pytest.fixture
def published(env, tmp_path, market):
    """History up to the day before the last one, updated and published."""
    result = update(write_csv_folder(tmp_path / "history", market.iloc[:-1]))
    assert result.exit_code == 0, result.output
    return market


def update(folder: Path, *extra: str):
    return runner.invoke(cli, ["update", "--source", "csv", "--path", str(folder), *extra])


def ledger(database_url: str) -> list[tuple]:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(publications.c.id, publications.c.day, publications.c.body).order_by(
                publications.c.id
            )
        ).all()
    engine.dispose()
    return [tuple(row) for row in rows]


def stored_close(database_url: str, symbol: str, day: pd.Timestamp) -> float:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        value = connection.execute(
            select(prices.c.adj_close).where(prices.c.symbol == symbol, prices.c.date == day.date())
        ).scalar_one()
    engine.dispose()
    return value


def client_for(database_url: str) -> TestClient:
    settings = Settings(database_url=database_url, api_key=API_KEY, _env_file=None)
    return TestClient(create_app(settings))


def test_back_adjustment_is_accepted_and_recorded(published, env, tmp_path):
    market = published.copy()
    before = ledger(env)
    first_changed = market.index[-21]
    adjusted = market.copy()
    adjusted.loc[: market.index[-2], "SPY"] *= 0.98
    # The file starts 20 days back, as a download from a recent start date does.
    result = update(write_csv_folder(tmp_path / "adjusted", adjusted.iloc[-21:]))
    assert result.exit_code == 0, result.output
    assert "revision applied: SPY: 20 stored day(s) revised" in result.output
    assert "rescale" in result.output

    # Applied to the whole stored series, not only the days in the file.
    first_day = market.index[0]
    assert stored_close(env, "SPY", first_day) == pytest.approx(market.at[first_day, "SPY"] * 0.98)
    assert stored_close(env, "SPY", first_changed) == pytest.approx(
        market.at[first_changed, "SPY"] * 0.98
    )
    after = ledger(env)
    assert after[: len(before)] == before  # nothing published was rewritten
    assert {row[1] for row in after[len(before) :]} == {market.index[-1].date()}
    with client_for(env) as client:
        revisions = client.get("/revisions").json()
        assert [(r["symbol"], r["kind"], r["status"]) for r in revisions] == [
            ("SPY", "rescale", "applied")
        ]
        assert revisions[0]["factor"] == pytest.approx(0.98)
        # Ratios do not move: every published day keeps its answer.
        for day in market.index[-25:-1]:
            answer = client.get(f"/regime/{day:%Y-%m-%d}").json()
            assert (answer["regime"], answer["revised"]) == ("risk-on", False)


def test_correction_that_alters_a_published_answer_is_held_until_accepted(published, env, tmp_path):
    market = published
    before = ledger(env)
    target = market.index[-2]  # the last day published (every earlier day was history)
    corrected = market.copy()
    corrected.loc[target, "HYG"] = 45.0  # credit z-score far below -1 on a published day
    folder = write_csv_folder(tmp_path / "corrected", corrected.iloc[-11:])

    held = update(folder)
    assert held.exit_code == 2, held.output
    assert f"revision HELD: HYG: 1 stored day(s) revised from {target.date()}" in held.output
    assert "would alter published" in held.output and "--accept-revisions" in held.output
    assert stored_close(env, "HYG", target) == market.at[target, "HYG"]  # not applied
    after_held = ledger(env)
    assert after_held[: len(before)] == before
    new_day = market.index[-1].date()
    assert {row[1] for row in after_held[len(before) :]} == {new_day}  # the new day went out

    # Before accepting: what had been published for the target day, and when.
    with client_for(env) as client:
        original = client.get(f"/regime/{target:%Y-%m-%d}").json()
        assert original["regime"] == "risk-on"
        held_rows = client.get("/revisions?status=held").json()
        assert [(r["symbol"], r["first_date"]) for r in held_rows] == [
            ("HYG", target.date().isoformat())
        ]
    moment = dt.datetime.now(dt.UTC)

    accepted = update(folder, "--accept-revisions")
    assert accepted.exit_code == 0, accepted.output
    assert "[accepted]" in accepted.output
    assert stored_close(env, "HYG", target) == 45.0
    assert ledger(env)[: len(after_held)] == after_held  # the ledger only grows
    with client_for(env) as client:
        now = client.get(f"/regime/{target:%Y-%m-%d}").json()
        assert now["revised"] is True
        assert now["rules"]["filters"]["credit"]["state"] == "firing"
        assert now["regime"] == "caution"
        then = client.get(
            f"/regime/{target:%Y-%m-%d}", params={"as_known_at": moment.isoformat()}
        ).json()
        assert then["regime"] == "risk-on"
        assert then["rules"]["filters"]["credit"]["state"] == "clear"
        statuses = [r["status"] for r in client.get("/revisions?symbol=HYG").json()]
        assert statuses == ["accepted", "held"]


def test_level_break_inside_a_file_is_refused(published, env, tmp_path):
    market = published
    before = ledger(env)
    broken = market.copy()
    broken.loc[market.index[-60] :, "SPY"] *= 0.5
    result = update(write_csv_folder(tmp_path / "broken", broken))
    assert result.exit_code == 2, result.output
    assert "rejected" in result.output and "SPY" in result.output
    assert ledger(env) == before  # SPY's new day was refused: nothing new to publish
    assert stored_close(env, "SPY", market.index[-30]) == market.at[market.index[-30], "SPY"]


def test_the_ledger_refuses_update_and_delete(published, env):
    engine = make_engine(env)
    rows = ledger(env)
    assert rows
    for statement in (
        "UPDATE publications SET body = '{}' WHERE id = 1",
        "DELETE FROM publications WHERE id = 1",
        "DELETE FROM publications",
    ):
        with pytest.raises(Exception, match="immutable"):
            with engine.begin() as connection:
                connection.execute(text(statement))
    with engine.connect() as connection:
        stored = connection.execute(select(publications.c.body, publications.c.body_sha256)).all()
    engine.dispose()
    assert ledger(env) == rows
    assert all(hashlib.sha256(body.encode()).hexdigest() == digest for body, digest in stored)


def test_a_failure_after_a_revision_is_caught_up_by_the_next_update(
    published, env, tmp_path, monkeypatch
):
    """The revision's prices commit before the recompute; if the recompute fails, the
    next update (which finds the file already applied) still recomputes from there."""
    import operations.update as update_module
    from core.rules import rule_set_preset
    from store.pipeline import refresh_features, refresh_regimes

    market = published
    adjusted = market.copy()
    adjusted.loc[: market.index[-2], "SPY"] *= 0.98
    folder = write_csv_folder(tmp_path / "adjusted", adjusted.iloc[-21:])

    def failing(*args, **kwargs):
        raise RuntimeError("database went away")

    original = update_module.refresh_features
    monkeypatch.setattr(update_module, "refresh_features", failing)
    assert update(folder).exit_code == 1
    monkeypatch.setattr(update_module, "refresh_features", original)
    assert update(folder).exit_code == 0

    engine = make_engine(env)
    try:
        with engine.begin() as connection:  # a full recompute finds nothing left to write
            assert refresh_features(connection).written == 0
            assert refresh_regimes(connection, rule_set_preset("published")).written == 0
    finally:
        engine.dispose()

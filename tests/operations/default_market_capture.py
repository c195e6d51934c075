"""Capture what the default market's answers are, to compare them across versions.

    python tests/operations/default_market_capture.py OUT.json

Feeds the real history (SPY, HYG, IEF, VIX, VIX3M) up to 2024-12-24, then each of the
next four sessions one at a time, through `deepregime update` on a fresh SQLite
database, with no model; then records every ledger body, two days' answers, a month
of history and a backtest's metrics. tests/operations/default_market.json was written by
this script with the service as it was before markets existed (commit b6e85d9); the
test in test_default_market_unchanged.py runs it again with the current code and
requires the same bytes.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
MARKET = Path(os.environ.get("DEEPREGIME_MARKET_DIR", ROOT.parent / "shared" / "data" / "market"))
SESSIONS = ["2024-12-24", "2024-12-26", "2024-12-27", "2024-12-30", "2024-12-31"]
# Read-time fields, and the fields a newer version adds at read time.
VOLATILE = {"publication_id", "published_at", "stale", "expected_as_of", "revised", "market"}
BACKTEST = {
    "strategies": [
        {"kind": "rules"},
        {"kind": "buy_and_hold"},
        {"kind": "single_filter", "filter": "trend"},
    ],
    "start": "2008-01-02",
    "end": "2024-12-31",
    "cost_bps": 10,
}


def capture(work: Path) -> dict:
    os.environ["DEEPREGIME_DATABASE_URL"] = f"sqlite:///{work / 'db.sqlite'}"
    os.environ["DEEPREGIME_MODEL_DIR"] = "/nonexistent-models"
    os.environ["DEEPREGIME_UNIVERSE_FILE"] = str(work / "universe.yaml")
    # A universe of the default market alone (ignored by versions without markets).
    (work / "universe.yaml").write_text(
        "default: SPY\nmarkets:\n  - {id: SPY, symbol: SPY, name: S&P 500, calendar: XNYS, "
        "rule_set: published, reason: the published framework}\n"
    )
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from app.main import create_app
    from cli.main import app as cli
    from tests.operations.replay import write_history

    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    for session in SESSIONS:
        folder = write_history(work / session, MARKET, pd.Timestamp(session))
        result = runner.invoke(cli, ["update", "--source", "csv", "--path", str(folder)])
        assert result.exit_code == 0, result.output

    def clean(body: dict) -> dict:
        return {k: v for k, v in body.items() if k not in VOLATILE}

    with TestClient(create_app()) as client:
        ledger = client.get("/publications", params={"limit": 1000}).json()["items"]
        backtest = client.post("/backtest", json=BACKTEST)
        assert backtest.is_success, backtest.text[:500]
        return {
            "ledger": [
                {
                    "day": item["day"],
                    "policy": item["policy"],
                    "body_sha256": item["body_sha256"],
                    "body": item["body"],
                }
                for item in ledger
                # The preset's own answers; rule sets by name came with markets.
                if not item["policy"].startswith("rule_set:")
            ],
            "today": clean(client.get("/regime/today").json()),
            "days": {
                day: clean(client.get(f"/regime/{day}").json())
                for day in ("2020-03-16", "2024-12-31")
            },
            "history": _history(
                client.get("/regimes", params={"start": "2020-02-03", "end": "2020-04-30"}).json()
            ),
            "backtest": [
                {"name": s["name"], "metrics": _metrics(s["metrics"])}
                for s in backtest.json()["strategies"]
            ],
        }


def _history(page: dict) -> dict:
    """A history page without the fields a later version adds (the page's market, each
    row's in_sample flag: null here, where no model serves)."""
    rows = [{k: v for k, v in row.items() if k != "in_sample"} for row in page["items"]]
    return {**{k: v for k, v in page.items() if k not in VOLATILE}, "items": rows}


def _metrics(metrics: dict) -> dict:
    """A strategy's metrics without the share of days leveraged, which a later version
    adds to time invested (it was counted as 'full' before; none of these strategies
    ever holds more than 1)."""
    time_invested = {k: v for k, v in metrics["time_invested"].items() if k != "leveraged"}
    return {**metrics, "time_invested": time_invested}


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as work:
        document = capture(Path(work))
    Path(sys.argv[1]).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")

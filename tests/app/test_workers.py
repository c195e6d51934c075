"""`deepregime serve --workers 2`: every worker serves a publication made by another
process, and a client that revalidates is never answered an older publication after
a newer one (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.app.conftest import load_market, write_csv_folder
from tests.app.test_regime_routes import appended

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fresh_get(port: int, etag: str | None = None) -> httpx.Response:
    """One request on a new connection, so either worker may take it."""
    headers = {"If-None-Match": etag} if etag else {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        return client.get("/regime/today", headers=headers)


@pytest.fixture
def two_workers(populated_url: str, models_dir: Path, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    env = {
        **os.environ,
        "DEEPREGIME_DATABASE_URL": populated_url,
        "DEEPREGIME_MODEL_DIR": str(models_dir),
        "DEEPREGIME_PUBLICATION_CHECK_S": "1",
    }
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--workers", "2"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while log_path.read_text().count("Application startup complete") < 2:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(log_path.read_text()[-2000:])
                time.sleep(0.2)
            yield port
        finally:
            server.terminate()
            server.wait(timeout=60)


def test_every_worker_serves_a_publication_made_elsewhere(
    two_workers, populated_url, market, csv_folder
):
    port = two_workers
    before = {fresh_get(port).json()["publication_id"] for _ in range(30)}
    assert len(before) == 1  # both workers hold the same answer
    (old,) = before

    # Another process publishes nine more days (NYSE sessions to 2012-04-19).
    write_csv_folder(csv_folder, appended(market, 9))
    load_market(populated_url, csv_folder, today=dt.date(2012, 4, 19))

    # Poll on fresh connections: as soon as one answer is new, revalidate with its ETag
    # and never get an older publication again; then 40 answers in a row are new.
    newest, etag, in_a_row = old, None, 0
    deadline = time.monotonic() + 30
    while in_a_row < 40:
        assert time.monotonic() < deadline, "a worker kept serving the old publication"
        answer = fresh_get(port, etag)
        if answer.status_code == 304:
            in_a_row += 1
            continue
        served = answer.json()["publication_id"]
        assert served >= newest, f"publication {served} served after {newest}"
        if served > old:
            newest, etag = served, answer.headers["etag"]
            in_a_row += 1
    assert newest > old
    without_etag = [fresh_get(port).json()["publication_id"] for _ in range(20)]
    assert set(without_etag) == {newest}

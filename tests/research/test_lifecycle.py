"""``deepregime serve`` stops clean: after a backtest (its research processes) and a sweep
(its local Dask cluster of worker processes), SIGTERM leaves no process behind, no
semaphore reported leaked by multiprocessing's resource tracker, no Dask worker killed
and no traceback.

uvicorn ends by raising the signal it caught again, so no exit handler runs after the
app's shutdown: whatever the shutdown leaves open is what the resource tracker reports.
Process lifecycles do not depend on the database, so this runs on SQLite only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from store.migrations import upgrade
from tests.app.conftest import API_KEY, admin
from tests.app.test_workers import free_port
from tests.research.test_jobs import BODY, DONE, QUEUED, RUNNING

ROOT = Path(__file__).resolve().parents[2]
# What an unclean stop prints (the service's own warnings, e.g. "no model", are fine).
SHUTDOWN_FAULTS = ("leaked", "resource_tracker", "still alive", "killing", "Traceback", "ERROR")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only (see the module's docstring): overrides the two-backend fixture."""
    url = f"sqlite:///{tmp_path / 'deepregime.db'}"
    upgrade(url)
    return url


def _wait_healthy(client: httpx.Client, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[1]
        try:
            if client.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("the service did not answer /health within 120 s")


def test_serve_stops_clean_after_research_processes_and_a_dask_cluster(
    market_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DEEPREGIME_DATABASE_URL": market_url,
        "DEEPREGIME_MODEL_DIR": str(tmp_path / "no-models"),
        "DEEPREGIME_RESEARCH_PROCESSES": "1",
        "DEEPREGIME_DASK_WORKERS": "1",
        "DEEPREGIME_DASK_PROCESSES": "true",
        "DEEPREGIME_SWEEP_POLL_S": "0.2",
        "DEEPREGIME_API_KEY": API_KEY,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            _wait_healthy(client, server)
            backtest = client.post("/backtest", json={"strategies": [{"kind": "rules"}]})
            assert backtest.status_code == 201, backtest.text
            sweep = client.post("/sweeps", json=BODY, headers=admin())
            assert sweep.status_code == 202, sweep.text
            deadline = time.monotonic() + 120
            while (status := client.get(sweep.headers["Location"]).json())["status"] in (
                QUEUED,
                RUNNING,
            ):
                assert time.monotonic() < deadline, "the sweep did not finish"
                time.sleep(0.2)
            assert status["status"] == DONE, status["message"]
            assert status["scheduler"] == "local (1 processes)"
        children = psutil.Process(server.pid).children(recursive=True)
        assert len(children) >= 2  # research process(es) and the Dask worker's
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    faults = [line for line in stderr.splitlines() if any(f in line for f in SHUTDOWN_FAULTS)]
    assert faults == [], stderr
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], [process.cmdline() for process in alive]

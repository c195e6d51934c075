"""The local Dask cluster sweeps run on: no fixed port, and a stop that kills nothing."""

from __future__ import annotations

import logging
import time
import warnings
from contextlib import ExitStack

import psutil

from research.cluster import dask_client, running_tasks

DASK_DEFAULT_HTTP_PORT = 8787


def _listening_ports() -> set[int]:
    return {
        connection.laddr.port
        for connection in psutil.Process().net_connections(kind="tcp")
        if connection.status == psutil.CONN_LISTEN
    }


def test_two_local_clusters_at_once_bind_no_fixed_port() -> None:
    before = _listening_ports()
    with ExitStack() as stack, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clients = [
            stack.enter_context(dask_client(None, workers=1, processes=False)) for _ in range(2)
        ]
        opened = _listening_ports() - before
        http_ports = [client.scheduler_info()["services"]["dashboard"] for client in clients]
    assert DASK_DEFAULT_HTTP_PORT not in opened
    assert len(set(http_ports)) == 2 and DASK_DEFAULT_HTTP_PORT not in http_ports
    assert not [w for w in caught if "already in use" in str(w.message)]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _busy(seconds: float) -> float:
    """Holds its worker's thread, as a sweep chunk does (nothing can interrupt it)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return seconds


def test_a_stop_waits_for_a_running_task_instead_of_killing_the_worker() -> None:
    records = _Records()
    nanny = logging.getLogger("distributed.nanny")
    nanny.addHandler(records)
    try:
        with dask_client(None, workers=1, processes=True) as client:
            # Longer than the 4 s a closing nanny waits before it kills its worker.
            task = client.submit(_busy, 5.0, pure=False)
            deadline = time.monotonic() + 30
            while not any(running_tasks(client).values()):  # the task holds the worker
                assert time.monotonic() < deadline, "the task never started"
                time.sleep(0.05)
            client.cancel(task)  # as a stopped sweep cancels its chunks
            assert any(running_tasks(client).values())  # ... which run on regardless
    finally:
        nanny.removeHandler(records)
    assert not [m for m in records.messages if "still alive" in m or "killing" in m]

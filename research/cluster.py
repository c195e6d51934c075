"""The Dask client a sweep runs on: a scheduler at an address (any cluster whose
workers have this package installed), or a local cluster of processes started here.

A local cluster binds no fixed port and serves no dashboard: its scheduler listens on
a free port of 127.0.0.1, and the HTTP server every Dask scheduler runs (whose
default is :8787) on another, so two clusters (two test processes, two services on
one host) never collide. It stops without killing anything: workers still running a
task (a chunk of a cancelled sweep keeps its thread until it returns) are waited for
before the cluster closes them, instead of being killed 4 s into the close.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

LOCAL_HOST = "127.0.0.1"
DRAIN_S = 30.0  # the longest a stop waits for running tasks before closing anyway


@contextmanager
def dask_client(
    scheduler: str | None,
    *,
    workers: int = 2,
    processes: bool = True,
    timeout_s: float = 30.0,
    drain_s: float = DRAIN_S,
    nice: int = 0,
) -> Iterator[Any]:
    """A connected dask.distributed Client, closed on exit (with its local cluster).
    A local cluster's worker processes run ``nice`` steps below this one's priority."""
    from distributed import Client, LocalCluster

    # The scheduler of a local cluster logs each worker and client at INFO here; the
    # sweep reports its own progress.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if scheduler:
        client = Client(scheduler, timeout=timeout_s)
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=processes,  # scheduler on a free port of 127.0.0.1 (in-process: inproc://)
        dashboard_address=None,
        # dashboard_address=None only leaves the dashboard out: the scheduler's HTTP
        # server (health, metrics) still binds its default :8787 unless told otherwise.
        scheduler_kwargs={"dashboard_address": f"{LOCAL_HOST}:0"},
        silence_logs=logging.WARNING,
    )
    client = Client(cluster)
    if processes and nice:
        # On each worker's event-loop thread, which starts the threads running tasks
        # (they inherit its priority): serving answers first on a shared machine.
        client.run(os.nice, nice)
    try:
        yield client
    finally:
        try:
            wait_for_idle_workers(client, drain_s)
        finally:
            client.close()
            cluster.close()


def running_tasks(client: Any) -> dict[str, int]:
    """Tasks occupying a thread on each worker, cancelled ones included (the scheduler
    forgets a cancelled task at once; its worker runs it to the end)."""
    return client.run(_running_on_worker)  # type: ignore[no-any-return]


def _running_on_worker(dask_worker: Any) -> int:
    return len(dask_worker.state.all_running_tasks)


def wait_for_idle_workers(client: Any, timeout_s: float) -> bool:
    """Wait until no worker runs a task (at most ``timeout_s``); False when some still do."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            busy = {worker: n for worker, n in running_tasks(client).items() if n}
        except Exception:  # noqa: BLE001 - a worker already gone has nothing to wait for
            log.debug("could not ask the workers for their running tasks", exc_info=True)
            return False
        if not busy:
            return True
        if time.monotonic() >= deadline:
            log.warning(
                "closing the local cluster with tasks still running on %s after %.0f s",
                ", ".join(sorted(busy)),
                timeout_s,
            )
            return False
        time.sleep(0.05)

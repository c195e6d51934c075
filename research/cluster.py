"""The Dask client a sweep runs on: a scheduler at an address (any cluster whose
workers have this package installed), or a local cluster of processes started here."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def dask_client(
    scheduler: str | None,
    *,
    workers: int = 2,
    processes: bool = True,
    timeout_s: float = 30.0,
) -> Iterator[Any]:
    """A connected dask.distributed Client, closed on exit (with its local cluster)."""
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
        processes=processes,
        dashboard_address=None,
        silence_logs=logging.WARNING,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()

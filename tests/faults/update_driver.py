"""Run `deepregime update` in this process and SIGKILL it at a named point.

    python -m tests.faults.update_driver POINT update --source csv --path DIR

The points wrap functions the update calls, so the process dies exactly there:
nothing is cleaned up, no lock is released, no transaction commits.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import operations.update as update_module
import store.ingest as ingest_module

# point -> (module, function name, kill before the call (True) or after it (False), call number)
POINTS: dict[str, tuple[Any, str, bool, int]] = {
    "mid-ingest": (ingest_module, "_write_chunk", False, 1),  # rows written, file txn open
    "after-ingest": (update_module, "_judge_revisions", True, 1),  # prices in, nothing derived
    "after-features": (update_module, "refresh_regimes", True, 1),  # derived txn open
    "after-model": (update_module, "publish_latest", True, 1),  # outputs written, not committed
    "after-publish": (update_module, "_finish_run", True, 1),  # ledger rows written, not committed
    "before-notify": (
        update_module,
        "deliver_configured",
        True,
        1,
    ),  # committed, events undelivered
}


def _killing(function: Callable[..., Any], before: bool, nth: int) -> Callable[..., Any]:
    calls = 0

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if before and calls == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        result = function(*args, **kwargs)
        if not before and calls == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    return wrapper


def main() -> None:
    point, *arguments = sys.argv[1:]
    module, name, before, nth = POINTS[point]
    setattr(module, name, _killing(getattr(module, name), before, nth))
    from cli.main import app

    app(arguments)


if __name__ == "__main__":
    main()

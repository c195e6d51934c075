"""``deepregime serve``: the REST service with uvicorn on the configured database.

``--workers N`` (default ``DEEPREGIME_WORKERS``) runs N uvicorn worker processes on
one socket; each builds the app from the environment, watches the ledger and so
serves a new publication within ``DEEPREGIME_PUBLICATION_CHECK_S``.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from cli.common import fail, handles_errors, settings


@handles_errors
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind (default: DEEPREGIME_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default: DEEPREGIME_PORT).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Worker processes (default: DEEPREGIME_WORKERS)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    schedule: Annotated[
        bool,
        typer.Option(
            "--schedule",
            help="Also run `deepregime update` after each NYSE close "
            "(+ DEEPREGIME_SCHEDULE_DELAY_MINUTES).",
        ),
    ] = False,
) -> None:
    """Serve the API (stop with Ctrl-C). Refuses a schema behind the migrations."""
    import uvicorn

    from app.limits import server_options
    from app.settings import get_settings
    from app.startup import StartupError, prepare_database
    from store.db import make_engine

    config = settings()
    bind_host, bind_port = host or config.host, port or config.port
    processes = workers or config.workers
    scheduled = schedule or config.schedule_updates
    if scheduled and processes > 1:
        fail(
            "--schedule runs the update in the serving process: with several workers, run "
            "`deepregime schedule` as a process of its own instead"
        )
    # Check the schema first so a refusal is one line, not a lifespan traceback.
    engine = make_engine(config.database_url, config.db_timeout_s)
    try:
        found = prepare_database(engine, config)
    except StartupError as error:
        fail(str(error))
    finally:
        engine.dispose()
    typer.echo(
        f"serving on http://{bind_host}:{bind_port} ({found}), {processes} worker(s); docs at /docs"
    )
    if scheduled:
        typer.echo(f"updates scheduled {config.schedule_delay_minutes:g} min after each NYSE close")
    # Every worker builds the app from the environment. The wait for the database is
    # done: the app's own start-up check must not repeat it.
    os.environ["DEEPREGIME_STARTUP_WAIT_S"] = "0"
    os.environ["DEEPREGIME_SCHEDULE_UPDATES"] = "true" if scheduled else "false"
    get_settings.cache_clear()  # one worker runs in this process: read them again
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=processes,
        log_level=log_level,
        proxy_headers=True,
        access_log=False,
        # A worker importing pandas and onnxruntime on a busy machine can miss uvicorn's
        # default 5 s health ping and be restarted in a loop.
        timeout_worker_healthcheck=60,
        **server_options(config, from_environment=True),
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)

"""``AsyncClient`` against the live service: the same answers as ``Client``, the same
revalidation, problems and stream."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest
from deepregime_client import AsyncClient, Client, ProblemError

from tests.client.test_round_trips import BACKTEST
from tests.client.test_stream_and_cache import publish


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_async_twin_answers_as_the_blocking_client(service, engine):
    statuses: list[int] = []

    async def record(response: httpx.Response) -> None:
        statuses.append(response.status_code)

    async def session() -> dict[str, object]:
        http = httpx.AsyncClient(base_url=service.url, event_hooks={"response": [record]})
        async with AsyncClient(service.url, http=http) as client:
            answers: dict[str, object] = {
                "today": await client.today(),
                "again": await client.today(),
                "day": await client.regime(dt.date(2012, 4, 4)),
                "rows": await client.history(start="2012-03-01", as_frame=False),
                "ledger": await client.publications(policy="rules"),
                "backtest": await client.backtest(BACKTEST, idempotency_key="async-1"),
            }
            with pytest.raises(ProblemError) as missing:
                await client.regime("2000-01-03")
            answers["missing"] = missing.value.status
            stream = client.stream()
            answers["latest"] = await asyncio.wait_for(anext(stream), 15)
            newer = publish(engine, "caution", 0.5)
            answers["streamed"] = await asyncio.wait_for(anext(stream), 15)
            answers["newer"] = newer.id
            await stream.aclose()
        return answers

    with Client(service.url) as client:  # read before the session publishes anything
        today = client.today()
        day = client.regime("2012-04-04")
        rows = client.history(start="2012-03-01", as_frame=False)
        ledger = client.publications(policy="rules")
        answers = asyncio.run(session())
        replayed = client.backtest(BACKTEST, idempotency_key="async-1")
    assert statuses[:2] == [200, 304]
    assert answers["today"] == answers["again"] == today
    assert (answers["day"], answers["rows"], answers["ledger"]) == (day, rows, ledger)
    assert answers["backtest"].run_id == replayed.run_id  # type: ignore[attr-defined]
    assert answers["missing"] == 404
    latest, streamed = answers["latest"], answers["streamed"]
    assert latest.publication_id == today.publication_id  # type: ignore[attr-defined]
    assert streamed.publication_id == answers["newer"]  # type: ignore[attr-defined]
    assert streamed.regime == "caution"  # type: ignore[attr-defined]

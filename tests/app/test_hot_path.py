"""/regime/today: one render per publication and trading day, 304s, Cache-Control,
and a publication by another process served without a restart (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from fastapi.testclient import TestClient

from app.deps import get_clock
from app.main import create_app
from app.state import ResponseCache
from tests.app.conftest import MONDAY_BEFORE_OPEN, load_market, running, write_csv_folder
from tests.app.test_regime_routes import appended

# --- the cache on its own -------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_concurrent_misses_share_one_render():
    cache: ResponseCache[str] = ResponseCache(ttl_s=60)
    calls = []

    async def render() -> str:
        calls.append(1)
        await asyncio.sleep(0.05)
        return "body"

    async def main() -> list[str]:
        return await asyncio.gather(*(cache.get_or_render("k", render) for _ in range(50)))

    assert asyncio.run(main()) == ["body"] * 50
    assert len(calls) == 1


def test_an_expired_entry_is_rendered_once_in_the_background_while_served():
    clock = FakeClock()
    cache: ResponseCache[int] = ResponseCache(ttl_s=10, clock=clock)
    version = [0]

    async def render() -> int:
        version[0] += 1
        await asyncio.sleep(0.01)
        return version[0]

    async def main() -> tuple[list[int], int]:
        first = await cache.get_or_render("k", render)
        clock.now = 11.0  # past the ttl: everyone still gets the current value at once
        served = await asyncio.gather(*(cache.get_or_render("k", render) for _ in range(20)))
        await asyncio.sleep(0.05)  # the one background render lands
        return [first, *served], await cache.get_or_render("k", render)

    served, after = asyncio.run(main())
    assert served == [1] * 21
    assert after == 2 and version[0] == 2


def test_clear_during_a_render_keeps_its_outdated_value_out():
    cache: ResponseCache[str] = ResponseCache(ttl_s=60)
    answers = iter(["old", "new"])

    async def render() -> str:
        value = next(answers)
        await asyncio.sleep(0.02)
        return value

    async def main() -> tuple[str, str]:
        pending = asyncio.ensure_future(cache.get_or_render("k", render))
        await asyncio.sleep(0.005)
        cache.clear()  # a publication lands while "old" is being rendered
        first = await pending
        return first, await cache.get_or_render("k", render)

    assert asyncio.run(main()) == ("old", "new")


def test_a_failed_render_is_not_cached():
    cache: ResponseCache[str] = ResponseCache(ttl_s=60)
    outcomes = iter([RuntimeError("database down"), "body"])

    async def render() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def main() -> str:
        try:
            await cache.get_or_render("k", render)
        except RuntimeError:
            pass
        return await cache.get_or_render("k", render)

    assert asyncio.run(main()) == "body"


# --- through the app ------------------------------------------------------------------


def test_many_requests_render_once_and_304_with_the_etag(settings):
    with running(settings) as client:
        state = client.app.state.service
        renders = state.cache.renders
        answers = [client.get("/regime/today") for _ in range(30)]
        assert {a.status_code for a in answers} == {200}
        assert len({a.content for a in answers}) == 1
        assert state.cache.renders - renders <= 1
        etag = answers[0].headers["etag"]
        again = client.get("/regime/today", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        other = client.get("/regime/today", headers={"If-None-Match": '"something-else"'})
        assert other.status_code == 200


def test_cache_control_lasts_until_the_next_expected_publication(settings):
    # Monday 2012-04-09 13:00 UTC: the answer for Thursday's close is current; the next
    # one is due at Monday's close (16:00 New York = 20:00 UTC) plus the 30-minute delay.
    with running(settings, now=MONDAY_BEFORE_OPEN) as client:
        fresh = client.get("/regime/today")
    assert fresh.json()["stale"] is False
    assert fresh.headers["cache-control"] == "public, max-age=27000"
    # Tuesday evening: Monday's close was expected and is missing: revalidate every time.
    late = dt.datetime(2012, 4, 10, 23, 0, tzinfo=dt.UTC)
    with running(settings, now=late) as client:
        stale = client.get("/regime/today")
    assert stale.json()["stale"] is True
    assert stale.headers["cache-control"] == "no-cache"
    assert stale.headers["etag"] != fresh.headers["etag"]


def test_the_trading_day_rollover_renders_a_new_answer(settings):
    before_close = dt.datetime(2012, 4, 9, 19, 0, tzinfo=dt.UTC)
    now = [before_close]
    app = create_app(settings)
    app.dependency_overrides[get_clock] = lambda: lambda: now[0]
    with TestClient(app) as client:
        first = client.get("/regime/today").json()
        now[0] = dt.datetime(2012, 4, 9, 21, 0, tzinfo=dt.UTC)  # Monday's close has passed
        second = client.get("/regime/today").json()
    assert (first["stale"], first["expected_as_of"]) == (False, "2012-04-05")
    assert (second["stale"], second["expected_as_of"]) == (True, "2012-04-09")


def test_a_publication_by_another_process_is_served_within_the_check_period(
    settings, market, csv_folder
):
    fast = settings.model_copy(update={"publication_check_s": 0.1})
    later = dt.datetime(2012, 4, 20, 12, tzinfo=dt.UTC)
    with running(fast, now=later) as client:
        before = client.get("/regime/today").json()
        # Another process (the command line, a scheduler, another replica) publishes.
        write_csv_folder(csv_folder, appended(market, 9))  # sessions to 2012-04-19
        load_market(settings.database_url, csv_folder, today=dt.date(2012, 4, 19))
        deadline = time.monotonic() + 5
        seen = [before["publication_id"]]
        while time.monotonic() < deadline:
            seen.append(client.get("/regime/today").json()["publication_id"])
            if seen[-1] != before["publication_id"]:
                break
            time.sleep(0.02)
        after = client.get("/regime/today").json()
    assert after["as_of"] == "2012-04-19"
    assert after["publication_id"] > before["publication_id"]
    # Never an older answer after a newer one.
    assert seen == sorted(seen)


# --- the answer sent before the framework runs (app.hot_path) ---------------------------


def _call_fast_path(app, query: bytes = b"", headers=()):  # type: ignore[no-untyped-def]
    """Run TodayFastPath alone, in front of an app that fails if it is reached."""
    from app.hot_path import TodayFastPath

    reached = []

    async def route_must_not_run(scope, receive, send):  # type: ignore[no-untyped-def]
        reached.append(scope["path"])

    sent: list[dict] = []

    async def send(message):  # type: ignore[no-untyped-def]
        sent.append(message)

    async def receive():  # type: ignore[no-untyped-def]
        return {"type": "http.request", "body": b""}

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/regime/today",
        "query_string": query,
        "headers": list(headers),
        "app": app,
    }
    asyncio.run(TodayFastPath(route_must_not_run)(scope, receive, send))
    return reached, sent


def test_a_rendered_answer_is_sent_before_the_framework_with_the_routes_headers(settings):
    with running(settings) as client:
        rendered = client.get("/regime/today?policy=rules")
        reached, sent = _call_fast_path(client.app, b"policy=rules")
        assert reached == []  # answered without the route
        start, body = sent
        assert start["status"] == 200 and body["body"] == rendered.content
        headers = {k.decode(): v.decode() for k, v in start["headers"]}
        for name in ("etag", "cache-control", "content-type", "content-length"):
            assert headers[name] == rendered.headers[name], name
        etag = rendered.headers["etag"].encode()
        reached, sent = _call_fast_path(client.app, b"policy=rules", [(b"if-none-match", etag)])
        assert reached == [] and sent[0]["status"] == 304 and sent[1]["body"] == b""
        # Through the whole stack the two paths give the same answer; metrics count both.
        again = client.get("/regime/today?policy=rules")
        assert (again.content, again.headers["etag"]) == (
            rendered.content,
            rendered.headers["etag"],
        )
        text = client.get("/metrics").text
        assert (
            'deepregime_http_requests_total{method="GET",route="/regime/today",status="200"}'
            in text
        )


def test_what_the_fast_path_cannot_answer_goes_to_the_route(settings):
    with running(settings) as client:
        client.get("/regime/today")  # rendered: the default policy's entry exists
        for query in (b"policy=bogus", b"policy=rules&policy=model", b"extra=1", b"mapping=x"):
            reached, sent = _call_fast_path(client.app, query)
            assert reached == ["/regime/today"] and sent == [], query
        # A client that was served a newer publication than this process knows of.
        newer = b'"999999-abc-0"'
        reached, _ = _call_fast_path(client.app, b"", [(b"if-none-match", newer)])
        assert reached == ["/regime/today"]
        bad = client.get("/regime/today?policy=bogus")
        assert bad.status_code == 422 and "policy" in bad.text
        # After a publication or activation clears the cache, the route renders first.
        client.app.state.service.cache.clear()
        reached, _ = _call_fast_path(client.app)
        assert reached == ["/regime/today"]

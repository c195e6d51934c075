"""The access model through the real app: each role on each class of route, sweep quotas
and ownership, rate limits keyed on verified keys and on socket addresses, and keys
managed by `deepregime keys`."""

from __future__ import annotations

import re
import secrets

import httpx
import pytest
from typer.testing import CliRunner

from app.settings import Settings, get_settings
from cli.main import app as cli
from operations import keys
from store.db import make_engine
from tests.app.conftest import admin, running
from tests.faults.test_http_limits import serving
from tests.research.test_jobs import BODY as SWEEP
from tests.research.test_jobs import SIZE

BACKTEST = {"strategies": [{"kind": "buy_and_hold"}], "store": False}


def _key(settings: Settings, role: str, **quotas: float) -> str:
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as connection:
            key, _ = keys.create_key(connection, role=role, quotas=keys.Quotas(**quotas))
    finally:
        engine.dispose()
    return key


def _quiet(settings: Settings, **changes: object) -> Settings:
    """Sweeps stay queued (no runner polls), so quotas and ownership are seen alone."""
    return settings.model_copy(update={"sweep_poll_s": 0.0, **changes})


def test_each_role_is_allowed_and_refused_on_each_class_of_route(settings):
    settings = _quiet(settings)
    callers = {role: {"X-API-Key": _key(settings, role)} for role in keys.ROLES}
    callers["anonymous"] = {}
    callers["settings admin"] = admin()
    expected = {  # role: (read, research, admin)
        "anonymous": (200, 401, 401),
        "read": (200, 403, 403),
        "research": (200, 202, 403),
        "admin": (200, 202, 200),
        "settings admin": (200, 202, 200),
    }
    with running(settings) as client:
        for who, headers in callers.items():
            read, research, admin_only = expected[who]
            assert client.get("/regime/today", headers=headers).status_code == read, who
            assert client.get("/sweeps", headers=headers).status_code == read, who
            posted = client.post("/sweeps", json=SWEEP, headers=headers)
            assert posted.status_code == research, (who, posted.text)
            webhooks = client.get("/admin/webhooks", headers=headers)
            assert webhooks.status_code == admin_only, who
            rule_set = client.post("/rule-sets", json={}, headers=headers)
            # An admin gets past the key to the body's check.
            assert rule_set.status_code == (422 if admin_only == 200 else admin_only), who
            if research != 202:
                problem = posted.json()
                assert posted.headers["content-type"] == "application/problem+json"
                assert "X-API-Key" in problem["detail"]
        made_up = {"X-API-Key": "drk_" + secrets.token_urlsafe(32)}
        refused = client.post("/sweeps", json=SWEEP, headers=made_up)
        assert refused.status_code == 403 and "not valid" in refused.json()["detail"]
        assert client.get("/sweeps", headers=callers["admin"]).json()["total"] == 3


def test_only_the_owner_or_an_admin_cancels_or_reruns_a_sweep(settings):
    settings = _quiet(settings)
    owner = {"X-API-Key": _key(settings, "research")}
    other = {"X-API-Key": _key(settings, "research")}
    with running(settings) as client:
        sweep_id = client.post("/sweeps", json=SWEEP, headers=owner).json()["id"]
        for action in ("cancel", "rerun"):
            refused = client.post(f"/sweeps/{sweep_id}/{action}", headers=other)
            assert refused.status_code == 403, refused.text
            assert "another key" in refused.json()["detail"]
        assert client.get(f"/sweeps/{sweep_id}").json()["status"] == "queued"
        cancelled = client.post(f"/sweeps/{sweep_id}/cancel", headers=admin())
        assert cancelled.json()["status"] == "cancelled"
        assert client.post(f"/sweeps/{sweep_id}/rerun", headers=owner).status_code == 202
        assert client.post(f"/sweeps/{sweep_id}/cancel", headers=owner).status_code == 200
        assert client.post("/sweeps/nope/cancel", headers=other).status_code == 404


def test_a_key_is_held_to_its_sweep_quotas(settings):
    settings = _quiet(settings, key_max_variants_per_day=SIZE * 2)
    one_at_a_time = {"X-API-Key": _key(settings, "research", max_concurrent_sweeps=1)}
    defaults = {"X-API-Key": _key(settings, "research")}
    with running(settings) as client:
        first = client.post("/sweeps", json=SWEEP, headers=one_at_a_time)
        assert first.status_code == 202
        second = client.post("/sweeps", json=SWEEP, headers=one_at_a_time)
        assert second.status_code == 429 and "at most 1 at once" in second.json()["detail"]
        client.post(f"/sweeps/{first.json()['id']}/cancel", headers=one_at_a_time)
        assert client.post("/sweeps", json=SWEEP, headers=one_at_a_time).status_code == 202
        # A rerun queues the sweep again: held to the same bound.
        again = client.post(f"/sweeps/{first.json()['id']}/rerun", headers=one_at_a_time)
        assert again.status_code == 429 and "at most 1 at once" in again.json()["detail"]
        assert client.get(f"/sweeps/{first.json()['id']}").json()["status"] == "cancelled"
        # Variants a day (the service's default here: two sweeps' worth), cancelled or not.
        for _ in range(2):
            queued = client.post("/sweeps", json=SWEEP, headers=defaults)
            assert queued.status_code == 202
            client.post(f"/sweeps/{queued.json()['id']}/cancel", headers=defaults)
        third = client.post("/sweeps", json=SWEEP, headers=defaults)
        assert third.status_code == 429 and "last 24 hours" in third.json()["detail"]
        # Admins have no quota.
        assert client.post("/sweeps", json=SWEEP, headers=admin()).status_code == 202


def test_backtests_are_limited_by_verified_key_else_by_address(settings):
    settings = settings.model_copy(
        update={"backtest_rate_per_minute": 1.0, "backtest_rate_burst": 2, "research_processes": 0}
    )
    generous = {"X-API-Key": _key(settings, "read", backtests_per_minute=60_000.0)}
    with running(settings) as client:
        answers = [client.post("/backtest", json=BACKTEST).status_code for _ in range(3)]
        assert answers == [200, 200, 429]
        # A new made-up key per request is refused, never a fresh bucket.
        for _ in range(3):
            made_up = {"X-API-Key": secrets.token_hex(16)}
            assert client.post("/backtest", json=BACKTEST, headers=made_up).status_code == 403
        # A verified key has its own bucket, at its own rate (1000 a second: never empty
        # here, where the address has had one token a minute).
        answers = [
            client.post("/backtest", json=BACKTEST, headers=generous).status_code for _ in range(5)
        ]
        assert answers == [200] * 5


@pytest.mark.parametrize("trusted, limited", [("", True), ("127.0.0.1", False)])
def test_forwarded_addresses_count_only_from_trusted_proxies(settings, trusted, limited):
    settings = settings.model_copy(
        update={
            "backtest_rate_per_minute": 1.0,
            "backtest_rate_burst": 1,
            "research_processes": 0,
            "forwarded_allow_ips": trusted,
        }
    )
    with serving(settings) as port:
        answers = [
            httpx.post(
                f"http://127.0.0.1:{port}/backtest",
                json=BACKTEST,
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
                timeout=60,
            ).status_code
            for n in range(1, 4)
        ]
    assert answers == ([200, 429, 429] if limited else [200, 200, 200])


def test_keys_are_created_listed_and_revoked_from_the_command_line(settings, monkeypatch):
    monkeypatch.setenv("DEEPREGIME_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        created = runner.invoke(cli, ["keys", "create", "--role", "research", "--label", "desk"])
        assert created.exit_code == 0, created.output
        key_id = re.search(r"id (\S+),", created.output).group(1)  # type: ignore[union-attr]
        key = created.output.strip().splitlines()[-1]
        listed = runner.invoke(cli, ["keys", "list"])
        assert key_id in listed.output and "research" in listed.output
        assert "active" in listed.output and key not in listed.output
        bad_role = runner.invoke(cli, ["keys", "create", "--role", "root"])
        assert bad_role.exit_code != 0 and "unknown role 'root'" in bad_role.output
        with running(_quiet(settings)) as client:
            assert client.post("/sweeps", json=SWEEP, headers={"X-API-Key": key}).status_code == 202
            revoked = runner.invoke(cli, ["keys", "revoke", key_id])
            assert revoked.exit_code == 0, revoked.output
            refused = client.post("/sweeps", json=SWEEP, headers={"X-API-Key": key})
            assert refused.status_code == 403
        assert "revoked" in runner.invoke(cli, ["keys", "list"]).output
        missing = runner.invoke(cli, ["keys", "revoke", "nope"])
        assert missing.exit_code != 0 and "no key with id 'nope'" in missing.output
    finally:
        get_settings.cache_clear()

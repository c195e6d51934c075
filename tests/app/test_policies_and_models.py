"""Policies rules | model | ensemble and the model routes, with a closed-form ONNX model.

The tiny model calls a day distressed with p = sigmoid(mean VIX over 5 days - 15);
VIX is 12 until ten days before the end, then 20 (see conftest), so:

| day (from the end) | VIX window        | p              | model      | rule votes |
|--------------------|-------------------|----------------|------------|------------|
| 10 before          | 12 x5             | sigmoid(-3)    | calm       | 0          |
| 7 before           | 12 x2, 20 x3      | sigmoid(1.8)   | distressed | 0          |
| 1 before           | 20 x5             | sigmoid(5)     | distressed | 0          |
| last               | 20 x5             | sigmoid(5)     | distressed | 2          |
"""

from __future__ import annotations

import pytest

from tests.app.conftest import admin, market_days, running
from tests.app.model_factory import expected_p_distressed, write_tiny_model

DAYS = [d.date().isoformat() for d in market_days()]
CALM_DAY, MIXED_DAY, DAY_BEFORE, LAST = DAYS[-11], DAYS[-8], DAYS[-2], DAYS[-1]


@pytest.fixture
def version(models_dir):
    return write_tiny_model(models_dir)


def test_model_policies_after_activation(settings, version):
    """Activation scores the history and publishes; every route then reads stored outputs."""
    with running(settings) as client:
        # On disk but neither activated nor updated since: nothing is scored or
        # published for it, and no read path scores a day on the fly.
        before = client.get(f"/regime/{LAST}").json()["model"]
        assert (before["version"], before["available"]) == (version, False)
        assert "no model output stored" in before["reason"]
        assert client.get("/regime/today").json()["model"]["available"] is False  # as published

        activated = client.post(f"/admin/models/{version}/activate", headers=admin())
        assert activated.status_code == 200, activated.text
        # All six features exist from day 20 (20-day return and volatility need 20
        # returns); a 5-day window ending on day 24 is the first complete one.
        assert activated.json()["outputs_written"] == len(DAYS) - 24
        # Every served answer changed (the model part at least): four publications.
        assert activated.json()["publications"] == 4

        today = client.get("/regime/today", params={"policy": "model"}).json()
        assert today["model"] == {
            "available": True,
            "version": version,
            "regime": 1,
            "p_distressed": pytest.approx(expected_p_distressed([20.0] * 5), rel=1e-6),
            "target": "label",
            "horizon": 0,
            "in_sample": False,  # trained until 2011-12-30
            "out_of_sample": None,
            "reason": None,
        }
        assert (today["regime"], today["exposure"], today["mapping"]) == (
            "distressed",
            0.0,
            "filter",
        )

        def answer(day: str, **params: str) -> tuple[str, float]:
            body = client.get(f"/regime/{day}", params=params).json()
            return body["regime"], body["exposure"]

        assert answer(CALM_DAY, policy="model") == ("calm", 1.0)
        assert answer(CALM_DAY, policy="model", mapping="leveraged") == ("calm", 1.5)
        assert answer(MIXED_DAY, policy="model", mapping="leveraged") == ("distressed", 0.3)
        assert answer(CALM_DAY, policy="ensemble") == ("risk-on", 1.0)
        assert answer(DAY_BEFORE, policy="ensemble") == ("caution", 0.5)  # 0 votes + model
        assert answer(LAST, policy="ensemble") == ("risk-off", 0.0)  # 2 votes + model
        assert answer(DAY_BEFORE, policy="rules") == ("risk-on", 1.0)

        early = client.get(f"/regime/{DAYS[10]}").json()  # 20-day features not there yet
        assert early["model"]["available"] is False and "incomplete" in early["model"]["reason"]
        assert (
            client.get(f"/regime/{DAYS[10]}", params={"policy": "model"}).json()["exposure"] is None
        )

        mixed = client.get(f"/regime/{MIXED_DAY}").json()["model"]
        assert mixed["p_distressed"] == pytest.approx(
            expected_p_distressed([12.0, 12.0, 20.0, 20.0, 20.0]), rel=1e-6
        )

        page = client.get(
            "/regimes", params={"start": MIXED_DAY, "end": DAY_BEFORE, "policy": "ensemble"}
        ).json()
        assert page["model_version"] == version
        assert {item["model_regime"] for item in page["items"]} == {1}
        assert {(item["regime"], item["exposure"]) for item in page["items"]} == {("caution", 0.5)}

        listing = client.get("/models").json()
        assert listing["active"] == version and listing["loaded"] is True
        assert [m["version"] for m in listing["models"]] == [version]
        card = client.get(f"/models/{version}").json()
        assert card["active"] is True and card["card"]["window"] == 5

    # A restart serves the version the registry recorded, with its stored outputs.
    with running(settings) as client:
        assert client.get("/regime/today").json()["model"]["available"] is True


def test_the_model_policy_needs_a_model_and_says_why(client):
    response = client.get("/regime/today", params={"policy": "model"})
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "no model version found" in response.json()["detail"]
    # The ensemble abstains without the model: the rule table alone.
    ensemble = client.get("/regime/today", params={"policy": "ensemble"}).json()
    assert (ensemble["regime"], ensemble["exposure"]) == ("risk-off", 0.0)


def test_a_model_failing_its_sha256_check_leaves_the_rules_serving(settings, version, models_dir):
    onnx_file = models_dir / version / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes() + b"tampered")
    with running(settings) as client:
        today = client.get("/regime/today")
        assert today.status_code == 200
        assert today.json()["regime"] == "risk-off"
        day = client.get(f"/regime/{LAST}").json()  # the service's model now, not as published
        assert day["model"]["available"] is False and "sha256" in day["model"]["reason"]
        ready = client.get("/ready").json()
        assert ready["status"] == "degraded"
        assert ready["checks"]["model"]["ok"] is False
        assert "sha256" in ready["checks"]["model"]["detail"]
        refused = client.post(f"/admin/models/{version}/activate", headers=admin())
        assert refused.status_code == 422 and "sha256" in refused.json()["detail"]


def test_model_routes_refuse_bad_and_unknown_versions(client):
    listing = client.get("/models").json()
    assert (listing["active"], listing["loaded"], listing["models"]) == (None, False, [])
    assert "no model version found" in listing["reason"]
    malformed = client.get("/models/2012-01-01-ABCDEF")
    assert malformed.status_code == 422 and "not a valid name" in malformed.json()["detail"]
    assert client.get("/models/2012-01-01-abcdef").status_code == 404
    refused = client.post("/admin/models/..secret/activate", headers=admin())
    assert refused.status_code == 422
    unknown = client.post("/admin/models/2012-01-01-abcdef/activate", headers=admin())
    assert unknown.status_code == 404

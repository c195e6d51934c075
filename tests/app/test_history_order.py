"""/regimes newest first (`order=desc`) and the last N days (`latest=N`)."""

from __future__ import annotations


def dates(page: dict) -> list[str]:
    return [item["date"] for item in page["items"]]


def test_newest_first_pages_go_back_in_time(client):
    ascending = dates(client.get("/regimes", params={"limit": 5000}).json())
    seen: list[str] = []
    params: dict[str, object] = {"order": "desc", "limit": 120}
    while True:
        page = client.get("/regimes", params=params).json()
        seen += dates(page)
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == ascending[::-1]
    assert seen[0] == "2012-04-05"


def test_newest_first_within_a_span(client):
    page = client.get(
        "/regimes", params={"order": "desc", "start": "2012-03-01", "end": "2012-03-09"}
    ).json()
    assert dates(page) == [
        "2012-03-09",
        "2012-03-08",
        "2012-03-07",
        "2012-03-06",
        "2012-03-05",
        "2012-03-02",
        "2012-03-01",
    ]


def test_latest_gives_the_last_days_in_the_order_asked(client):
    last = client.get("/regimes", params={"latest": 3}).json()
    assert dates(last) == ["2012-04-03", "2012-04-04", "2012-04-05"]
    assert last["next_cursor"] is None
    newest = client.get("/regimes", params={"latest": 3, "order": "desc"}).json()
    assert dates(newest) == ["2012-04-05", "2012-04-04", "2012-04-03"]
    assert newest["items"][0]["regime"] == "risk-off"  # the last day's two votes
    before = client.get("/regimes", params={"latest": 2, "end": "2012-03-09"}).json()
    assert dates(before) == ["2012-03-08", "2012-03-09"]
    csv = client.get("/regimes", params={"latest": 1, "format": "csv"})
    assert csv.text.splitlines()[1].startswith("2012-04-05,risk-off")


def test_latest_and_order_are_checked(client):
    for params, field in (
        ({"latest": 0}, "query.latest"),
        ({"latest": 10**6}, "query.latest"),
        ({"order": "sideways"}, "query.order"),
    ):
        answer = client.get("/regimes", params=params)
        assert answer.status_code == 422, params
        assert answer.json()["errors"][0]["field"] == field
    both = client.get("/regimes", params={"latest": 2, "cursor": "2012-03-01"})
    assert both.status_code == 422

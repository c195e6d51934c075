"""The ledger's time queries compare instants, whatever the zone they are given in,
and publishing is serialised inside the transaction on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from store.ledger import append_publication, list_publications, publication_as_known_at
from store.locks import PUBLISH_LOCK, hold_for_transaction

DAY = dt.date(2024, 12, 31)
AT_EIGHT_UTC = dt.datetime(2025, 1, 2, 8, 0, tzinfo=dt.UTC)


def _publish(engine, published_at):
    with engine.begin() as connection:
        return append_publication(
            connection,
            day=DAY,
            policy="rules",
            rule_set_version="r",
            model_version=None,
            data_fingerprint="f" * 64,
            run_id=None,
            body={"as_of": DAY.isoformat(), "regime": "risk-on", "exposure": 1.0},
            published_at=published_at,
        )


@pytest.mark.parametrize(
    ("asked", "found"),
    [
        ("2025-01-02T09:00:00+02:00", False),  # 07:00 UTC: before the publication
        ("2025-01-02T10:30:00+02:00", True),  # 08:30 UTC
        ("2025-01-02T03:30:00-05:00", True),  # 08:30 UTC
        ("2025-01-02T02:59:00-05:00", False),  # 07:59 UTC
        ("2025-01-02T08:00:00", True),  # naive means UTC
    ],
)
def test_as_known_at_compares_instants_in_any_zone(engine, asked, found):
    published = _publish(engine, AT_EIGHT_UTC)
    with engine.connect() as connection:
        answer = publication_as_known_at(
            connection, day=DAY, policy="rules", known_at=dt.datetime.fromisoformat(asked)
        )
        since = list_publications(connection, since=dt.datetime.fromisoformat(asked))
    assert (answer is not None) is found
    if found:
        assert answer.id == published.id and answer.published_at == AT_EIGHT_UTC
    moment = dt.datetime.fromisoformat(asked)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    assert (len(since) == 1) is (AT_EIGHT_UTC >= moment)  # published at or after ``since``


@pytest.mark.postgres
def test_publishing_waits_for_another_transaction_publishing(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers by its file lock")
    entered = threading.Event()
    first = engine.connect()
    transaction = first.begin()
    hold_for_transaction(first, PUBLISH_LOCK)

    def second() -> None:
        with engine.begin() as connection:
            hold_for_transaction(connection, PUBLISH_LOCK)
            entered.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not entered.wait(0.5)  # blocked while the first transaction is open
    transaction.commit()
    first.close()
    assert entered.wait(5)
    thread.join()

"""The published made-up market and the `deepregime update` runner of the revision
tests, for the ingest tests that go through the whole cycle."""

from tests.operations.test_revisions import env, market, published  # noqa: F401

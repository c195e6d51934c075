"""A client of the deepregime market-regime service.

    from deepregime_client import Client

    with Client("http://localhost:8000") as client:
        report = client.today()
        print(report.as_of, report.regime, report.exposure)

``Client`` (blocking) and ``AsyncClient`` (awaited) share every operation,
retry and cache; ``WebhookVerifier`` checks signed webhook deliveries; a 4xx or
5xx answer raises ``ProblemError``.
"""

from deepregime_client._async import AsyncClient
from deepregime_client._exchange import Retry
from deepregime_client._sync import Client
from deepregime_client.errors import ProblemError, WebhookVerificationError
from deepregime_client.models import (
    BacktestResult,
    Problem,
    Publication,
    PublicationPage,
    RegimeChange,
    RegimePage,
    RegimeReport,
    RegimeRow,
    RuleSetPage,
    RuleSetReport,
    RuleSetRow,
    StrategyResult,
    SweepResultsPage,
    SweepStatus,
    VariantRow,
    WebhookEvent,
)
from deepregime_client.webhooks import WebhookVerifier

__all__ = [
    "AsyncClient",
    "BacktestResult",
    "Client",
    "Problem",
    "ProblemError",
    "Publication",
    "PublicationPage",
    "RegimeChange",
    "RegimePage",
    "RegimeReport",
    "RegimeRow",
    "Retry",
    "RuleSetPage",
    "RuleSetReport",
    "RuleSetRow",
    "StrategyResult",
    "SweepResultsPage",
    "SweepStatus",
    "VariantRow",
    "WebhookEvent",
    "WebhookVerificationError",
    "WebhookVerifier",
]

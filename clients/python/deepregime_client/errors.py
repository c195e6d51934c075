"""What the client raises.

An answer of 4xx or 5xx is a ``ProblemError`` carrying the service's RFC 9457
problem body (``application/problem+json``). A network failure that outlived
the retries is raised as httpx raised it (``httpx.TransportError``), and a
webhook that fails verification as ``WebhookVerificationError``.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import ValidationError
from standardwebhooks import WebhookVerificationError

from deepregime_client.models import Problem

__all__ = ["ProblemError", "WebhookVerificationError"]


class ProblemError(Exception):
    """The service refused or failed a request; ``problem`` is its RFC 9457 body.

    ``status``, ``title``, ``detail`` and ``cause`` (which database fault a 503 is)
    are the body's; ``errors`` lists the bad fields as the service named them
    (``{"field", "message", ...}``) and ``fields`` just their names;
    ``retry_after_s`` is the service's ``Retry-After``, when it sent one.
    """

    def __init__(self, problem: Problem, retry_after_s: float | None = None) -> None:
        super().__init__(f"{problem.status} {problem.title}: {problem.detail}")
        self.problem = problem
        self.retry_after_s = retry_after_s

    @property
    def status(self) -> int:
        return self.problem.status

    @property
    def title(self) -> str:
        return self.problem.title

    @property
    def detail(self) -> str:
        return self.problem.detail

    @property
    def cause(self) -> str | None:
        return self.problem.cause

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.problem.errors or []

    @property
    def fields(self) -> list[str]:
        """The names of the fields the service named as bad (``query.limit``, ...)."""
        return [str(error["field"]) for error in self.errors if "field" in error]

    @classmethod
    def from_response(
        cls, response: httpx.Response, retry_after_s: float | None = None
    ) -> ProblemError:
        """The problem in ``response``. A body that is not a problem (a proxy's error
        page) still gives the status, with the start of the body as the detail."""
        try:
            return cls(Problem.model_validate_json(response.content), retry_after_s)
        except ValidationError:
            title = response.reason_phrase
            detail = response.text.strip()[:500] or title
            problem = Problem(title=title, status=response.status_code, detail=detail)
            return cls(problem, retry_after_s)

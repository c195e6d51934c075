"""Reading ``/regime/stream`` across dropped connections, without I/O.

The service sends each publication as an event whose id is its ledger id, and on
a connection carrying ``Last-Event-ID`` replays every publication after that id
(app/routes_stream.py). ``StreamCursor`` remembers the last id handed to the
caller and sends it on every reconnection, so nothing is skipped, and drops any
event at or below it, so nothing is handed twice. It waits the service's
``retry:`` hint before reconnecting (or backs off when there is none), within
``Retry``'s bounds counted from the last successful connection.
"""

from __future__ import annotations

import httpx
from httpx_sse import ServerSentEvent

from deepregime_client._exchange import Retry, RetryBudget, retry_after_s
from deepregime_client.errors import ProblemError
from deepregime_client.models import RegimeReport

PATH = "/regime/stream"
EVENT = "regime"


class StreamCursor:
    def __init__(self, retry: Retry, last_event_id: int | None = None) -> None:
        self.retry = retry
        self.last_event_id = last_event_id
        self.reconnect_s: float | None = None  # the service's retry: hint
        self._budget = RetryBudget(retry)

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = str(self.last_event_id)
        return headers

    def opened(self, response: httpx.Response) -> float | None:
        """None when ``response`` is the stream (the bounds start afresh); else the
        seconds to wait before connecting again. Raises ``ProblemError`` when the
        answer is a problem not worth retrying (read the body first)."""
        if response.is_success:
            self._budget = RetryBudget(self.retry)
            return None
        delay = self._budget.after_response(response)
        if delay is None:
            raise ProblemError.from_response(
                response, retry_after_s(response.headers.get("retry-after"))
            )
        return delay

    def accept(self, event: ServerSentEvent) -> RegimeReport | None:
        """The publication ``event`` carries, or None for anything else (the retry
        hint, comments, an event already handed out)."""
        if event.retry is not None:
            self.reconnect_s = event.retry / 1000
        if event.event != EVENT or not event.id.isdigit():
            return None
        event_id = int(event.id)
        if self.last_event_id is not None and event_id <= self.last_event_id:
            return None
        report = RegimeReport.model_validate_json(event.data)
        self.last_event_id = event_id
        return report

    def dropped(self, error: httpx.TransportError) -> float:
        """Seconds to wait before reconnecting after ``error``; raises it once the
        bounds are spent."""
        wait = self.reconnect_s if self.reconnect_s is not None else self._budget.backoff()
        delay = self._budget.spend(wait)
        if delay is None:
            raise error
        return delay

    def ended(self) -> float:
        """Seconds to wait before reconnecting after the service closed the stream
        (it restarts or shuts down): as a browser's EventSource does."""
        return self.reconnect_s if self.reconnect_s is not None else self.retry.backoff_s

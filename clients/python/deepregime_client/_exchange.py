"""One request/answer exchange, without I/O: retries, ETag revalidation, problems.

``exchange(call, ...)`` is a generator that says what to do next: it yields an
``httpx.Request`` to send (and is sent the response, or thrown the transport
error), or a number of seconds to sleep; it returns the parsed answer or raises
``ProblemError``. ``perform(plan, ...)`` chains the exchanges of an operation's
calls. ``Client`` drives them with blocking calls and ``AsyncClient`` with
awaits, so both behave the same by construction.

When a request is tried again:

- a 503 or 429 carrying ``Retry-After``, after that long (the service leaves the
  header out where retrying cannot help: a full disk, a read-only database);
- a failure to connect, for every request (nothing reached the service);
- any other network failure (a dropped connection, a read timeout) only for
  idempotent requests: GETs, and POSTs that carry an ``Idempotency-Key``;

each within ``Retry``'s bounds: ``max_attempts`` tries in all and ``max_wait_s``
seconds of sleeping in all. A wait that would cross the bound is not started:
the last answer is raised at once.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from deepregime_client.errors import ProblemError

T = TypeVar("T")

RETRIED_STATUSES = (429, 503)
# Failures where the request cannot have reached the service.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)

WIRE_HEADERS = {"content-encoding", "content-length", "transfer-encoding"}

Step = httpx.Request | float  # a request to send, or seconds to sleep
BuildRequest = Callable[..., httpx.Request]


@dataclass(frozen=True)
class Retry:
    """Bounds on trying a request again."""

    max_attempts: int = 4  # tries in all, the first included
    max_wait_s: float = 30.0  # seconds slept between tries, in all
    backoff_s: float = 0.5  # first pause after a network failure, doubled each time
    max_backoff_s: float = 8.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.max_wait_s < 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError(f"waits must not be negative: {self}")


def retry_after_s(value: str | None, now: dt.datetime | None = None) -> float | None:
    """``Retry-After`` in seconds (delay-seconds or an HTTP date); None when absent or
    unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return max(0.0, (moment - (now or dt.datetime.now(dt.UTC))).total_seconds())


@dataclass
class RetryBudget:
    """What is left of ``Retry``'s bounds for one request."""

    retry: Retry
    attempts: int = 1
    waited_s: float = 0.0

    def after_response(self, response: httpx.Response) -> float | None:
        """Seconds to wait before trying again, or None to give this answer back."""
        if response.status_code not in RETRIED_STATUSES:
            return None
        delay = retry_after_s(response.headers.get("retry-after"))
        return None if delay is None else self.spend(delay)

    def after_failure(self, error: httpx.TransportError, *, idempotent: bool) -> float | None:
        """Seconds to wait before trying again, or None to raise ``error``."""
        if not (idempotent or isinstance(error, NOT_SENT)):
            return None
        return self.spend(self.backoff())

    def backoff(self) -> float:
        return min(self.retry.max_backoff_s, self.retry.backoff_s * 2 ** (self.attempts - 1))

    def spend(self, delay: float) -> float | None:
        """Take one more try after ``delay`` seconds, if the bounds allow it."""
        if self.attempts >= self.retry.max_attempts:
            return None
        if self.waited_s + delay > self.retry.max_wait_s:
            return None
        self.attempts += 1
        self.waited_s += delay
        return delay


@dataclass(frozen=True)
class _Cached:
    etag: str
    status_code: int
    headers: httpx.Headers
    content: bytes


class ETagCache:
    """The last answer of each GET that carried an ``ETag``, by URL, least recently used
    dropped first; safe to share between threads."""

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Cached] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> _Cached | None:
        with self._lock:
            found = self._entries.get(url)
            if found is not None:
                self._entries.move_to_end(url)
            return found

    def put(self, url: str, response: httpx.Response) -> None:
        etag = response.headers.get("etag")
        if etag is None or self.max_entries <= 0:
            return
        # The body is kept decoded: headers that describe its encoding on the wire go.
        headers = httpx.Headers(
            [(k, v) for k, v in response.headers.multi_items() if k.lower() not in WIRE_HEADERS]
        )
        entry = _Cached(etag, response.status_code, headers, response.content)
        with self._lock:
            self._entries[url] = entry
            self._entries.move_to_end(url)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One operation of the service: what to send and how to read the answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    idempotent: bool = True

    def request(self, build: BuildRequest) -> httpx.Request:
        return build(
            self.method,
            self.path,
            params=self.params or None,
            json=self.json,
            headers=self.headers or None,
        )


def exchange(
    call: Call[T], build: BuildRequest, retry: Retry, cache: ETagCache
) -> Generator[Step, httpx.Response | None, T]:
    """The steps of one call; see the module docstring."""
    budget = RetryBudget(retry)
    while True:
        request = call.request(build)
        cached = cache.get(str(request.url)) if call.method == "GET" else None
        if cached is not None:
            request.headers["If-None-Match"] = cached.etag
        try:
            response = yield request
        except httpx.TransportError as error:
            delay = budget.after_failure(error, idempotent=call.idempotent)
            if delay is None:
                raise
            yield delay
            continue
        assert response is not None
        if response.status_code == 304 and cached is not None:
            # Unchanged: the body we hold, with the headers of this answer.
            headers = httpx.Headers(cached.headers)
            headers.update({k: v for k, v in response.headers.items() if k not in WIRE_HEADERS})
            response = httpx.Response(
                cached.status_code, headers=headers, content=cached.content, request=request
            )
        elif call.method == "GET" and response.is_success:
            cache.put(str(request.url), response)
        if response.is_success:
            return call.parse(response)
        delay = budget.after_response(response)
        if delay is None:
            raise ProblemError.from_response(
                response, retry_after_s(response.headers.get("retry-after"))
            )
        yield delay


# What an operation asks for: one call, or calls in turn (each sent the answer to the
# one before) ending with the result.
Plan = Call[T] | Generator[Call[Any], Any, T]


def perform(
    plan: Plan[T], build: BuildRequest, retry: Retry, cache: ETagCache
) -> Generator[Step, httpx.Response | None, T]:
    """The steps of every call of ``plan``, in turn; returns its result."""
    if isinstance(plan, Call):
        return (yield from exchange(plan, build, retry, cache))
    answer: Any = None
    while True:
        try:
            call = plan.send(answer)
        except StopIteration as done:
            return done.value
        answer = yield from exchange(call, build, retry, cache)

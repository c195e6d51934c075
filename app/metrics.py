"""Prometheus metrics: requests and latencies per route template, data age, active model.

Each app owns its registry (no process-global state), so several apps can
live in one process (tests) without clashing names. The middleware is plain
ASGI: it costs a few microseconds a request, unlike ``BaseHTTPMiddleware``.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Latency buckets (seconds) around the /regime/today target of 20 ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
UNMATCHED = "<unmatched>"  # one label for every unknown path, so labels stay few


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.requests = Counter(
            "deepregime_http_requests",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "deepregime_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.data_age_days = Gauge(
            "deepregime_data_age_days",
            "Calendar days between the latest regime day and now (NaN when unknown).",
            registry=self.registry,
        )
        self.data_lag_sessions = Gauge(
            "deepregime_data_lag_sessions",
            "NYSE sessions the data is behind the last closed session (NaN when unknown).",
            registry=self.registry,
        )
        self.data_stale = Gauge(
            "deepregime_data_stale",
            "1 when the data lags by more than DEEPREGIME_MAX_DATA_LAG_DAYS sessions "
            "(/regime/today flags it stale, /ready is degraded), else 0; NaN when unknown.",
            registry=self.registry,
        )
        self.active_model = Gauge(
            "deepregime_active_model",
            "1 for the model version serving; absent when none is loaded.",
            ["version"],
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # The labelled children are looked up once per (method, route, status): the
        # lookup costs more than the increment, on every request.
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def set_active_model(self, version: str | None) -> None:
        self.active_model.clear()
        if version is not None:
            self.active_model.labels(version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times each HTTP request under its route template (``/regime/{day}``)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)

"""Prometheus metrics: request counts and latencies per route, events accepted.

Each app gets its own registry so several apps (tests) never collide on metric names."""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("paperrec_http_requests", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "paperrec_http_request_duration_seconds", "HTTP request latency",
            ["method", "route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.events_accepted = Counter("paperrec_events_accepted", "Events stored",
                                       registry=self.registry)
        self.recommendations = Counter("paperrec_recommendations_served",
                                       "Recommendation lists served", ["strategy"],
                                       registry=self.registry)


class MetricsMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next):
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            # Label by route template, not raw path: /papers/{paper_id}, not one per paper.
            path = getattr(route, "path", "unmatched")
            metrics: Metrics = request.app.state.metrics
            metrics.requests.labels(request.method, path, str(status)).inc()
            metrics.latency.labels(request.method, path).observe(time.perf_counter() - start)

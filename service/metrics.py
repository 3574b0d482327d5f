"""Prometheus metrics and the ASGI middleware that records them (cheap: no per-request objects).

Multiprocess mode: every worker writes its samples to files in one folder and /metrics sums
the files, so a scrape sees the whole server whichever worker answers it. prometheus_client
picks its value store when a metric is created, from PROMETHEUS_MULTIPROC_DIR: hence the
folder is chosen here, at import, before the metrics below exist.
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import psutil
from starlette.routing import Match, Mount

_OWNER = "FORECASTER_METRICS_SERVER"  # marks a PROMETHEUS_MULTIPROC_DIR we chose, not the operator


def _server_id(pid: int) -> str | None:
    try:
        return f"{pid}-{int(psutil.Process(pid).create_time() * 1000)}"
    except psutil.Error:
        return None


def _multiprocess_dir() -> str:
    """PROMETHEUS_MULTIPROC_DIR as the operator set it, or a fresh folder per server.

    uvicorn's workers are children of its supervisor, so they share the supervisor's pid; a
    single-process server is its own. The folder carries that pid and start time, so a server
    never reads the files of an earlier one; folders of servers no longer running are deleted.
    Under another process manager (gunicorn), set PROMETHEUS_MULTIPROC_DIR and empty it on start.
    """
    parent = multiprocessing.parent_process()
    server = _server_id(parent.pid if parent else os.getpid()) or str(os.getpid())
    given, owner = os.environ.get("PROMETHEUS_MULTIPROC_DIR"), os.environ.get(_OWNER)
    if given and (owner is None or owner == server):  # the operator's, or ours inherited by a worker
        return given
    root = Path(tempfile.gettempdir())
    for old in root.glob("forecaster-metrics-*"):
        found = re.fullmatch(r"forecaster-metrics-(\d+)-(\d+)", old.name)
        if found and _server_id(int(found[1])) != f"{found[1]}-{found[2]}":
            shutil.rmtree(old, ignore_errors=True)
    folder = root / f"forecaster-metrics-{server}"
    folder.mkdir(exist_ok=True)
    os.environ[_OWNER] = server
    return str(folder)


os.environ["PROMETHEUS_MULTIPROC_DIR"] = _multiprocess_dir()

from prometheus_client import (  # noqa: E402  (after the folder is set)
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily  # noqa: E402

if values.ValueClass is values.MutexValue:  # prometheus_client was imported before the folder was set
    values.ValueClass = values.get_value_class()

registry = CollectorRegistry()  # holds this process's metrics; /metrics reads every worker's files
REQUESTS = Counter("http_requests_total", "HTTP requests", ["route", "method", "status"], registry=registry)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=registry,
)
INFERENCE = Histogram(
    "model_inference_seconds",
    "Model call latency (memberships, experts, fusion, intervals)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
    registry=registry,
)
# 1 while any live worker serves that version: during a hot reload two versions can show.
MODEL_VERSION = Gauge(
    "model_info",
    "The served model (value 1)",
    ["name", "version", "alias"],
    registry=registry,
    multiprocess_mode="livemax",
)
_published: set[tuple[str, str, str]] = set()


def publish_model_info(labels: tuple[str, str, str] | None) -> None:
    """Mark the model this worker serves; `None` when it serves none."""
    for old in _published - {labels}:  # a worker's file keeps a label set until set to 0
        MODEL_VERSION.labels(*old).set(0)
    _published.clear()
    if labels:
        MODEL_VERSION.labels(*labels).set(1)
        _published.add(labels)


class _RegimeGauge:
    """Tickers per regime label, counted from the forecast store at scrape time.

    Not a per-worker gauge: summed over workers it would count a ticker once per worker that
    served it, and each worker would keep tickers it stopped serving. The store has one
    latest forecast per ticker, the same whichever worker answers the scrape.
    """

    def __init__(self, counts: dict[str, int]):
        self.counts = counts

    def collect(self):
        gauge = GaugeMetricFamily(
            "forecast_tickers_by_regime",
            "Tickers in each regime, by the latest forecast the batch job stored for each",
            labels=["regime"],
        )
        for label, count in sorted(self.counts.items()):
            gauge.add_metric([label], count)
        yield gauge


def latest(regimes: dict[str, int] | None = None) -> tuple[bytes, str]:
    """The text exposition of every worker's metrics (and the regime gauge), and its content type."""
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    # uvicorn restarts a dead worker without telling prometheus_client: drop its live gauges.
    for path in glob.glob(os.path.join(folder, "gauge_live*_*.db")):
        pid = int(path.rsplit("_", 1)[1].removesuffix(".db"))
        if not psutil.pid_exists(pid):
            multiprocess.mark_process_dead(pid, folder)
    scrape = CollectorRegistry()
    multiprocess.MultiProcessCollector(scrape, folder)
    scrape.register(_RegimeGauge(regimes or {}))
    return generate_latest(scrape), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500
        path, root_path = scope["path"], scope.get("root_path", "")  # a mount rewrites them

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or _route_label(scope, path, root_path)
            REQUESTS.labels(label, scope["method"], str(status)).inc()
            LATENCY.labels(label).observe(time.perf_counter() - start)


def _route_label(scope, path: str, root_path: str) -> str:
    """The route template of a request FastAPI did not label: its own docs routes, static mounts,
    requests the guard refused before routing. Templates keep label values bounded."""
    probe = {"type": "http", "path": path, "root_path": root_path, "method": scope["method"]}
    return _find_template(scope["app"].routes, probe) or "unmatched"


def _find_template(routes, probe) -> str | None:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI wraps included routers
        if included is not None:
            if found := _find_template(included.routes, probe):
                return found
        elif route.matches(probe)[0] is Match.FULL:
            return f"{route.path}/{{path}}" if isinstance(route, Mount) else route.path
    return None

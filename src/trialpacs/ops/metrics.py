"""Prometheus metrics: what the process did, and what the deployment holds.

Two kinds, on one registry per application:

* process counters kept by the web layer (requests, latencies by route
  template), which Prometheus sums over the N servers of a deployment;
* deployment gauges and counters read from the shared index at scrape time
  (instances stored per collection, pipeline series and published instances,
  the job queue, bytes per storage backend). Every server reports the same
  values for these, so dashboards take ``max`` across instances, and the
  numbers stay right however work is spread over servers and Celery workers,
  which never need a port of their own. Ingest and pipeline *rates* are
  ``rate()`` of these counters.

Reading the index costs a few aggregate queries (a full scan of ``instances``
for bytes per backend), so the answer is cached for ``cache_seconds``.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from trialpacs.archive import Archive
from trialpacs.index.models import Instance, Study
from trialpacs.trials.models import Job, PipelineSeries

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class IndexFigures:
    """One reading of the shared index."""

    studies: dict[str, int] = field(default_factory=dict)
    instances: dict[str, int] = field(default_factory=dict)
    bytes_by_store: dict[str, int] = field(default_factory=dict)
    series_by_state: dict[str, int] = field(default_factory=dict)
    published_instances: int = 0
    jobs_by_state: dict[str, int] = field(default_factory=dict)
    broker_queue: int | None = None
    local_free_bytes: int | None = None
    read_seconds: float = 0.0


def read_figures(archive: Archive) -> IndexFigures:
    t0 = time.perf_counter()
    figures = IndexFigures()
    with archive.db.read() as session:
        for collection, studies, instances in session.execute(
            select(
                Study.collection, func.count(), func.coalesce(func.sum(Study.num_instances), 0)
            ).group_by(Study.collection)
        ):
            figures.studies[collection] = int(studies)
            figures.instances[collection] = int(instances)
        store = func.coalesce(Instance.store, "published")
        for name, size in session.execute(
            select(store, func.coalesce(func.sum(Instance.size), 0)).group_by(store)
        ):
            figures.bytes_by_store[str(name)] = int(size)
        for state, count, published in session.execute(
            select(
                PipelineSeries.state,
                func.count(),
                func.coalesce(func.sum(PipelineSeries.published_instances), 0),
            ).group_by(PipelineSeries.state)
        ):
            figures.series_by_state[state] = int(count)
            figures.published_instances += int(published)
        for state, count in session.execute(select(Job.state, func.count()).group_by(Job.state)):
            figures.jobs_by_state[state] = int(count)
    settings = archive.settings
    if settings.pipeline_executor == "celery" and settings.celery_broker_url.startswith("redis"):
        figures.broker_queue = _redis_queue_length(
            settings.celery_broker_url, settings.celery_queue
        )
    if settings.storage == "local":
        figures.local_free_bytes = shutil.disk_usage(settings.resolved_storage_dir()).free
    figures.read_seconds = time.perf_counter() - t0
    return figures


def _redis_queue_length(url: str, queue: str) -> int | None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            return int(client.llen(queue))
        finally:
            client.close()
    except redis.RedisError:
        return None


class IndexCollector(Collector):
    """Deployment figures from the index, cached so scrapes stay cheap at scale."""

    def __init__(self, archive: Archive, cache_seconds: float = 15.0) -> None:
        self.archive = archive
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, IndexFigures] | None = None

    def figures(self) -> IndexFigures:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > self.cache_seconds:
                self._cached = (now, read_figures(self.archive))
            return self._cached[1]

    def collect(self) -> Iterator[Metric]:
        f = self.figures()
        yield _labelled(
            GaugeMetricFamily, "trialpacs_studies", "Studies in the index.", "collection",
            f.studies,
        )  # fmt: skip
        yield _labelled(
            CounterMetricFamily,
            "trialpacs_instances_stored",
            "Instances in the index (ingest rate: rate() of this).",
            "collection",
            f.instances,
        )
        yield _labelled(
            GaugeMetricFamily,
            "trialpacs_storage_bytes",
            "Bytes of instances per storage backend.",
            "store",
            f.bytes_by_store,
        )
        yield _labelled(
            GaugeMetricFamily,
            "trialpacs_pipeline_series",
            "Identified series by pipeline state.",
            "state",
            f.series_by_state,
        )
        published = CounterMetricFamily(
            "trialpacs_pipeline_published_instances",
            "De-identified instances the pipeline published (pipeline rate: rate() of this).",
        )
        published.add_metric([], f.published_instances)
        yield published
        yield _labelled(
            GaugeMetricFamily, "trialpacs_jobs", "Pipeline jobs by state.", "state",
            f.jobs_by_state,
        )  # fmt: skip
        depth = GaugeMetricFamily(
            "trialpacs_pipeline_queue_depth", "Pipeline jobs waiting for a worker."
        )
        depth.add_metric([], f.jobs_by_state.get("pending", 0))
        yield depth
        if f.broker_queue is not None:
            broker = GaugeMetricFamily(
                "trialpacs_celery_queue_length", "Messages waiting in the Celery queue."
            )
            broker.add_metric([], f.broker_queue)
            yield broker
        if f.local_free_bytes is not None:
            free = GaugeMetricFamily(
                "trialpacs_storage_free_bytes", "Free bytes on the local blob store's disk."
            )
            free.add_metric([], f.local_free_bytes)
            yield free
        took = GaugeMetricFamily(
            "trialpacs_metrics_index_read_seconds", "How long the last index reading took."
        )
        took.add_metric([], f.read_seconds)
        yield took


def _labelled(kind: Any, name: str, doc: str, label: str, values: dict[str, int]) -> Metric:
    metric = kind(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        metric.add_metric([key], value)
    return metric


@dataclass
class Metrics:
    """The registry of one application and the process counters the web layer updates."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


def create_metrics(archive: Archive, extra: Iterable[Collector] = ()) -> Metrics:
    registry = CollectorRegistry(auto_describe=False)
    requests = Counter(
        "trialpacs_http_requests",
        "HTTP requests by route template and status.",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "trialpacs_http_request_duration_seconds",
        "HTTP request latency by route template (until the response is sent).",
        ["method", "route"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    ProcessCollector(registry=registry)  # CPU, memory, open files of this process
    registry.register(IndexCollector(archive, archive.settings.metrics_cache_seconds))
    for collector in extra:
        registry.register(collector)
    return Metrics(registry=registry, requests=requests, latency=latency)

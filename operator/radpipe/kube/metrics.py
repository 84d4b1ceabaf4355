"""Prometheus metrics of the operator (served on ``/metrics``).

Gauges are computed from the ledger at scrape time, so they are right after a restart
too; histograms and counters count what this process observed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from radpipe.kube.queue import Ledger

_DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)


class _LedgerCollector(Collector):
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def collect(self) -> Iterator[Metric]:
        phases, waiting, running = self._ledger.counts()
        jobs = GaugeMetricFamily(
            "radpipe_analysisjobs",
            "AnalysisJobs by namespace and phase",
            labels=["namespace", "phase"],
        )
        for (namespace, phase), count in sorted(phases.items()):
            jobs.add_metric([namespace, phase], count)
        yield jobs
        queue = GaugeMetricFamily(
            "radpipe_queue_depth",
            "AnalysisJobs waiting for a free stage slot",
            labels=["namespace"],
        )
        for namespace, count in sorted(waiting.items()):
            queue.add_metric([namespace], count)
        yield queue
        active = GaugeMetricFamily(
            "radpipe_stage_jobs_running", "stage Jobs holding a slot", labels=["namespace"]
        )
        for namespace, count in sorted(running.items()):
            active.add_metric([namespace], count)
        yield active


class Metrics:
    """The operator's metrics, in a registry of its own (tests create several)."""

    def __init__(self, ledger: Ledger) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_LedgerCollector(ledger))
        self.stage_seconds = Histogram(
            "radpipe_stage_duration_seconds",
            "wall time of a stage attempt, from Job creation to its observed end",
            ["app", "stage", "outcome"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.retries = Counter(
            "radpipe_stage_retries",
            "stage attempts that failed and will be retried",
            ["app", "stage"],
            registry=self.registry,
        )
        self.finished = Counter(
            "radpipe_analysisjobs_finished",
            "AnalysisJobs that reached a final phase",
            ["app", "phase"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "radpipe_reconcile_duration_seconds",
            "time one reconcile took",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.handoff_seconds = Histogram(
            "radpipe_stage_handoff_seconds",
            "from the operator seeing a stage Job finish to creating the next stage's Job",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Serve /metrics over HTTP from a background thread."""
        start_http_server(port, addr=addr, registry=self.registry)

    def timer(self) -> Callable[[], None]:
        """Start timing a reconcile; call the result to record it."""
        import time

        start = time.perf_counter()
        return lambda: self.reconcile_seconds.observe(time.perf_counter() - start)

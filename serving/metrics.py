"""Prometheus metrics of serving (prometheus_client), one set for all uvicorn workers.

With several workers, :func:`multiprocess_dir` (used by :mod:`serving.server`) gives them a
``PROMETHEUS_MULTIPROC_DIR``: prometheus_client's multiprocess mode then writes every worker's
values to memory-mapped files there, and a scrape of any worker sums all of them (counters never
go backwards; a dead worker's counts stay). Per-worker process figures are kept the same way:
``process_cpu_seconds_total`` (all workers, dead ones included), ``process_resident_memory_bytes``
(live workers) and ``mlforge_workers``. Without that variable (one worker, tests) each app has its
own registry with prometheus_client's standard process collector.

The request path only touches cached ``.labels(...)`` children (:meth:`Metrics.observe`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    multiprocess,
    values,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from mlforge.monitoring.prediction_log import PredictionLogger

log = logging.getLogger("mlforge.serving")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
NO_VARIANT = "none"  # label of requests refused before routing (404, 422, 503)
SYNC_INTERVAL_S = (
    1.0  # how often a worker writes its gauges (revisions, log buffer, process) in multiprocess mode
)
_NOT_ROUTED = {NO_VARIANT: 0}


def multiprocess_mode() -> bool:
    """True when prometheus_client was imported with ``PROMETHEUS_MULTIPROC_DIR`` set."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


class Metrics:
    """Request counters, latency histograms and per-worker gauges of one serving app."""

    def __init__(self, logger: PredictionLogger | None = None) -> None:
        self.multiprocess = multiprocess_mode()
        # multiprocess: values live in the shared files, collected at scrape time (no registry)
        registry = None if self.multiprocess else CollectorRegistry()
        self.registry = registry
        self.logger = logger
        self.requests = Counter(
            "mlforge_requests",
            "Prediction requests by endpoint, answering variant and HTTP status (a request answered by "
            "two variants counts once for each).",
            ("endpoint", "variant", "status"),
            registry=registry,
        )
        self.errors = Counter(
            "mlforge_errors",
            "Prediction requests answered with a 4xx/5xx status.",
            ("endpoint", "variant", "status"),
            registry=registry,
        )
        self.predictions = Counter(
            "mlforge_predictions",
            "Rows scored, by endpoint, variant and shadow.",
            ("endpoint", "variant", "shadow"),
            registry=registry,
        )
        self.latency = Histogram(
            "mlforge_request_latency_seconds",
            "Prediction request latency in the app (routing, features, scoring), by endpoint and variant.",
            ("endpoint", "variant"),
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.revision = Gauge(
            "mlforge_manifest_revision",
            "Manifest revision each endpoint serves (per worker: a pid label with several workers).",
            ("endpoint",),
            multiprocess_mode="liveall",
            registry=registry,
        )
        self._log_seen = [0, 0]  # written, dropped rows already counted
        if logger is not None:
            self.log_buffered = Gauge(
                "mlforge_prediction_log_buffered_rows",
                "Prediction-log rows waiting for a flush.",
                multiprocess_mode="livesum",
                registry=registry,
            )
            self.log_written = Counter(
                "mlforge_prediction_log_written_rows", "Prediction-log rows written.", registry=registry
            )
            self.log_dropped = Counter(
                "mlforge_prediction_log_dropped_rows", "Rows dropped (buffer full).", registry=registry
            )
        if self.multiprocess:
            self._cpu_seen = 0.0
            self.cpu = Counter(
                "process_cpu_seconds",
                "User and system CPU time of the serving workers, in seconds.",
                registry=registry,
            )
            self.rss = Gauge(
                "process_resident_memory_bytes",
                "Resident memory of the live serving workers, in bytes.",
                multiprocess_mode="livesum",
                registry=registry,
            )
            self.workers = Gauge(
                "mlforge_workers",
                "Live serving worker processes.",
                multiprocess_mode="livesum",
                registry=registry,
            )
            self.workers.set(1)
        else:
            ProcessCollector(registry=registry)
        # (endpoint, variant, status) -> (requests, errors or None, predictions, latency) children
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any, Any]] = {}
        self._shadow: dict[tuple[str, str], Any] = {}

    # -- the request path ---------------------------------------------------------------------

    def _child(self, endpoint: str, variant: str, status: int) -> tuple[Any, Any, Any, Any]:
        code = str(status)
        child = (
            self.requests.labels(endpoint, variant, code),
            self.errors.labels(endpoint, variant, code) if status >= 400 else None,
            self.predictions.labels(endpoint, variant, "false") if variant != NO_VARIANT else None,
            self.latency.labels(endpoint, variant),
        )
        self._children[(endpoint, variant, status)] = child
        return child

    def observe(self, endpoint: str, variants: dict[str, int], status: int, seconds: float) -> None:
        """One request: its status and latency, once per variant that answered rows of it."""
        children = self._children
        for variant, rows in (variants or _NOT_ROUTED).items():
            child = children.get((endpoint, variant, status)) or self._child(endpoint, variant, status)
            child[0].inc()
            if child[1] is not None:
                child[1].inc()
            if rows and child[2] is not None:
                child[2].inc(rows)
            child[3].observe(seconds)

    def shadow_rows(self, endpoint: str, variant: str, rows: int) -> None:
        """Rows a shadow variant scored."""
        child = self._shadow.get((endpoint, variant))
        if child is None:
            child = self._shadow[(endpoint, variant)] = self.predictions.labels(endpoint, variant, "true")
        child.inc(rows)

    # -- gauges and scrapes -------------------------------------------------------------------

    def sync(self, revisions: Mapping[str, int]) -> None:
        """Write this worker's gauges: served revisions, the prediction-log counts, process figures."""
        for endpoint, revision in revisions.items():
            self.revision.labels(endpoint).set(revision)
        logger = self.logger
        if logger is not None:
            self.log_buffered.set(logger.buffered_rows)
            written, dropped = logger.written_rows, logger.dropped_rows
            if written > self._log_seen[0]:
                self.log_written.inc(written - self._log_seen[0])
            if dropped > self._log_seen[1]:
                self.log_dropped.inc(dropped - self._log_seen[1])
            self._log_seen = [written, dropped]
        if self.multiprocess:
            cpu = time.process_time()
            if cpu > self._cpu_seen:
                self.cpu.inc(cpu - self._cpu_seen)
                self._cpu_seen = cpu
            rss = _resident_bytes()
            if rss is not None:
                self.rss.set(rss)

    async def sync_loop(self, revisions: Any) -> None:
        """Call :meth:`sync` every second (multiprocess mode: other workers' scrapes read the files)."""
        while True:
            try:
                self.sync(revisions())
            except Exception as exc:  # pragma: no cover - a gauge must never stop the worker
                log.warning("metrics sync failed: %s", exc)
            await asyncio.sleep(SYNC_INTERVAL_S)

    def render(self, revisions: Mapping[str, int]) -> bytes:
        """The exposition text (format 0.0.4) of every metric: of all workers in multiprocess mode."""
        self.sync(revisions)
        if self.registry is not None:
            return exposition(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return exposition(registry)

    def close(self) -> None:
        """This worker stops: its live gauges leave the shared files (its counters stay)."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())


_LABEL_ORDER = {name: i for i, name in enumerate(("endpoint", "variant", "status", "shadow", "le", "pid"))}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(registry: Collector) -> bytes:
    """Prometheus text format 0.0.4 of `registry`, labels in their declared order.

    Like ``prometheus_client.generate_latest`` except that labels come in one fixed order
    (endpoint, variant, status/shadow, le, pid — the client sorts them by name) and the OpenMetrics-only ``*_created``
    samples are left out.
    """
    out: list[str] = []
    for metric in registry.collect():
        name = metric.name + "_total" if metric.type == "counter" else metric.name
        kind = "untyped" if metric.type == "unknown" else metric.type
        doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
        skip = (metric.name + "_created", metric.name + "_gsum", metric.name + "_gcount")
        for sample in metric.samples:
            if sample.name in skip:
                continue
            if sample.labels:
                items = sorted(
                    sample.labels.items(), key=lambda kv: _LABEL_ORDER.get(kv[0], len(_LABEL_ORDER))
                )
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in items)
                out.append(f"{sample.name}{{{labels}}} {floatToGoString(sample.value)}\n")
            else:
                out.append(f"{sample.name} {floatToGoString(sample.value)}\n")
    return "".join(out).encode("utf-8")


def _resident_bytes() -> int | None:
    """Resident set size of this process (Linux), or None."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------------------------------------
# The multiprocess directory (in the parent process of several workers)
# ---------------------------------------------------------------------------------------------


def _dead(pid: int) -> bool:
    """True when `pid` is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        return True
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def mark_dead_workers(path: Path, marked: set[int]) -> None:
    """``mark_process_dead`` for every process with files in `path` that is no longer alive."""
    me = os.getpid()
    for f in path.glob("*.db"):
        tail = f.stem.rsplit("_", 1)[-1]
        if not tail.isdigit():
            continue
        pid = int(tail)
        if pid in marked or pid == me or not _dead(pid):
            continue
        multiprocess.mark_process_dead(pid, str(path))
        marked.add(pid)
        log.info("metrics: worker %d is gone; its live gauges are dropped", pid)


@contextlib.contextmanager
def multiprocess_dir(poll_s: float = 1.0) -> Iterator[Path]:
    """``PROMETHEUS_MULTIPROC_DIR`` for the workers started inside this block.

    A fresh temporary directory, owned and removed on exit by this (parent) process, unless the
    variable is set: then that directory is created if needed and emptied of old ``*.db`` files.
    While the block runs, a thread marks workers that died (``mark_process_dead``).
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):
            old.unlink()
    else:
        path = Path(tempfile.mkdtemp(prefix="mlforge-metrics-"))
        os.environ[MULTIPROC_ENV] = str(path)
    log.info("metrics: workers share %s", path)
    stop = threading.Event()
    marked: set[int] = set()

    def watch() -> None:
        while not stop.wait(poll_s):
            with contextlib.suppress(OSError):
                mark_dead_workers(path, marked)

    watcher = threading.Thread(target=watch, name="mlforge-metrics-reaper", daemon=True)
    watcher.start()
    try:
        yield path
    finally:
        stop.set()
        watcher.join(timeout=5)
        if not given:
            shutil.rmtree(path, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)

"""Lineage: a trained model traced back to the raw bytes it read, and those bytes restored."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any

from mlforge.config.spec import ProjectSpec
from mlforge.data.versioning import DatasetVersions, VersioningError
from mlforge.errors import DataError
from mlforge.io import layout
from mlforge.io.storage import Storage
from mlforge.io.timeline import key


def trace_model_data(
    storage: Storage,
    spec: ProjectSpec,
    model: str,
    cutoff: date,
    versions: DatasetVersions | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """{dataset: {day: {sha256, dvc_md5, rows, via}}} of every raw partition the model of `cutoff` read.

    Walks run.json → the label and feature-snapshot sidecars it trained on (checked against the
    run's recorded data version, so a re-materialized snapshot cannot slip in) → each snapshot's
    raw lineage {day: sha256} → the raw sidecars (`dvc_md5`). The raw days behind the labels
    ((d, d + horizon] of each training day) are included too, `via` says which path reached a day.
    When a raw day was re-materialized since, the DVC index of `versions` still finds the md5 of
    the bytes the model read; `dvc_md5` is None when no DVC version of them was recorded.
    """
    from mlforge.features.refs import service_views
    from mlforge.io.storage import read_json
    from mlforge.io.timeline import Cadence, clip, days_between, label_window, training_dates
    from mlforge.models.training import data_version, input_versions

    m = spec.model(model)
    run_key = layout.model_run(model, cutoff)
    if not storage.exists(run_key):
        raise DataError(
            f"model {model} has no training run for cutoff {key(cutoff)} ({storage.uri(run_key)})"
        )
    run = read_json(storage, run_key)
    train_days, holdout = training_dates(m, cutoff, Cadence.of(spec))
    days = [*clip(spec, train_days), holdout]
    views = service_views(spec, m.feature_service)

    # the same hash training recorded (one function computes both)
    version = data_version(input_versions(storage, model, views, days))
    metas = {(view, d): read_json(storage, layout.snapshot_meta(view, d)) for view in views for d in days}
    if version != run["data_version"]:
        raise DataError(
            f"model {model} at cutoff {key(cutoff)} trained on data version {run['data_version']}, but the "
            f"stored labels/snapshots now hash to {version}: they were re-materialized since training"
        )

    # (dataset, day) -> sha256 the model read, and how it got there
    wanted: dict[tuple[str, str], tuple[str | None, set[str]]] = {}
    folded: dict[str, date] = {}  # dataset -> the latest snapshot day whose index it folds into
    for (view, d), meta in metas.items():
        ds = spec.feature_view(view).source
        for day, sha in meta["lineage"].items():
            wanted.setdefault((ds, day), (sha, set()))[1].add(f"features/{view}")
        if "entity_index" in meta:
            folded[ds] = max(d, folded.get(ds, d))
    for ds, last in folded.items():
        # the universe and lifetime values fold every raw day up to the snapshot's
        for day in clip(spec, days_between(spec.partitions.start, last)):
            wanted.setdefault((ds, key(day)), (None, set()))[1].add(f"entities/{ds}")
    label_ds = m.label.dataset
    for d in days:
        lo, hi = label_window(m, d)
        for day in clip(spec, days_between(lo, hi)):
            # labels record no raw lineage: their raw days are the ones stored now
            wanted.setdefault((label_ds, key(day)), (None, set()))[1].add(f"labels/{model}")

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (ds, day), (sha, via) in sorted(wanted.items()):
        side = read_json(storage, layout.raw_meta(ds, date.fromisoformat(day)))
        entry: dict[str, Any] = {"sha256": sha or side["sha256"], "via": sorted(via)}
        if entry["sha256"] == side["sha256"]:
            entry["rows"] = side.get("rows")
            entry["dvc_md5"] = side.get("dvc_md5") or (
                versions.md5_of_sha256(ds, entry["sha256"]) if versions else None
            )
        else:
            entry["rows"] = None
            entry["dvc_md5"] = versions.md5_of_sha256(ds, entry["sha256"]) if versions else None
        out.setdefault(ds, {})[day] = entry
    return out


def restore_model_data(
    trace: dict[str, dict[str, dict[str, Any]]], versions: DatasetVersions, out_dir: str | Path
) -> int:
    """Write the exact raw bytes of a trace to `out_dir` in the storage layout (`layout.raw_data`).

    Every file is checked against the sha256 the model recorded; returns the number of files.
    """
    unversioned = [f"{ds}/{day}" for ds, days in trace.items() for day, e in days.items() if not e["dvc_md5"]]
    if unversioned:
        raise VersioningError(
            f"{len(unversioned)} raw partition(s) the model read have no DVC version "
            f"(e.g. {', '.join(unversioned[:3])}): they were materialized with versioning off"
        )
    objects = versions.read_objects([e["dvc_md5"] for days in trace.values() for e in days.values()])
    out = Path(out_dir)
    n = 0
    for ds, days in trace.items():
        for day, e in days.items():
            data = objects[e["dvc_md5"]]
            if hashlib.sha256(data).hexdigest() != e["sha256"]:
                raise VersioningError(f"restored raw/{ds} {day} does not match the sha256 the model read")
            target = out / layout.raw_data(ds, date.fromisoformat(day))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            n += 1
    (out / "trace.json").write_text(json.dumps(trace, indent=2, sort_keys=True))
    return n

"""The storage layout: every key MLForge reads or writes, and the parsers of its path segments.

Keys are '/'-separated paths relative to the storage root (see `mlforge.io.storage`). Each stored
thing has one function here that builds its key, registered with the pattern that
`docs/architecture.md` ("Storage layout") shows for it; `tests/io/test_layout.py` holds the two
together. Pattern notation: `<name>` is one path segment chosen by the caller, `YYYY-MM-DD` an ISO
day, `{a,b}` alternatives.

Pure string and date work, no I/O, nothing heavier than the standard library: serving imports it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Literal, TypeVar
from urllib.parse import quote, unquote

from mlforge.errors import DataError


class LayoutError(DataError, ValueError):
    """A storage key or path segment does not have the shape of the layout.

    A ValueError too, so code that guarded the old `date.fromisoformat` parsing keeps working.
    """


#: function name -> documented pattern of the key it builds (one stored thing each)
KEY_PATTERNS: dict[str, str] = {}
#: function name -> pattern of the listing prefix it builds (a prefix of documented keys)
PREFIX_PATTERNS: dict[str, str] = {}

_F = TypeVar("_F", bound=Callable[..., str])


def _key(pattern: str) -> Callable[[_F], _F]:
    def register(fn: _F) -> _F:
        KEY_PATTERNS[fn.__name__] = pattern
        return fn

    return register


def _prefix(pattern: str) -> Callable[[_F], _F]:
    def register(fn: _F) -> _F:
        PREFIX_PATTERNS[fn.__name__] = pattern
        return fn

    return register


_DATA = "data.parquet"
_META = "_meta.json"
_SUMMARY = "summary.json"
_LOG_SUFFIX = ".parquet"
_ALERT_SUFFIX = ".json"


def _day(d: date) -> str:
    # the partition key of timeline.key, repeated here so this module imports no spec/pydantic
    return d.isoformat()


# ---------------------------------------------------------------------------------------------
# raw datasets, feature snapshots, labels, batch predictions: one folder per day
# ---------------------------------------------------------------------------------------------


@_prefix("raw/<dataset>/")
def raw_prefix(dataset: str) -> str:
    """Prefix of every stored day of a raw dataset."""
    return f"raw/{dataset}/"


@_key("raw/<dataset>/date=YYYY-MM-DD/data.parquet")
def raw_data(dataset: str, d: date) -> str:
    """One day of a raw dataset."""
    return f"{raw_prefix(dataset)}date={_day(d)}/{_DATA}"


@_key("raw/<dataset>/date=YYYY-MM-DD/_meta.json")
def raw_meta(dataset: str, d: date) -> str:
    """The sidecar of one raw day (rows, schema, sha256, dvc_md5)."""
    return f"{raw_prefix(dataset)}date={_day(d)}/{_META}"


@_prefix("entities/<dataset>/")
def entity_index_prefix(dataset: str) -> str:
    """Prefix of every stored day of a dataset's entity index."""
    return f"entities/{dataset}/"


@_key("entities/<dataset>/date=YYYY-MM-DD/data.parquet")
def entity_index_data(dataset: str, d: date) -> str:
    """The entity index of a dataset as of day `d` (every entity seen up to d, lifetime stats)."""
    return f"{entity_index_prefix(dataset)}date={_day(d)}/{_DATA}"


@_key("entities/<dataset>/date=YYYY-MM-DD/_meta.json")
def entity_index_meta(dataset: str, d: date) -> str:
    """The sidecar of one entity index day (rows, sha256)."""
    return f"{entity_index_prefix(dataset)}date={_day(d)}/{_META}"


@_prefix("features/<view>/")
def snapshot_prefix(view: str) -> str:
    """Prefix of every stored snapshot of a feature view."""
    return f"features/{view}/"


@_key("features/<view>/date=YYYY-MM-DD/data.parquet")
def snapshot_data(view: str, d: date) -> str:
    """The snapshot of a feature view as of day `d`."""
    return f"{snapshot_prefix(view)}date={_day(d)}/{_DATA}"


@_key("features/<view>/date=YYYY-MM-DD/_meta.json")
def snapshot_meta(view: str, d: date) -> str:
    """The sidecar of one snapshot (rows, sha256, the raw data versions it read)."""
    return f"{snapshot_prefix(view)}date={_day(d)}/{_META}"


@_key("labels/<model>/date=YYYY-MM-DD/data.parquet")
def label_data(model: str, d: date) -> str:
    """The labels of a model's snapshot day `d`."""
    return f"labels/{model}/date={_day(d)}/{_DATA}"


@_key("labels/<model>/date=YYYY-MM-DD/_meta.json")
def label_meta(model: str, d: date) -> str:
    """The sidecar of one label partition."""
    return f"labels/{model}/date={_day(d)}/{_META}"


@_key("predictions/<model>/date=YYYY-MM-DD/data.parquet")
def predictions(model: str, d: date) -> str:
    """A day's batch predictions of a model's champion."""
    return f"predictions/{model}/date={_day(d)}/{_DATA}"


# ---------------------------------------------------------------------------------------------
# models: what training for a cutoff keeps beside MLflow
# ---------------------------------------------------------------------------------------------


def _model_dir(model: str, cutoff: date) -> str:
    return f"models/{model}/cutoff={_day(cutoff)}"


@_key("models/<model>/cutoff=YYYY-MM-DD/run.json")
def model_run(model: str, cutoff: date) -> str:
    """The training run of a cutoff (MLflow ids, metrics, data version)."""
    return f"{_model_dir(model, cutoff)}/run.json"


@_key("models/<model>/cutoff=YYYY-MM-DD/holdout.parquet")
def model_holdout(model: str, cutoff: date) -> str:
    """The holdout set the gate judges every model of this cutoff on."""
    return f"{_model_dir(model, cutoff)}/holdout.parquet"


@_key("models/<model>/cutoff=YYYY-MM-DD/reference.parquet")
def model_reference(model: str, cutoff: date) -> str:
    """The drift reference of the model trained at this cutoff."""
    return f"{_model_dir(model, cutoff)}/reference.parquet"


@_key("models/<model>/cutoff=YYYY-MM-DD/registration.json")
def model_registration(model: str, cutoff: date) -> str:
    """The outcome of registering the model of this cutoff (version, gate decision)."""
    return f"{_model_dir(model, cutoff)}/registration.json"


# ---------------------------------------------------------------------------------------------
# deployments
# ---------------------------------------------------------------------------------------------


@_prefix("deployments/<endpoint>/")
def deployment_prefix(endpoint: str) -> str:
    """Prefix of everything stored for an endpoint's deployment."""
    return f"deployments/{endpoint}/"


@_key("deployments/<endpoint>/manifest.json")
def manifest(endpoint: str) -> str:
    """An endpoint's current manifest."""
    return f"{deployment_prefix(endpoint)}manifest.json"


@_prefix("deployments/<endpoint>/history/")
def manifest_history_prefix(endpoint: str) -> str:
    """Prefix of every past revision of an endpoint's manifest."""
    return f"{deployment_prefix(endpoint)}history/"


@_key("deployments/<endpoint>/history/<revision>.json")
def manifest_history(endpoint: str, revision: int) -> str:
    """One revision of an endpoint's manifest (zero-padded so listings sort by revision)."""
    return f"{manifest_history_prefix(endpoint)}{revision:06d}.json"


def stored_revisions(keys: Iterable[str], endpoint: str) -> dict[int, str]:
    """{revision: key} of the manifest revisions among `keys` (a listing); other keys are ignored."""
    out = {}
    for k in keys:
        stem = k.rsplit("/", 1)[-1].removesuffix(".json")
        if stem.isascii() and stem.isdigit() and manifest_history(endpoint, int(stem)) == k:
            out[int(stem)] = k
    return out


# ---------------------------------------------------------------------------------------------
# monitoring
# ---------------------------------------------------------------------------------------------


@_prefix("monitoring/<model>/drift/")
def drift_prefix(model: str) -> str:
    """Prefix of every drift report of a model."""
    return f"monitoring/{model}/drift/"


@_key("monitoring/<model>/drift/date=YYYY-MM-DD/{report,log_report}.{html,json}")
def drift_report(model: str, d: date, fmt: Literal["html", "json"], served: bool = False) -> str:
    """A day's Evidently drift report: of the features, or (`served`) of the logged inputs and scores."""
    return f"{drift_prefix(model)}date={_day(d)}/{'log_report' if served else 'report'}.{fmt}"


@_key("monitoring/<model>/drift/date=YYYY-MM-DD/summary.json")
def drift_summary(model: str, d: date) -> str:
    """The numbers of a day's drift reports."""
    return f"{drift_prefix(model)}date={_day(d)}/{_SUMMARY}"


@_prefix("monitoring/<model>/performance/")
def performance_prefix(model: str) -> str:
    """Prefix of every performance summary of a model."""
    return f"monitoring/{model}/performance/"


@_key("monitoring/<model>/performance/date=YYYY-MM-DD/summary.json")
def performance_summary(model: str, d: date) -> str:
    """A day's live performance summary."""
    return f"{performance_prefix(model)}date={_day(d)}/{_SUMMARY}"


@_prefix("monitoring/alerts/open/")
def open_alerts_prefix() -> str:
    """Prefix of every open alert."""
    return "monitoring/alerts/open/"


@_key("monitoring/alerts/open/<key>.json")
def open_alert(alert_key: str) -> str:
    """The object that marks alert `alert_key` open (any characters: quoted into one segment)."""
    return open_alerts_prefix() + quote(alert_key, safe="") + _ALERT_SUFFIX


def open_alert_keys(keys: Iterable[str]) -> dict[str, str]:
    """{alert key: storage key} of the open-alert objects among `keys` (a listing)."""
    prefix = open_alerts_prefix()
    return {
        unquote(k.removeprefix(prefix).removesuffix(_ALERT_SUFFIX)): k
        for k in keys
        if k.startswith(prefix) and k.endswith(_ALERT_SUFFIX)
    }


# ---------------------------------------------------------------------------------------------
# the prediction log (written by serving, one object per flush; days are UTC days)
# ---------------------------------------------------------------------------------------------


@_prefix("logs/predictions/endpoint=<endpoint>/")
def prediction_log_prefix(endpoint: str) -> str:
    """Prefix of an endpoint's whole prediction log."""
    return f"logs/predictions/endpoint={endpoint}/"


@_prefix("logs/predictions/endpoint=<endpoint>/date=YYYY-MM-DD/")
def prediction_log_day_prefix(endpoint: str, d: date) -> str:
    """Prefix of one endpoint's prediction log for one UTC day."""
    return f"{prediction_log_prefix(endpoint)}date={_day(d)}/"


@_key("logs/predictions/endpoint=<endpoint>/date=YYYY-MM-DD/<uuid>.parquet")
def prediction_log_file(endpoint: str, d: date, file_id: str) -> str:
    """One flushed file of the prediction log (`file_id`: a UUIDv7, so names sort by flush time)."""
    return f"{prediction_log_day_prefix(endpoint, d)}{file_id}{_LOG_SUFFIX}"


def prediction_log_files(keys: Iterable[str]) -> list[str]:
    """The prediction log files among `keys` (a listing), in listing order."""
    return [k for k in keys if k.endswith(_LOG_SUFFIX)]


def prediction_log_file_id(key: str) -> str:
    """The `file_id` a prediction log file's key was built from."""
    return key.rsplit("/", 1)[-1].removesuffix(_LOG_SUFFIX)


def utc_day(ts: float) -> date:
    """The UTC day (log partition) of a Unix timestamp."""
    return date(*time.gmtime(ts)[:3])


def as_day(value: date | datetime | str) -> date:
    """The log day a read asks for: aware datetimes in UTC, naive ones as they are, ISO strings."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


# ---------------------------------------------------------------------------------------------
# DVC
# ---------------------------------------------------------------------------------------------


@_key("dvc/")
def dvc_remote() -> str:
    """The folder under an S3 storage root that is the default DVC remote (DVC's layout inside)."""
    return "dvc/"


# ---------------------------------------------------------------------------------------------
# parsing path segments
# ---------------------------------------------------------------------------------------------

_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _value(segment: str, name: str) -> str:
    head = f"{name}="
    if not segment.startswith(head):
        raise LayoutError(f"expected a '{head}…' path segment, got {segment!r}")
    return segment[len(head) :]


def _iso_day(segment: str, name: str) -> date:
    value = _value(segment, name)
    # strict: date.fromisoformat also takes '19980630' or '1998-W26-2', which we never write
    if not _ISO_DAY.fullmatch(value):
        raise LayoutError(f"malformed path segment {segment!r}: expected {name}=YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise LayoutError(f"malformed path segment {segment!r}: {value} is not a calendar day") from None


def parse_date(segment: str) -> date:
    """The day of a `date=YYYY-MM-DD` path segment; LayoutError when malformed."""
    return _iso_day(segment, "date")


def parse_cutoff(segment: str) -> date:
    """The day of a `cutoff=YYYY-MM-DD` path segment; LayoutError when malformed."""
    return _iso_day(segment, "cutoff")


def parse_endpoint(segment: str) -> str:
    """The endpoint name of an `endpoint=<name>` path segment; LayoutError when malformed."""
    value = _value(segment, "endpoint")
    if not value or "/" in value:
        raise LayoutError(f"malformed path segment {segment!r}: expected endpoint=<name>")
    return value


def _segment(key: str, name: str) -> str:
    found = [s for s in key.split("/") if s.startswith(f"{name}=")]
    if len(found) != 1:
        raise LayoutError(
            f"storage key {key!r} has {len(found) or 'no'} '{name}=' segments, expected exactly one"
        )
    return found[0]


def day_of(key: str) -> date:
    """The day of the one `date=` segment of a storage key; LayoutError when absent or malformed."""
    return parse_date(_segment(key, "date"))


def cutoff_of(key: str) -> date:
    """The cutoff of the one `cutoff=` segment of a storage key; LayoutError when absent or malformed."""
    return parse_cutoff(_segment(key, "cutoff"))


def endpoint_of(key: str) -> str:
    """The endpoint of the one `endpoint=` segment of a storage key; LayoutError when absent or malformed."""
    return parse_endpoint(_segment(key, "endpoint"))


def stored_days(keys: Iterable[str], key_of: Callable[[date], str]) -> dict[date, str]:
    """{day: key} of the keys in a listing that are exactly `key_of(day)` for their `date=` day.

    Keys without a `date=` segment are not day partitions and are skipped; a malformed `date=`
    segment raises LayoutError (a corrupt listing is reported, not silently shortened).
    """
    out = {}
    for k in keys:
        if not any(s.startswith("date=") for s in k.split("/")):
            continue
        d = day_of(k)
        if key_of(d) == k:
            out[d] = k
    return out

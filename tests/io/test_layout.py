"""The storage layout module against the documented layout, and its segment parsers.

Pure: no storage, no servers, no Dagster.
"""

from __future__ import annotations

import inspect
import itertools
import re
import typing
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mlforge.errors import DataError
from mlforge.io import layout
from mlforge.io.layout import LayoutError

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"

#: the public functions of the layout that are parsers/helpers, not key builders
HELPERS = {
    "as_day",
    "cutoff_of",
    "day_of",
    "endpoint_of",
    "open_alert_keys",
    "parse_cutoff",
    "parse_date",
    "parse_endpoint",
    "prediction_log_file_id",
    "prediction_log_files",
    "stored_days",
    "stored_revisions",
    "utc_day",
}

#: an argument for every parameter name a key function takes (a new name must be added here)
SAMPLES: dict[str, Any] = {
    "dataset": "transactions",
    "view": "customer_activity",
    "model": "churn",
    "endpoint": "churn-api",
    "d": date(1998, 6, 30),
    "cutoff": date(1998, 6, 1),
    "revision": 7,
    "alert_key": "performance/churn: auc < 0.7",  # a '/' inside: it must stay one segment
    "file_id": "0190a5d6-5f7b-7c3e-8a1b-2c3d4e5f6a7b",
}


# ---------------------------------------------------------------------------------------------
# pattern notation: <name> one segment, YYYY-MM-DD an ISO day, {a,b} alternatives
# ---------------------------------------------------------------------------------------------


def expand(pattern: str) -> set[str]:
    """Every pattern a `{a,b}` pattern stands for."""
    parts = re.split(r"\{([^{}]*)\}", pattern)
    # re.split with one group alternates literal text and the group's content
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return {"".join(c) for c in itertools.product(*choices)}


def regex(pattern: str) -> re.Pattern[str]:
    """The keys one expanded pattern matches."""
    out = []
    for token in re.split(r"(<[a-z_]+>|YYYY-MM-DD)", pattern):
        if token == "YYYY-MM-DD":
            out.append(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
        elif token.startswith("<"):
            out.append(r"[^/]+")
        else:
            out.append(re.escape(token))
    return re.compile("".join(out))


def doc_patterns() -> list[str]:
    """The key patterns of the 'Storage layout' code block of docs/architecture.md."""
    text = DOC.read_text()
    section = text.split("## Storage layout", 1)[1]
    block = re.search(r"^```\n(.*?)^```", section, re.S | re.M)
    assert block, "docs/architecture.md: no code block under '## Storage layout'"
    # one pattern per line, then an optional comment
    return [line.split()[0] for line in block.group(1).splitlines() if line.strip()]


def calls(fn: Callable[..., str]) -> Iterator[dict[str, Any]]:
    """Keyword arguments covering `fn`: the sample of each parameter, every value of Literal/bool ones."""
    hints = typing.get_type_hints(fn)
    options: list[list[tuple[str, Any]]] = []
    for name in inspect.signature(fn).parameters:
        hint = hints[name]
        if typing.get_origin(hint) is typing.Literal:
            values: list[Any] = list(typing.get_args(hint))
        elif hint is bool:
            values = [False, True]
        else:
            assert name in SAMPLES, f"tests/io/test_layout.py: add a sample for parameter {name!r}"
            values = [SAMPLES[name]]
        options.append([(name, v) for v in values])
    for combo in itertools.product(*options):
        yield dict(combo)


def public_functions() -> set[str]:
    return {
        name
        for name, obj in vars(layout).items()
        if inspect.isfunction(obj) and obj.__module__ == layout.__name__ and not name.startswith("_")
    }


# ---------------------------------------------------------------------------------------------
# the documented table and the module
# ---------------------------------------------------------------------------------------------


def test_notation_helpers() -> None:
    assert expand("a/{b,c}.{x,y}") == {"a/b.x", "a/b.y", "a/c.x", "a/c.y"}
    assert regex("raw/<dataset>/date=YYYY-MM-DD/data.parquet").fullmatch("raw/t/date=1998-06-30/data.parquet")
    assert not regex("raw/<dataset>/date=YYYY-MM-DD/data.parquet").fullmatch(
        "raw/t/u/date=1998-06-30/data.parquet"
    )


def test_the_doc_lists_exactly_the_keys_the_layout_builds() -> None:
    documented = {p for line in doc_patterns() for p in expand(line)}
    built = {p for pattern in layout.KEY_PATTERNS.values() for p in expand(pattern)}
    unbuilt, undocumented = sorted(documented - built), sorted(built - documented)
    assert not unbuilt, f"docs/architecture.md documents keys no layout function builds: {unbuilt}"
    assert not undocumented, f"layout keys missing from docs/architecture.md 'Storage layout': {undocumented}"


def test_every_key_function_builds_keys_of_its_pattern() -> None:
    for name, pattern in layout.KEY_PATTERNS.items():
        fn = getattr(layout, name)
        wanted = {p: regex(p) for p in expand(pattern)}
        matched: set[str] = set()
        for kwargs in calls(fn):
            key = fn(**kwargs)
            hits = {p for p, rx in wanted.items() if rx.fullmatch(key)}
            assert hits, f"{name}({kwargs}) = {key!r} does not match {pattern!r}"
            matched |= hits
        assert matched == set(wanted), f"{name} never builds {sorted(set(wanted) - matched)}"


def test_every_prefix_function_lists_documented_keys() -> None:
    documented = {p for line in doc_patterns() for p in expand(line)}
    for name, pattern in layout.PREFIX_PATTERNS.items():
        assert pattern.endswith("/"), name
        assert any(p.startswith(pattern) for p in documented), (
            f"{name}: {pattern!r} prefixes no documented key"
        )
        for kwargs in calls(getattr(layout, name)):
            assert regex(pattern).fullmatch(getattr(layout, name)(**kwargs)), name


def test_every_public_function_is_a_registered_key_or_prefix_or_a_helper() -> None:
    registered = set(layout.KEY_PATTERNS) | set(layout.PREFIX_PATTERNS)
    assert registered.isdisjoint(HELPERS)
    assert public_functions() == registered | HELPERS


def test_keys_are_the_ones_stored_so_far() -> None:
    """The exact keys (stored data written before this module must still be found)."""
    d, c = date(1998, 6, 30), date(1998, 6, 1)
    assert layout.raw_data("tx", d) == "raw/tx/date=1998-06-30/data.parquet"
    assert layout.raw_meta("tx", d) == "raw/tx/date=1998-06-30/_meta.json"
    assert layout.raw_prefix("tx") == "raw/tx/"
    assert layout.snapshot_data("v", d) == "features/v/date=1998-06-30/data.parquet"
    assert layout.snapshot_meta("v", d) == "features/v/date=1998-06-30/_meta.json"
    assert layout.snapshot_prefix("v") == "features/v/"
    assert layout.label_data("churn", d) == "labels/churn/date=1998-06-30/data.parquet"
    assert layout.label_meta("churn", d) == "labels/churn/date=1998-06-30/_meta.json"
    assert layout.predictions("churn", d) == "predictions/churn/date=1998-06-30/data.parquet"
    assert layout.model_run("churn", c) == "models/churn/cutoff=1998-06-01/run.json"
    assert layout.model_holdout("churn", c) == "models/churn/cutoff=1998-06-01/holdout.parquet"
    assert layout.model_reference("churn", c) == "models/churn/cutoff=1998-06-01/reference.parquet"
    assert layout.model_registration("churn", c) == "models/churn/cutoff=1998-06-01/registration.json"
    assert layout.deployment_prefix("api") == "deployments/api/"
    assert layout.manifest("api") == "deployments/api/manifest.json"
    assert layout.manifest_history_prefix("api") == "deployments/api/history/"
    assert layout.manifest_history("api", 12) == "deployments/api/history/000012.json"
    assert layout.drift_prefix("churn") == "monitoring/churn/drift/"
    assert layout.drift_report("churn", d, "html") == "monitoring/churn/drift/date=1998-06-30/report.html"
    assert layout.drift_report("churn", d, "json") == "monitoring/churn/drift/date=1998-06-30/report.json"
    assert (
        layout.drift_report("churn", d, "html", served=True)
        == "monitoring/churn/drift/date=1998-06-30/log_report.html"
    )
    assert layout.drift_summary("churn", d) == "monitoring/churn/drift/date=1998-06-30/summary.json"
    assert layout.performance_prefix("churn") == "monitoring/churn/performance/"
    assert (
        layout.performance_summary("churn", d) == "monitoring/churn/performance/date=1998-06-30/summary.json"
    )
    assert layout.open_alerts_prefix() == "monitoring/alerts/open/"
    assert layout.open_alert("drift/churn x") == "monitoring/alerts/open/drift%2Fchurn%20x.json"
    assert layout.prediction_log_prefix("api") == "logs/predictions/endpoint=api/"
    assert layout.prediction_log_day_prefix("api", d) == "logs/predictions/endpoint=api/date=1998-06-30/"
    assert (
        layout.prediction_log_file("api", d, "u") == "logs/predictions/endpoint=api/date=1998-06-30/u.parquet"
    )
    assert layout.dvc_remote() == "dvc/"


def test_the_layout_imports_nothing_heavy() -> None:
    """Serving imports the layout: it must not pull in the spec, pydantic, polars or numpy."""
    import subprocess
    import sys

    code = (
        "import sys, mlforge.io.layout; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'mlforge', 'pydantic', 'polars', 'numpy', 'yaml'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['mlforge', 'mlforge.errors', 'mlforge.io', 'mlforge.io.layout']"


# ---------------------------------------------------------------------------------------------
# parsers
# ---------------------------------------------------------------------------------------------


def test_layout_errors_are_data_errors_and_value_errors() -> None:
    with pytest.raises(LayoutError) as err:
        layout.parse_date("date=nope")
    assert isinstance(err.value, DataError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    ("segment", "day"),
    [
        ("date=1998-06-30", date(1998, 6, 30)),
        ("date=2024-02-29", date(2024, 2, 29)),
        ("date=0001-01-01", date.min),
    ],
)
def test_parse_date(segment: str, day: date) -> None:
    assert layout.parse_date(segment) == day


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        ("date=1998-6-30", "expected date=YYYY-MM-DD"),
        ("date=19980630", "expected date=YYYY-MM-DD"),  # date.fromisoformat would take it
        ("date=1998-W26-2", "expected date=YYYY-MM-DD"),
        ("date=1998-06-30x", "expected date=YYYY-MM-DD"),
        ("date=1998-06-30/", "expected date=YYYY-MM-DD"),
        ("date=١٩٩٨-06-30", "expected date=YYYY-MM-DD"),  # non-ASCII digits
        ("date=", "expected date=YYYY-MM-DD"),
        ("date=1998-02-30", "not a calendar day"),
        ("date=1998-13-01", "not a calendar day"),
        ("day=1998-06-30", "expected a 'date=…' path segment"),
        ("cutoff=1998-06-30", "expected a 'date=…' path segment"),
        ("", "expected a 'date=…' path segment"),
    ],
)
def test_parse_date_rejects_malformed_segments(segment: str, message: str) -> None:
    with pytest.raises(LayoutError, match=re.escape(message)) as err:
        layout.parse_date(segment)
    assert repr(segment) in str(err.value)  # the message shows what was found


def test_parse_cutoff() -> None:
    assert layout.parse_cutoff("cutoff=1998-06-01") == date(1998, 6, 1)
    for bad, message in [
        ("cutoff=1998-06", "expected cutoff=YYYY-MM-DD"),
        ("cutoff=1998-04-31", "not a calendar day"),
        ("date=1998-06-01", "expected a 'cutoff=…' path segment"),
        ("cutoff1998-06-01", "expected a 'cutoff=…' path segment"),
    ]:
        with pytest.raises(LayoutError, match=re.escape(message)):
            layout.parse_cutoff(bad)


def test_parse_endpoint() -> None:
    assert layout.parse_endpoint("endpoint=churn-api") == "churn-api"
    assert layout.parse_endpoint("endpoint=a=b") == "a=b"  # only the first '=' separates
    for bad, message in [
        ("endpoint=", "expected endpoint=<name>"),
        ("endpoint=a/b", "expected endpoint=<name>"),
        ("ep=churn-api", "expected a 'endpoint=…' path segment"),
        ("churn-api", "expected a 'endpoint=…' path segment"),
    ]:
        with pytest.raises(LayoutError, match=re.escape(message)):
            layout.parse_endpoint(bad)


def test_segments_of_whole_keys_round_trip() -> None:
    d, c = date(1998, 6, 30), date(1998, 6, 1)
    assert layout.day_of(layout.raw_meta("tx", d)) == d
    assert layout.day_of(layout.drift_report("churn", d, "json", served=True)) == d
    assert layout.cutoff_of(layout.model_reference("churn", c)) == c
    log = layout.prediction_log_file("churn-api", d, "u")
    assert (layout.endpoint_of(log), layout.day_of(log)) == ("churn-api", d)


def test_segments_of_whole_keys_absent_repeated_or_malformed() -> None:
    with pytest.raises(LayoutError, match="has no 'date=' segments"):
        layout.day_of("deployments/api/manifest.json")
    with pytest.raises(LayoutError, match="has 2 'date=' segments"):
        layout.day_of("raw/tx/date=1998-06-30/date=1998-07-01/data.parquet")
    with pytest.raises(LayoutError, match="expected date=YYYY-MM-DD"):
        layout.day_of("raw/tx/date=30-06-1998/data.parquet")
    with pytest.raises(LayoutError, match="has no 'cutoff=' segments"):
        layout.cutoff_of("raw/tx/date=1998-06-30/data.parquet")
    with pytest.raises(LayoutError, match="expected endpoint=<name>"):
        layout.endpoint_of("logs/predictions/endpoint=/date=1998-06-30/u.parquet")
    # 'date=' must start a segment: 'update=' is not one
    with pytest.raises(LayoutError, match="has no 'date=' segments"):
        layout.day_of("raw/update=1998-06-30/data.parquet")


def test_stored_days_keeps_exactly_the_keys_of_the_layout() -> None:
    meta = lambda d: layout.raw_meta("tx", d)  # noqa: E731
    listing = [
        layout.raw_data("tx", date(1998, 6, 30)),  # the sibling parquet: not a meta key
        layout.raw_meta("tx", date(1998, 6, 30)),
        layout.raw_meta("tx", date(1998, 6, 29)),
        "raw/tx/README.txt",  # no date= segment: not a partition, skipped
        "raw/tx/extra/date=1998-06-28/_meta.json",  # a date, but not where the layout puts it
    ]
    assert layout.stored_days(listing, meta) == {
        date(1998, 6, 30): "raw/tx/date=1998-06-30/_meta.json",
        date(1998, 6, 29): "raw/tx/date=1998-06-29/_meta.json",
    }
    assert layout.stored_days([], meta) == {}
    with pytest.raises(LayoutError, match=re.escape("'date=1998-06-31'")):
        layout.stored_days([*listing, "raw/tx/date=1998-06-31/_meta.json"], meta)


def test_stored_revisions() -> None:
    listing = [
        layout.manifest_history("api", 2),
        layout.manifest_history("api", 1),
        "deployments/api/history/notes.json",
        "deployments/api/history/12.json",  # not zero-padded: not a key the layout writes
        "deployments/api/history/000003.json.tmp",
    ]
    assert layout.stored_revisions(listing, "api") == {
        2: "deployments/api/history/000002.json",
        1: "deployments/api/history/000001.json",
    }


def test_open_alert_keys_round_trip() -> None:
    keys = ["performance/churn: auc", "drift_share churn", "ü%2F"]
    listing = [layout.open_alert(k) for k in keys] + ["monitoring/alerts/open/readme.txt"]
    assert layout.open_alert_keys(listing) == {k: layout.open_alert(k) for k in keys}


def test_prediction_log_files() -> None:
    d = date(1998, 6, 30)
    key = layout.prediction_log_file("api", d, "0190a5d6-5f7b-7c3e-8a1b-2c3d4e5f6a7b")
    assert layout.prediction_log_file_id(key) == "0190a5d6-5f7b-7c3e-8a1b-2c3d4e5f6a7b"
    prefix = layout.prediction_log_day_prefix("api", d)
    assert layout.prediction_log_files([key, prefix + ".x.parquet.tmp", prefix + "x.json"]) == [key]


def test_log_days_are_utc_days() -> None:
    midnight = datetime(1998, 6, 30, tzinfo=UTC).timestamp()
    assert layout.utc_day(midnight - 0.001) == date(1998, 6, 29)
    assert layout.utc_day(midnight) == date(1998, 6, 30)
    east = timezone(timedelta(hours=2))
    assert layout.as_day(datetime(1998, 6, 30, 1, 0, tzinfo=east)) == date(1998, 6, 29)
    assert layout.as_day(datetime(1998, 6, 30, 1, 0)) == date(1998, 6, 30)  # naive: taken as is
    assert layout.as_day(date(1998, 6, 30)) == date(1998, 6, 30)
    assert layout.as_day("1998-06-30") == date(1998, 6, 30)

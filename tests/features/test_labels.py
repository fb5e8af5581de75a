"""Label partitions computed and stored by the core, on a few hand-made raw days (no Dagster)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
import yaml

from mlforge.config.spec import ProjectSpec, parse_spec
from mlforge.data.raw import store_days
from mlforge.errors import MissingPartitionsError, MLForgeError
from mlforge.features.labels import (
    LABEL,
    StoredLabels,
    build_labels,
    label_view,
    write_labels,
)
from mlforge.features.offline import write_snapshot
from mlforge.features.snapshots import EVENT_TS
from mlforge.io import layout
from mlforge.io.storage import LocalStorage, Storage, read_json, read_parquet
from mlforge.io.timeline import days_between, end_of

REPO = Path(__file__).resolve().parents[2]
START, END = date(1997, 1, 1), date(1997, 1, 10)
HORIZON = 3


@pytest.fixture
def spec() -> ProjectSpec:
    """The example spec over ten days with a 3-day horizon."""
    data = yaml.safe_load((REPO / "mlforge.yaml").read_text())
    data["partitions"] = {"start": START.isoformat(), "end": END.isoformat(), "cadence": "daily"}
    data["models"][0]["label"]["horizon_days"] = HORIZON
    return parse_spec(data)


def d(day: int) -> date:
    return date(1997, 1, day)


def store_raw(storage: Storage, spec: ProjectSpec, days: list[date]) -> None:
    """Purchases: a on the 2nd and 5th, b on the 1st, c on the 6th."""
    events = pl.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c"],
            "date": [d(2), d(5), d(1), d(6)],
            "number_of_cds": [1, 2, 1, 3],
            "dollar_value": [10.0, 20.0, 5.0, 7.5],
        }
    )
    store_days(storage, spec.dataset("transactions"), events, days)


def store_snapshot(storage: Storage, day: date, entities: list[str]) -> None:
    frame = pl.DataFrame({"customer_id": entities, EVENT_TS: [end_of(day)] * len(entities)})
    write_snapshot(storage, "customer_activity", day, frame, {})


def test_labels_of_each_day_are_stored_with_their_sidecar(tmp_path: Path, spec: ProjectSpec) -> None:
    storage = LocalStorage(tmp_path)
    model = spec.model("churn")
    store_raw(storage, spec, days_between(START, END))
    store_snapshot(storage, d(1), ["c", "a", "b"])
    store_snapshot(storage, d(3), ["a", "b", "c"])

    stored = build_labels(storage, spec, model, [d(1), d(3)])

    # 1st: the horizon 2nd..4th has a's purchase; 3rd: 4th..6th has a's and c's
    expected = {d(1): {"a": 0, "b": 1, "c": 1}, d(3): {"a": 0, "b": 1, "c": 0}}
    for day, want in expected.items():
        labels = read_parquet(storage, layout.label_data("churn", day))
        assert labels.columns == ["customer_id", EVENT_TS, LABEL]
        assert dict(zip(labels["customer_id"], labels[LABEL], strict=True)) == want
        assert labels["customer_id"].to_list() == sorted(want)
        side = read_json(storage, layout.label_meta("churn", day))
        assert side == {"rows": 3, "sha256": next(s.sha256 for s in stored if s.day == day)}
    assert [(s.day, s.rows, s.label_sum) for s in stored] == [(d(1), 3, 2.0), (d(3), 3, 1.0)]


def test_write_labels_counts_positives_and_hashes_the_parquet(tmp_path: Path) -> None:
    import hashlib

    storage = LocalStorage(tmp_path)
    labels = pl.DataFrame({"customer_id": ["a", "b"], LABEL: pl.Series([1, 1], dtype=pl.Int8)})
    stored = write_labels(storage, "churn", d(2), labels)
    digest = hashlib.sha256(storage.read_bytes(layout.label_data("churn", d(2)))).hexdigest()
    assert stored == StoredLabels(d(2), 2, 2, digest)


def test_a_horizon_that_has_not_passed_is_refused(tmp_path: Path, spec: ProjectSpec) -> None:
    storage = LocalStorage(tmp_path)
    with pytest.raises(MLForgeError, match="last materializable day is 1997-01-07"):
        build_labels(storage, spec, spec.model("churn"), [d(6), d(8)])


def test_missing_snapshots_or_raw_days_are_refused_before_writing(tmp_path: Path, spec: ProjectSpec) -> None:
    storage = LocalStorage(tmp_path)
    model = spec.model("churn")
    store_snapshot(storage, d(1), ["a"])
    with pytest.raises(MissingPartitionsError) as missing_snap:
        build_labels(storage, spec, model, [d(1), d(2)])
    assert missing_snap.value.upstream == "features/customer_activity"
    assert missing_snap.value.missing == ["1997-01-02"]

    store_raw(storage, spec, [d(2), d(3)])
    with pytest.raises(MissingPartitionsError) as missing_raw:
        build_labels(storage, spec, model, [d(1)])
    assert missing_raw.value.stage == "labels/churn" and missing_raw.value.upstream == "raw/transactions"
    assert missing_raw.value.missing == ["1997-01-04"]
    assert not storage.exists(layout.label_meta("churn", d(1)))


def test_the_labelled_view_is_the_first_of_the_service(spec: ProjectSpec) -> None:
    assert label_view(spec, spec.model("churn")).name == "customer_activity"

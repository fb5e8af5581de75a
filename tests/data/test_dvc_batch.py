"""One run's stored raw days versioned in DVC as one batch: one `dvc add`, one push (real DVC)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
import yaml

from mlforge.config.project import Project
from mlforge.config.spec import parse_spec
from mlforge.data.raw import store_days
from mlforge.data.versioning import DatasetVersions, DvcBatch, md5_hex
from mlforge.io import layout
from mlforge.io.storage import LocalStorage, read_json

REPO = Path(__file__).resolve().parents[2]
DAYS = [date(1997, 1, 1), date(1997, 1, 2), date(1997, 1, 3)]


def test_store_days_records_each_day_s_md5_and_push_reports_the_batch(tmp_path: Path) -> None:
    ds = parse_spec(yaml.safe_load((REPO / "mlforge.yaml").read_text())).dataset("transactions")
    frame = pl.DataFrame(
        {
            "customer_id": ["a", "b", "a"],
            "date": [DAYS[0], DAYS[0], DAYS[2]],
            "number_of_cds": [1, 2, 3],
            "dollar_value": [1.0, 2.0, 3.0],
        }
    )
    storage = LocalStorage(tmp_path / "storage")
    versions = DatasetVersions(tmp_path / "dvc")
    batch = DvcBatch(versions, "transactions")

    stored = store_days(storage, ds, frame, DAYS, batch.snapshot)

    manifest = versions.manifest("transactions")
    assert sorted(manifest) == [d.isoformat() for d in DAYS]  # the empty 2nd included
    for p in stored:
        data = storage.read_bytes(layout.raw_data("transactions", p.day))
        assert p.dvc_md5 == md5_hex(data) == manifest[p.day.isoformat()]
        assert read_json(storage, layout.raw_meta("transactions", p.day))["dvc_md5"] == p.dvc_md5
    assert batch.dataset_md5 == versions.list()[0].md5 and batch.dataset_md5.endswith(".dir")

    meta = batch.push(stored[-1])
    assert meta["dvc_md5"] == stored[-1].dvc_md5
    assert meta["dvc_dataset_md5"] == batch.dataset_md5
    assert meta["dvc_remote"] == versions.remote == str(tmp_path / "dvc-remote")
    assert isinstance(meta["dvc_pushed_objects"], int) and meta["dvc_pushed_objects"] > 0
    assert isinstance(meta["dvc_seconds"], float) and meta["dvc_seconds"] >= 0
    assert any((tmp_path / "dvc-remote" / "files" / "md5").rglob("*"))


def test_for_project_uses_the_project_s_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFORGE_DVC_REMOTE", raising=False)
    batch = DvcBatch.for_project(Project.load(REPO / "mlforge.yaml", state_dir=tmp_path), "transactions")
    assert batch.dataset == "transactions"
    assert batch.versions.root == tmp_path / "dvc" and batch.versions.remote == str(tmp_path / "dvc-remote")
    assert (batch.dataset_md5, batch.seconds) == ("", 0.0)

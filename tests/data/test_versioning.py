"""Raw datasets versioned with real DVC, and a trained model traced to the exact raw bytes it read."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
from projects import END, START

from mlforge.config.project import Project
from mlforge.data.versioning import DatasetVersions, md5_hex
from mlforge.errors import DataError
from mlforge.io import layout
from mlforge.io.storage import read_json
from mlforge.models.lineage import trace_model_data
from mlforge_assets.runner import Runner

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "mlforge.yaml"
CUTOFF = END  # the session's quickstart: the compact example trained at its last day


def _parquet(values: list[float]) -> bytes:
    buf = io.BytesIO()
    pl.DataFrame({"x": values}).write_parquet(buf)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the DVC repository ----------------------------------------------------------------------


def test_a_recorded_version_restores_its_exact_bytes(tmp_path: Path) -> None:
    v = DatasetVersions(tmp_path / "dvc")
    days = {f"1997-01-0{i}": _parquet([float(i), i * 2.5]) for i in (1, 2, 3)}
    first = v.snapshot_many("tx", days)
    assert (tmp_path / "dvc" / ".dvc").is_dir() and first.dataset_md5.endswith(".dir")
    assert first.days == {d: md5_hex(b) for d, b in days.items()}
    assert v.manifest("tx") == first.days
    assert v.push() > 0

    # a new version of one day: the dataset version moves, the other days keep theirs
    changed = _parquet([99.0])
    new_md5 = v.snapshot("tx", "1997-01-02", changed)
    assert new_md5 != first.days["1997-01-02"]
    assert v.manifest("tx") == {**first.days, "1997-01-02": new_md5}
    (listed,) = v.list()
    assert (listed.dataset, listed.files) == ("tx", 3) and listed.md5 != first.dataset_md5

    # the workspace copy is changed and another deleted: every recorded version still comes back
    ws = v.workspace("tx")
    (ws / "1997-01-02.parquet").write_bytes(b"garbage")
    (ws / "1997-01-03.parquet").unlink()
    assert v.pull("tx", "1997-01-02", first.days["1997-01-02"]) == days["1997-01-02"]
    assert v.pull("tx", "1997-01-02") == changed
    assert v.pull("tx", "1997-01-03") == days["1997-01-03"]

    # the next snapshot keeps days it does not write as recorded (a lost workspace file is restored)
    v.snapshot("tx", "1997-01-04", _parquet([4.0]))
    assert v.manifest("tx")["1997-01-03"] == first.days["1997-01-03"]
    assert v.manifest("tx")["1997-01-02"] == new_md5
    assert v.md5_of_sha256("tx", _sha(days["1997-01-02"])) == first.days["1997-01-02"]

    # with the local cache gone, the remote restores the old version (`dvc fetch` of its md5)
    v.push()
    shutil.rmtree(tmp_path / "dvc" / ".dvc" / "cache")
    restored = DatasetVersions(tmp_path / "dvc").pull("tx", "1997-01-02", first.days["1997-01-02"])
    assert _sha(restored) == _sha(days["1997-01-02"])
    assert not (tmp_path / "dvc" / "restore.dvc").exists()


def test_an_unknown_version_is_a_clear_error(tmp_path: Path) -> None:
    from mlforge.data.versioning import VersioningError

    v = DatasetVersions(tmp_path / "dvc")
    with pytest.raises(VersioningError, match="no DVC version yet"):
        v.pull("tx", "1997-01-01")
    v.snapshot("tx", "1997-01-01", b"one")
    v.push()
    with pytest.raises(VersioningError, match="0123456789abcdef0123456789abcdef"):
        v.pull("tx", "1997-01-01", "0123456789abcdef0123456789abcdef")


# --- the raw asset ---------------------------------------------------------------------------


def test_raw_asset_records_the_dvc_version(tmp_path: Path) -> None:
    project = Project.load(SPEC, state_dir=tmp_path)
    with dg.instance_for_test() as instance:
        runner = Runner(project, instance)
        raw = runner.key("raw", "transactions")
        rng = runner.materialize([raw], date(1997, 1, 1), date(1997, 1, 5))
        one = runner.materialize([raw], date(1997, 1, 6))
        record = instance.get_latest_data_version_record(raw, partition_key="1997-01-06")
        assert record is not None
        version = record.asset_materialization.tags["dagster/data_version"]

    storage = project.storage
    versions = DatasetVersions.for_project(project)
    manifest = versions.manifest("transactions")
    assert sorted(manifest) == [f"1997-01-0{i}" for i in range(1, 7)]
    for i in range(1, 7):
        d = date(1997, 1, i)
        data = storage.read_bytes(layout.raw_data("transactions", d))
        side = read_json(storage, layout.raw_meta("transactions", d))
        assert side["sha256"] == _sha(data)
        assert side["dvc_md5"] == md5_hex(data) == manifest[d.isoformat()]
        assert versions.pull("transactions", d.isoformat(), side["dvc_md5"]) == data
    meta = one.metadata["churn/raw/transactions"]
    assert meta["dvc_md5"] == version == manifest["1997-01-06"]
    assert meta["dvc_dataset_md5"] == versions.list()[0].md5
    assert rng.metadata["churn/raw/transactions"]["dvc_md5"] == manifest["1997-01-05"]
    assert Path(str(meta["dvc_remote"])) == tmp_path / "dvc-remote"
    assert any((tmp_path / "dvc-remote" / "files" / "md5").rglob("*"))  # pushed


def test_raw_asset_without_versioning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFORGE_DVC", "off")
    project = Project.load(SPEC, state_dir=tmp_path)
    with dg.instance_for_test() as instance:
        runner = Runner(project, instance)
        res = runner.materialize([runner.key("raw", "transactions")], date(1997, 1, 1))
    side = read_json(project.storage, layout.raw_meta("transactions", date(1997, 1, 1)))
    assert "dvc_md5" not in side and "dvc_md5" not in res.metadata["churn/raw/transactions"]
    assert not (tmp_path / "dvc").exists()


# --- a trained model traced to raw partitions ------------------------------------------------


def test_trace_model_data_reaches_the_raw_bytes(materialized: Any) -> None:
    from mlforge.io.timeline import training_dates

    project = materialized.project
    storage = project.storage
    versions = DatasetVersions.for_project(project)
    trace = trace_model_data(storage, project.spec, "churn", CUTOFF, versions)
    days = trace["transactions"]
    via_features = sorted(d for d, e in days.items() if "features/customer_activity" in e["via"])
    # snapshots 1997-05-30 .. 1997-08-01 (+ holdout 1997-08-31) with a 120-day lookback
    train, holdout = training_dates(project.spec.model("churn"), CUTOFF)
    lookback = project.spec.feature_view("customer_activity").lookback_days
    first = train[0] - timedelta(days=lookback - 1)
    assert (first, holdout) == (date(1997, 1, 31), date(1997, 8, 31))
    assert via_features[0] == str(first) and via_features[-1] == str(holdout)
    assert len(via_features) == (holdout - first).days + 1 == 213
    # the days before the first lookback are read only by folding the entity index
    assert days[str(START)]["via"] == ["entities/transactions"]
    # the labels read (d, d + 30] of each training day: up to the cutoff
    assert max(days) == str(CUTOFF) and days[str(CUTOFF)]["via"] == ["labels/churn"]
    assert len(days) == (CUTOFF - START).days + 1 == 273  # every raw day of the history
    for day, e in days.items():
        side = read_json(storage, layout.raw_meta("transactions", date.fromisoformat(day)))
        assert e["sha256"] == side["sha256"] and e["dvc_md5"] == side["dvc_md5"]
        assert e["rows"] == side["rows"]
    # DVC holds exactly those bytes
    sample = days["1997-06-15"]
    assert _sha(versions.pull("transactions", "1997-06-15", sample["dvc_md5"])) == sample["sha256"]


class _Overlay:
    """Storage that reads one key differently (the shared fixture's files stay untouched)."""

    def __init__(self, storage: Any, key: str, data: bytes) -> None:
        self._s, self._key, self._data = storage, key, data
        self.root = storage.root

    def read_bytes(self, key: str) -> bytes:
        return self._data if key == self._key else self._s.read_bytes(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s, name)


def test_trace_refuses_snapshots_changed_since_training(materialized: Any) -> None:
    storage = materialized.project.storage
    k = layout.snapshot_meta("customer_activity", date(1997, 8, 31))  # the holdout's snapshot
    side = read_json(storage, k)
    tampered = _Overlay(storage, k, json.dumps({**side, "sha256": "0" * 64}).encode())
    with pytest.raises(DataError, match="re-materialized since training"):
        trace_model_data(tampered, materialized.project.spec, "churn", CUTOFF)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="no training run"):
        trace_model_data(storage, materialized.project.spec, "churn", date(1997, 8, 1))


def test_trace_finds_old_bytes_after_a_raw_day_changed(materialized: Any) -> None:
    """A raw day re-materialized since training: the DVC index still names the bytes the model read."""
    project = materialized.project
    storage = project.storage
    versions = DatasetVersions.for_project(project)
    k = layout.raw_meta("transactions", date(1997, 6, 15))
    side = read_json(storage, k)
    changed = _Overlay(storage, k, json.dumps({**side, "sha256": "f" * 64, "dvc_md5": "e" * 32}).encode())
    trace = trace_model_data(changed, project.spec, "churn", CUTOFF, versions)  # type: ignore[arg-type]
    e = trace["transactions"]["1997-06-15"]
    assert e["sha256"] == side["sha256"] and e["dvc_md5"] == side["dvc_md5"] and e["rows"] is None


# --- the CLI ---------------------------------------------------------------------------------


def _cli(*args: str, home: Path, spec: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mlforge.cli", "data", *args, "--spec", str(spec), "--home", str(home)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=REPO,
    )


def test_cli_list_and_validate(materialized: Any) -> None:
    home, spec = materialized.state_dir, materialized.spec_path
    stored = materialized.meta("churn/raw/transactions")["dagster/row_count"]  # 49,086 up to 1997-09-30
    out = _cli("list", home=home, spec=spec)
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("transactions"))
    dvc_md5 = DatasetVersions.for_project(materialized.project).list()[0].md5
    assert " 273 " in line and f"{START}..{END}" in line and f"{stored:,}" in line and dvc_md5 in line

    # validate checks the whole source file (its later history too)
    out = _cli("validate", home=home, spec=spec)
    assert out.returncode == 0, out.stderr
    assert "transactions: 69,659 rows" in out.stdout and "ok     value_ranges" in out.stdout
    bad = _cli("validate", "nope", home=home, spec=spec)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown dataset 'nope'")


def test_cli_validate_fails_on_a_bad_source(tmp_path: Path) -> None:
    spec = SPEC.read_text().replace("path: data/cdnow/CDNOW_master.txt", "path: bad.txt")
    (tmp_path / "mlforge.yaml").write_text(spec)
    (tmp_path / "bad.txt").write_text(
        "customer_id date number_of_cds dollar_value\n00001 19970101 1 11.77\n00002 19970102 0 -5.00\n"
    )
    out = _cli("validate", "transactions", home=tmp_path / "state", spec=tmp_path / "mlforge.yaml")
    assert out.returncode == 1
    assert "FAILED value_ranges" in out.stdout and "'number_of_cds': 1" in out.stdout
    (tmp_path / "bad.txt").write_text("customer_id date number_of_cds dollar_value\n00001 1997-13-45 1 1.0\n")
    out = _cli("validate", home=tmp_path / "state", spec=tmp_path / "mlforge.yaml")
    assert out.returncode == 2 and "cannot parse '1997-13-45' as date" in out.stderr


def test_cli_register_prints_the_spec_entry(tmp_path: Path) -> None:
    import yaml

    src = tmp_path / "sales.csv"
    src.write_text("customer_id,when,amount\n00012,2024-01-02,3.5\n00013,2024-01-03,7\n")
    out = _cli(
        "register",
        "sales",
        "--path",
        str(src),
        "--format",
        "csv",
        "--timestamp-column",
        "when",
        "--timestamp-format",
        "%Y-%m-%d",
        home=tmp_path / "state",
        spec=SPEC,
    )
    assert out.returncode == 0, out.stderr
    (entry,) = yaml.safe_load(out.stdout.split("mlforge.yaml:", 1)[1])
    assert entry["name"] == "sales" and entry["source"] == {"path": str(src), "format": "csv"}
    assert entry["columns"]["customer_id"]["type"] == "string"  # zero-padded ids stay text
    assert entry["columns"]["amount"]["type"] == "float" and entry["columns"]["when"]["type"] == "date"
    assert SPEC.read_text().count("name: sales") == 0  # the user's spec is not rewritten
    dup = _cli(
        "register",
        "transactions",
        "--path",
        str(src),
        "--timestamp-column",
        "when",
        home=tmp_path / "s",
        spec=SPEC,
    )
    assert dup.returncode == 2 and "already defined" in dup.stderr


def test_cli_pull_restores_what_a_model_version_read(materialized: Any, tmp_path: Path) -> None:
    out_dir = tmp_path / "restored"
    home, spec = materialized.state_dir, materialized.spec_path
    out = _cli("pull", "--model", "churn", "--version", "1", "--out", str(out_dir), home=home, spec=spec)
    assert out.returncode == 0, out.stderr
    days = (END - START).days + 1  # the model of the last day read every raw day (labels up to it)
    assert f"restored {days} partition(s)" in out.stdout
    storage = materialized.project.storage
    files = sorted(out_dir.glob("raw/transactions/date=*/data.parquet"))
    assert len(files) == days == 273
    for f in files[::37]:
        day = date.fromisoformat(f.parent.name.removeprefix("date="))
        assert _sha(f.read_bytes()) == read_json(storage, layout.raw_meta("transactions", day))["sha256"]
    trace = json.loads((out_dir / "trace.json").read_text())
    # the first day of the first training snapshot's lookback, also folded into the index
    assert trace["transactions"]["1997-01-31"]["via"] == [
        "entities/transactions",
        "features/customer_activity",
    ]
    assert trace["transactions"]["1997-01-01"]["via"] == ["entities/transactions"]

    day_out = tmp_path / "days"
    out = _cli(
        "pull",
        "transactions",
        "--day",
        "1997-01-01..1997-01-03",
        "--out",
        str(day_out),
        home=home,
        spec=spec,
    )
    assert out.returncode == 0, out.stderr
    assert len(list(day_out.glob("raw/transactions/*/data.parquet"))) == 3

    missing = _cli("pull", "--model", "churn", "--version", "9", "--out", str(out_dir), home=home, spec=spec)
    assert missing.returncode == 2 and "version 9 is not registered" in missing.stderr


@pytest.mark.integration
def test_s3_remote_round_trip(tmp_path: Path, s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The remote on the S3 store: push, lose the local cache, restore the exact bytes from S3."""
    import uuid

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    remote = f"s3://{s3_server.bucket}/dvc-{uuid.uuid4().hex[:8]}"
    v = DatasetVersions(tmp_path / "dvc", remote=remote, endpoint_url=s3_server.endpoint_url)
    data = _parquet([1.0, 2.0])
    md5 = v.snapshot("tx", "1997-01-01", data)
    assert v.push() == 2  # the file and the directory's manifest
    assert "endpointurl" in (tmp_path / "dvc" / ".dvc" / "config").read_text()
    shutil.rmtree(tmp_path / "dvc" / ".dvc" / "cache")
    assert (
        DatasetVersions(tmp_path / "dvc", remote, s3_server.endpoint_url).pull("tx", "1997-01-01", md5)
        == data
    )


def test_remote_follows_the_storage_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = DatasetVersions.for_project(Project.load(SPEC, state_dir=tmp_path))
    assert (local.root, local.remote, local.endpoint_url) == (
        tmp_path / "dvc",
        str(tmp_path / "dvc-remote"),
        None,
    )
    monkeypatch.setenv("MLFORGE_STORAGE_ROOT", "s3://bucket/churn")
    monkeypatch.setenv("MLFORGE_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    on_s3 = DatasetVersions.for_project(Project.load(SPEC, state_dir=tmp_path))
    assert (on_s3.remote, on_s3.endpoint_url) == ("s3://bucket/churn/dvc", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFORGE_DVC_REMOTE", str(tmp_path / "elsewhere"))
    assert DatasetVersions.for_project(Project.load(SPEC, state_dir=tmp_path)).remote == str(
        tmp_path / "elsewhere"
    )

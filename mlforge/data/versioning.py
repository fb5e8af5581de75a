"""Raw datasets versioned with DVC (a model's trace back to those bytes is `mlforge.models.lineage`).

The DVC repository lives in the state folder (`<state>/dvc`, created on first use, no git: DVC's
`no_scm` mode). Its workspace mirrors the stored raw partitions as
`raw/<dataset>/<day>.parquet`, and each dataset is **one directory output** (`raw/<dataset>.dvc`):
one `dvc add` per materialization hashes only the files that changed, the directory's md5 versions
the whole dataset, and its `.dir` manifest gives every day's md5. That md5 is the day's DVC data
version; the raw sidecar `_meta.json` records it as `dvc_md5` beside `sha256`.

Any recorded md5 can be restored byte for byte: from the local DVC cache, or from the remote by
`dvc fetch`ing a `.dvc` file that names it (no git history needed). An index (sha256 → md5 per
dataset) finds the DVC object of bytes a model read even after the day was re-materialized. The remote is a local folder
(`<state>/dvc-remote`) by default, `<storage root>/dvc` when the storage is S3, or
`$MLFORGE_DVC_REMOTE` (+ `$MLFORGE_DVC_ENDPOINT_URL`). `MLFORGE_DVC=off` switches versioning off.

`import dvc` costs about a second, so it is imported only by the operations that need it; reading a
version that is already in the local cache never imports DVC.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlforge.config.settings import get_settings
from mlforge.errors import MLForgeError
from mlforge.io import layout

if TYPE_CHECKING:
    from mlforge.config.project import Project
    from mlforge.data.raw import StoredPartition

REMOTE_NAME = "storage"

_process_lock = threading.Lock()


class VersioningError(MLForgeError):
    """DVC could not record, push or restore a dataset version."""


def versioning_enabled() -> bool:
    """Whether raw materializations are versioned with DVC (`MLFORGE_DVC=off` turns it off)."""
    return get_settings().dvc


def md5_hex(data: bytes) -> str:
    """DVC's content hash of a file (md5 of the bytes)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """What one `dvc add` of a dataset recorded."""

    dataset: str
    dataset_md5: str  # the directory output's md5 (ends with .dir): the whole dataset's version
    days: dict[str, str]  # {day: md5} of the days this snapshot wrote
    seconds: float


@dataclass(frozen=True)
class DatasetVersion:
    """The current DVC version of one dataset."""

    dataset: str
    md5: str
    files: int
    size: int


class DatasetVersions:
    """A DVC repository holding the raw datasets of one project."""

    def __init__(self, root: str | Path, remote: str | None = None, endpoint_url: str | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        remote = remote or str(self.root.parent / "dvc-remote")
        self.remote = remote if "://" in remote else str(Path(remote).expanduser().resolve())
        self.endpoint_url = endpoint_url if self.remote.startswith("s3://") else None
        self._ready = False

    @classmethod
    def for_project(cls, project: Project) -> DatasetVersions:
        """The project's repository at `<state>/dvc`, with the remote the environment or storage names."""
        s = project.settings
        env = get_settings()
        remote, endpoint = env.dvc_remote, env.dvc_endpoint_url
        if not remote and s.storage_root.startswith("s3://"):
            # DVC's remote URL names the folder without a trailing slash
            remote = s.storage_root.rstrip("/") + "/" + layout.dvc_remote().rstrip("/")
        if remote and remote.startswith("s3://"):
            endpoint = endpoint or s.storage_endpoint_url
        return cls(s.state_dir / "dvc", remote=remote, endpoint_url=endpoint)

    # --- repository ------------------------------------------------------------------------

    def dvc_file(self, dataset: str) -> Path:
        """The `.dvc` file of a dataset's directory output."""
        return self.root / "raw" / f"{dataset}.dvc"

    def workspace(self, dataset: str) -> Path:
        """The folder DVC tracks for a dataset."""
        return self.root / "raw" / dataset

    def cache_path(self, md5: str) -> Path:
        """Where the local DVC cache keeps the object `md5`."""
        return self.root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One DVC operation at a time on this repository, across threads and processes."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with _process_lock, open(self.root.parent / "dvc.lock", "a") as fh:
            try:
                import fcntl
            except ImportError:  # Windows: DVC's own lock still guards the repository
                yield
                return
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _repo(self) -> Iterator[Any]:
        """The DVC repository, initialised and configured on first use (call under `_locked`)."""
        import logging

        from dvc.exceptions import DvcException
        from dvc.repo import Repo

        # `import dvc` attaches INFO handlers on stdout to the "dvc" logger; keep a run's output
        # (and DVC's progress bars, which follow that level) quiet. Warnings still reach stderr.
        dvc_logger = logging.getLogger("dvc")
        level = dvc_logger.level
        dvc_logger.setLevel(logging.WARNING)
        try:
            if not (self.root / ".dvc").is_dir():
                self.root.mkdir(parents=True, exist_ok=True)
                Repo.init(str(self.root), no_scm=True).close()
            if not self._ready:
                self._configure()
            with Repo(str(self.root)) as repo:
                yield repo
        except DvcException as exc:
            raise VersioningError(f"DVC failed in {self.root}: {exc}") from None
        finally:
            dvc_logger.setLevel(level)

    def _configure(self) -> None:
        """Point the default remote at `self.remote`; keep DVC's state inside the state folder."""
        from dvc.config import Config

        config = Config(dvc_dir=str(self.root / ".dvc"))
        remote: dict[str, str] = {"url": self.remote}
        if self.endpoint_url:
            remote["endpointurl"] = self.endpoint_url
        want: dict[str, dict[str, Any]] = {
            "core": {
                "remote": REMOTE_NAME,
                "analytics": "false",
                "site_cache_dir": str(self.root / ".dvc" / "tmp" / "site"),
            },
            "remote": {REMOTE_NAME: remote},
        }
        current = config.read("repo")
        if any(current.get(sec, {}).get(k) != v for sec, kv in want.items() for k, v in kv.items()):
            with config.edit("repo") as conf:
                for sec, kv in want.items():
                    conf.setdefault(sec, {}).update(kv)
        if not self.remote.startswith("s3://") and "://" not in self.remote:
            Path(self.remote).mkdir(parents=True, exist_ok=True)
        self._ready = True

    # --- recording ----------------------------------------------------------------------------

    def snapshot(self, dataset: str, day_key: str, parquet_bytes: bytes) -> str:
        """Version one day's bytes; return their md5."""
        return self.snapshot_many(dataset, {day_key: parquet_bytes}).days[day_key]

    def snapshot_many(self, dataset: str, parts: dict[str, bytes]) -> Snapshot:
        """Write the bytes of many days into the workspace and record them with one `dvc add`."""
        import time

        t0 = time.perf_counter()
        expected = {day: md5_hex(data) for day, data in parts.items()}
        folder = self.workspace(dataset)
        with self._locked(), self._repo() as repo:
            dvcfile = self.dvc_file(dataset)
            if dvcfile.exists():
                # Days this run does not write must stay as recorded: restore any the workspace lost.
                repo.checkout(targets=[str(dvcfile)], force=True, allow_missing=True)
            folder.mkdir(parents=True, exist_ok=True)
            for day, data in parts.items():
                target = folder / f"{day}.parquet"
                target.unlink(missing_ok=True)  # never write through a link into the cache
                target.write_bytes(data)
            repo.add([str(folder)])
            dataset_md5 = self._out(dataset)["md5"]
        manifest = self.manifest(dataset, dataset_md5)
        wrong = [d for d, m in expected.items() if manifest.get(d) != m]
        if wrong:
            raise VersioningError(
                f"DVC recorded other bytes than were written for {dataset} days {wrong[:5]}"
            )
        with self._locked():
            self._index(dataset, {d: (hashlib.sha256(parts[d]).hexdigest(), m) for d, m in expected.items()})
        return Snapshot(dataset, dataset_md5, expected, time.perf_counter() - t0)

    def _out(self, dataset: str) -> dict[str, Any]:
        import yaml

        path = self.dvc_file(dataset)
        if not path.exists():
            raise VersioningError(f"dataset {dataset} has no DVC version yet (no {path})")
        return dict(yaml.safe_load(path.read_text())["outs"][0])

    def _index(self, dataset: str, versions: dict[str, tuple[str, str]]) -> None:
        """Append new (day, sha256, md5) to the dataset's index, so a sha256 finds its DVC object later."""
        path = self.root / "index" / f"{dataset}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        known = set()
        if path.exists():
            with open(path) as fh:
                known = {(r["day"], r["sha256"]) for r in map(json.loads, fh)}
        lines = [
            json.dumps({"day": d, "sha256": s, "md5": m}) + "\n"
            for d, (s, m) in sorted(versions.items())
            if (d, s) not in known
        ]
        with open(path, "a") as fh:
            fh.writelines(lines)

    def md5_of_sha256(self, dataset: str, sha256: str) -> str | None:
        """The md5 DVC recorded for bytes with this sha256 (any snapshot so far), or None."""
        path = self.root / "index" / f"{dataset}.jsonl"
        if not path.exists():
            return None
        found = None
        with open(path) as fh:
            for line in fh:
                rec = json.loads(line)
                if rec["sha256"] == sha256:
                    found = rec["md5"]
        return found

    def push(self) -> int:
        """Upload every recorded object the remote lacks; the number of objects pushed."""
        with self._locked(), self._repo() as repo:
            return int(repo.push() or 0)

    # --- reading ------------------------------------------------------------------------------

    def manifest(self, dataset: str, dataset_md5: str | None = None) -> dict[str, str]:
        """{day: md5} of a dataset version (default: the current one)."""
        md5 = dataset_md5 or self._out(dataset)["md5"]
        raw = self.read_objects([md5])[md5]
        return {e["relpath"].removesuffix(".parquet"): e["md5"] for e in json.loads(raw)}

    def list(self) -> builtins.list[DatasetVersion]:
        """The current version of every dataset in the repository."""
        import yaml

        out = []
        for f in sorted((self.root / "raw").glob("*.dvc")):
            o = yaml.safe_load(f.read_text())["outs"][0]
            out.append(DatasetVersion(f.stem, o["md5"], int(o.get("nfiles", 0)), int(o.get("size", 0))))
        return out

    def pull(self, dataset: str, day: str, md5: str | None = None) -> bytes:
        """The exact bytes of a day: version `md5`, or the one the dataset's current version holds."""
        md5 = md5 or self.manifest(dataset).get(day)
        if md5 is None:
            raise VersioningError(f"dataset {dataset} has no DVC version of day {day}")
        return self.read_objects([md5])[md5]

    def read_objects(self, md5s: builtins.list[str]) -> dict[str, bytes]:
        """The bytes of DVC objects by md5: from the local cache, else `dvc pull`ed from the remote."""
        out: dict[str, bytes] = {}
        missing = []
        for m in dict.fromkeys(md5s):
            p = self.cache_path(m)
            if p.is_file():
                out[m] = p.read_bytes()
            else:
                missing.append(m)
        if missing:
            out.update(self._pull_objects(missing))
        for m, data in out.items():
            if md5_hex(data) != m.removesuffix(".dir"):
                raise VersioningError(f"DVC object {m} is corrupt (its bytes hash to {md5_hex(data)})")
        return out

    def _pull_objects(self, md5s: builtins.list[str]) -> dict[str, bytes]:
        """Fetch objects from the remote with one `.dvc` file naming every md5 as an output.

        This is `dvc pull` of recorded versions without git history: the `.dvc` file is written from
        the md5s, `dvc fetch` (pull's download half) brings the objects into the cache, and they are
        read from there; checking them out into the workspace too would only cost time (9 s of
        sqlite state writes for 546 files).
        """
        import yaml

        dvcfile = self.root / "restore.dvc"
        with self._locked():
            try:
                outs = [{"md5": m, "path": f"restore/{m}", "hash": "md5"} for m in md5s]
                dvcfile.write_text(yaml.safe_dump({"outs": outs}))
                with self._repo() as repo:
                    try:
                        repo.fetch(targets=[str(dvcfile)])
                    except Exception as exc:
                        shown = ", ".join(md5s[:3]) + (" …" if len(md5s) > 3 else "")
                        raise VersioningError(
                            f"dvc pull from {self.remote} could not restore {len(md5s)} object(s) "
                            f"({shown}): {exc}"
                        ) from None
                out = {}
                for m in md5s:
                    p = self.cache_path(m)
                    if not p.is_file():
                        raise VersioningError(f"DVC object {m} is not in the remote {self.remote}")
                    out[m] = p.read_bytes()
                return out
            finally:
                dvcfile.unlink(missing_ok=True)


# --- tracing a model to the raw bytes it read --------------------------------------------------


class DvcBatch:
    """Versions one run's stored days of a dataset in DVC: one `dvc add` for the range, one push.

    Pass `snapshot` to :func:`mlforge.data.raw.store_days` as its `version` callback, then call
    `push` once the days are stored.
    """

    def __init__(self, versions: DatasetVersions, dataset: str) -> None:
        self.dataset = dataset
        self.versions = versions
        self.dataset_md5 = ""
        self.seconds = 0.0

    @classmethod
    def for_project(cls, project: Project, dataset: str) -> DvcBatch:
        """A batch on the project's DVC repository (see `DatasetVersions.for_project`)."""
        return cls(DatasetVersions.for_project(project), dataset)

    def snapshot(self, parts: dict[str, bytes]) -> dict[str, str]:
        """{day: md5} of the exact bytes `store_days` wrote."""
        snap = self.versions.snapshot_many(self.dataset, parts)
        self.dataset_md5, self.seconds = snap.dataset_md5, snap.seconds
        return dict(snap.days)

    def push(self, last: StoredPartition) -> dict[str, object]:
        """Push to the remote; what was versioned, for the UI (`last`: the run's last stored day)."""
        t0 = time.perf_counter()
        pushed = self.versions.push()
        return {
            "dvc_md5": last.dvc_md5,
            "dvc_dataset_md5": self.dataset_md5,
            "dvc_remote": self.versions.remote,
            "dvc_pushed_objects": pushed,
            # the add and the push: what versioning cost the run
            "dvc_seconds": round(self.seconds + time.perf_counter() - t0, 2),
        }

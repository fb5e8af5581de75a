"""Typed rollout state: variant roles, created_at of stored manifests, the strategy-state view, and
the one summary of a variant and a manifest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from manifests import manifest, variant

from mlforge.deployment.manifest import (
    Manifest,
    Variant,
    apply_traffic,
    read_manifest,
    write_manifest,
)
from mlforge.deployment.state import RolloutState, RolloutStatus, StateKey, VariantRole
from mlforge.deployment.summary import ManifestSummary, VariantSummary
from mlforge.io import layout
from mlforge.io.storage import LocalStorage, read_json

# --- roles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(VariantRole))
def test_role_round_trips_through_stored_json(role: VariantRole) -> None:
    v = variant(1, role.value)  # as read from JSON: a plain string
    assert v.name is role and v.role is role and v.name == role.value
    data = json.loads(v.model_dump_json())
    assert data["name"] == role.value and type(data["name"]) is str
    assert Variant.model_validate(data).name is role
    assert f"{v.name}" == str(v.name) == role.value  # messages and logs show the value, not the enum


def test_a_label_outside_the_roles_is_kept_as_written() -> None:
    v = variant(3, "shadow", 0, shadow=True)
    assert v.name == "shadow" and v.role is None and not isinstance(v.name, VariantRole)
    assert Variant.model_validate_json(v.model_dump_json()).name == "shadow"


# --- created_at --------------------------------------------------------------------------------


def _stored(storage: LocalStorage, created_at: str) -> dict[str, Any]:
    """An old manifest as stored: JSON with `created_at` exactly as an earlier version wrote it."""
    data = manifest([variant(1)]).model_dump(mode="json") | {"created_at": created_at}
    storage.write_bytes(layout.manifest("churn-api"), json.dumps(data).encode())
    return data


@pytest.mark.parametrize(
    ("stored", "expected", "offset_h"),
    [
        ("2026-11-02T12:00:00.123456+00:00", datetime(2026, 11, 2, 12, 0, 0, 123456, tzinfo=UTC), 0),
        ("2026-11-02T12:00:00", datetime(2026, 11, 2, 12, tzinfo=UTC), 0),  # no offset: read as UTC
        ("2026-11-02T14:00:00+02:00", datetime(2026, 11, 2, 12, tzinfo=UTC), 2),  # offset kept
        ("2026-11-02T12:00:00Z", datetime(2026, 11, 2, 12, tzinfo=UTC), 0),
    ],
)
def test_created_at_of_an_old_stored_manifest_is_timezone_aware(
    tmp_path: Path, stored: str, expected: datetime, offset_h: int
) -> None:
    storage = LocalStorage(tmp_path)
    _stored(storage, stored)
    m = read_manifest(storage, "churn-api")
    assert m is not None
    assert m.created_at == expected and m.created_at.utcoffset() == timedelta(hours=offset_h)


def test_created_at_is_stored_as_isoformat_as_before(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    data = _stored(storage, "2026-11-02T12:00:00.123456+00:00")
    m = read_manifest(storage, "churn-api")
    assert m is not None
    assert m.model_dump(mode="json") == data  # reading and writing back changes nothing
    offset = m.model_copy(
        update={"created_at": datetime(2026, 11, 2, 14, tzinfo=timezone(timedelta(hours=2)))}
    )
    assert offset.model_dump(mode="json")["created_at"] == "2026-11-02T14:00:00+02:00"
    now = datetime.now(UTC)
    written = write_manifest(storage, m.model_copy(update={"created_at": now}))
    # datetime.isoformat, not pydantic's "Z": what serving and older readers parse
    assert read_json(storage, layout.manifest("churn-api"))["created_at"] == now.isoformat()
    assert read_manifest(storage, "churn-api") == written


def test_new_manifests_are_created_now_in_utc() -> None:
    before = datetime.now(UTC)
    m = manifest([variant(1)])
    assert before <= m.created_at <= datetime.now(UTC) and m.created_at.utcoffset() == timedelta(0)


# --- strategy state ----------------------------------------------------------------------------


def test_state_keys_are_the_typed_view_fields() -> None:
    assert {k.value for k in StateKey} == set(RolloutState.model_fields)


def test_rollout_state_reads_the_stored_dict() -> None:
    m = manifest(
        [variant(1, "stable", 75), variant(2, "canary", 25)],
        strategy="canary",
        state={"step": 1, "live_version": 1, "candidate_version": 2, "status": "advancing", "extra": "kept"},
    )
    rs = m.rollout_state()
    assert (rs.step, rs.live_version, rs.candidate_version) == (1, 1, 2)
    assert rs.status is RolloutStatus.ADVANCING and rs.rejected_version is None
    assert rs.model_extra == {"extra": "kept"}
    newer = manifest([variant(1)], state={"status": "paused_by_a_newer_version"})
    assert newer.rollout_state().status == "paused_by_a_newer_version"


def test_enum_keys_and_values_store_as_plain_strings(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    write_manifest(
        storage, manifest([variant(1, VariantRole.STABLE, 90), variant(2, VariantRole.CANARY, 10)])
    )
    m = apply_traffic(storage, "churn-api", {"stable": 50, "canary": 50}, "in a test")
    stored = read_json(storage, layout.manifest("churn-api"))
    assert stored["state"] == {
        "status": "manual_traffic",
        "reason": "traffic set in a test: stable=50%, canary=50%",
    }
    assert [v["name"] for v in stored["variants"]] == ["stable", "canary"]
    assert m.state[StateKey.STATUS] == RolloutStatus.MANUAL_TRAFFIC


def test_unknown_variant_error_names_plain_strings() -> None:
    from mlforge.deployment.manifest import set_traffic

    m = manifest([variant(1, VariantRole.STABLE, 90), variant(2, VariantRole.CANARY, 10)])
    with pytest.raises(ValueError, match=r"it has \['canary', 'stable'\]"):
        set_traffic(m, {"nope": 100})


# --- the summary -------------------------------------------------------------------------------


def _rollout() -> Manifest:
    return manifest(
        [variant(1, VariantRole.CHAMPION, 100), variant(2, VariantRole.CHALLENGER, 0, shadow=True)],
        strategy="champion_challenger",
        created_at="2026-11-02T12:00:00.5+00:00",
        revision=3,
        state={"mode": "shadow", "status": "rejected", "reason": "too slow"},
    )


def test_variant_summary_fields_and_text() -> None:
    s = variant(2, VariantRole.CHALLENGER, 0, shadow=True).summary()
    assert s == VariantSummary(VariantRole.CHALLENGER, "churn", 2, 0, True)
    assert s.line() == "challenger v2    traffic   0%  (shadow)"
    assert s.compact() == str(s) == "challenger=v2:0% (shadow)"
    assert s.to_dict() == {"name": "challenger", "version": 2, "traffic": 0, "shadow": True}
    assert s.to_dict(model=True)["model_name"] == "churn"
    assert type(s.to_dict()["name"]) is str
    plain = variant(1).summary()
    assert plain.line() == "champion   v1    traffic 100%" and plain.compact() == "champion=v1:100%"


def test_manifest_summary() -> None:
    s = _rollout().summary()
    assert isinstance(s, ManifestSummary)
    assert (s.endpoint, s.model, s.revision, s.strategy) == ("churn-api", "churn", 3, "champion_challenger")
    assert s.created_at == datetime(2026, 11, 2, 12, 0, 0, 500000, tzinfo=UTC)
    assert s.status is RolloutStatus.REJECTED and s.reason == "too slow"
    assert s.served() == "champion=v1:100%, challenger=v2:0% (shadow)"
    assert s.line() == (
        "   3  2026-11-02T12:00:00  champion_challenger champion=v1:100%, challenger=v2:0% (shadow)  rejected"
    )
    record = s.to_dict()
    assert json.loads(json.dumps(record)) == record  # plain JSON
    assert record["created_at"] == "2026-11-02T12:00:00.500000+00:00"
    assert record["status"] == "rejected" and type(record["status"]) is str
    assert record["variants"] == [v.to_dict() for v in s.variants]
    assert manifest([variant(1)]).summary().line().endswith("champion=v1:100%  ")  # no status yet

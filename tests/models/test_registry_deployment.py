"""The promotion gate and deployment manifests: variants per strategy, sticky routing, revisions
and rollback."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from manifests import manifest, variant

from mlforge.config.spec import GateSpec, StrategySpec
from mlforge.deployment.manifest import (
    Manifest,
    Variant,
    read_manifest,
    rollback,
    write_manifest,
)
from mlforge.deployment.routing import bucket, route
from mlforge.deployment.variants import plan_variants
from mlforge.errors import DataError, ModelNotFoundError
from mlforge.io import layout
from mlforge.io.storage import LocalStorage, read_json
from mlforge.models.gate import decide

# --- the gate -----------------------------------------------------------------------------


AUC = GateSpec(metric="auc", min=0.70, max_regression=0.01)
LOGLOSS = GateSpec(metric="logloss", min=0.50, max_regression=0.02)


def test_below_minimum_is_not_promoted_even_without_champion() -> None:
    d = decide(AUC, "auc", 0.69, None)
    assert d.promote is False
    assert d.reason == "auc 0.6900 < minimum 0.7"
    assert d.champion is None


def test_minimum_is_inclusive() -> None:
    assert decide(AUC, "auc", 0.70, None).promote is True


def test_no_champion_promotes() -> None:
    d = decide(AUC, "auc", 0.75, None)
    assert d.promote is True
    assert "no champion yet" in d.reason
    assert d.as_tags() == {
        "mlforge.gate.promoted": "true",
        "mlforge.gate.reason": d.reason,
        "mlforge.gate.candidate": "0.750000",
        "mlforge.gate.champion": "none",
    }


def test_worse_than_champion_beyond_max_regression_is_not_promoted() -> None:
    d = decide(AUC, "auc", 0.78, 0.80)
    assert d.promote is False
    assert "worse than champion 0.8000" in d.reason
    assert d.as_tags()["mlforge.gate.promoted"] == "false"
    assert d.as_tags()["mlforge.gate.champion"] == "0.800000"


def test_within_max_regression_or_better_is_promoted() -> None:
    assert decide(AUC, "auc", 0.795, 0.80).promote is True
    assert decide(AUC, "auc", 0.85, 0.80).promote is True
    assert decide(AUC, "auc", 0.80, 0.80).promote is True


def test_zero_max_regression_rejects_any_regression() -> None:
    strict = GateSpec(metric="auc", min=0.5, max_regression=0.0)
    assert decide(strict, "auc", 0.7999, 0.80).promote is False
    assert decide(strict, "auc", 0.80, 0.80).promote is True


def test_logloss_is_lower_is_better() -> None:
    assert decide(LOGLOSS, "logloss", 0.60, None).promote is False  # above the maximum loss
    assert decide(LOGLOSS, "logloss", 0.60, None).reason == "logloss 0.6000 > maximum 0.5"
    assert decide(LOGLOSS, "logloss", 0.40, None).promote is True
    assert decide(LOGLOSS, "logloss", 0.30, 0.40).promote is True  # lower loss is better
    assert decide(LOGLOSS, "logloss", 0.41, 0.40).promote is True  # 0.01 worse, 0.02 allowed
    assert decide(LOGLOSS, "logloss", 0.45, 0.40).promote is False  # 0.05 worse
    assert "0.0500 worse" in decide(LOGLOSS, "logloss", 0.45, 0.40).reason


@pytest.mark.parametrize(("candidate", "champion"), [(0.795, 0.80), (0.745, 0.75), (0.705, 0.71)])
def test_exactly_max_regression_worse_is_promoted(candidate: float, champion: float) -> None:
    gate = GateSpec(metric="auc", min=0.70, max_regression=0.005)
    assert candidate >= champion - gate.max_regression  # the documented rule says: promote
    assert decide(gate, "auc", candidate, champion).promote is True


# --- plan_variants ------------------------------------------------------------------------


def summary(variants: list[Variant]) -> list[tuple[str, int, int, bool]]:
    return [(v.name, v.version, v.traffic, v.shadow) for v in variants]


def test_blue_green_puts_the_champion_on_all_traffic() -> None:
    previous = manifest([variant(1)])
    vs, state = plan_variants(StrategySpec(kind="blue_green"), variant(2, traffic=37), variant(3), previous)
    assert summary(vs) == [("champion", 2, 100, False)]
    assert state == {"live_version": 2}


def test_canary_first_deploy_goes_straight_to_100() -> None:
    vs, state = plan_variants(StrategySpec(kind="canary", steps=[10, 50, 100]), variant(1), None, None)
    assert summary(vs) == [("champion", 1, 100, False)]
    assert state == {"step": 2, "live_version": 1}


def test_canary_new_champion_starts_at_first_step_beside_previous() -> None:
    previous = manifest([variant(1)])
    vs, state = plan_variants(StrategySpec(kind="canary", steps=[10, 50, 100]), variant(2), None, previous)
    assert summary(vs) == [("stable", 1, 90, False), ("canary", 2, 10, False)]
    assert sum(v.traffic for v in vs) == 100
    assert state == {"step": 0, "live_version": 1, "candidate_version": 2}
    assert vs[0].booster_uri.endswith("/1/model.ubj")
    assert vs[1].booster_uri.endswith("/2/model.ubj")


def test_canary_same_version_stays_at_100() -> None:
    previous = manifest([variant(4)])
    vs, state = plan_variants(StrategySpec(kind="canary", steps=[5, 25, 50, 100]), variant(4), None, previous)
    assert summary(vs) == [("champion", 4, 100, False)]
    assert state == {"step": 3, "live_version": 4}


def test_canary_replanned_mid_rollout_keeps_stable_as_the_previous_version() -> None:
    strategy = StrategySpec(kind="canary", steps=[5, 25, 50, 100])
    first, _ = plan_variants(strategy, variant(2), None, manifest([variant(1)]))
    mid = manifest(first, strategy="canary")
    again, state = plan_variants(strategy, variant(2), None, mid)
    # Same inputs → same plan (so the deploy step writes no new revision); the rollout never
    # mistakes the 5% canary for the live version.
    assert summary(again) == summary(first) == [("stable", 1, 95, False), ("canary", 2, 5, False)]
    assert state["live_version"] == 1
    newer, _ = plan_variants(strategy, variant(3), None, mid)
    assert summary(newer) == [("stable", 1, 95, False), ("canary", 3, 5, False)]


def test_canary_previous_with_only_a_shadow_is_treated_as_no_previous() -> None:
    shadow_only = manifest([variant(1, traffic=0).model_copy(update={"shadow": True})])
    vs, _ = plan_variants(StrategySpec(kind="canary"), variant(2), None, shadow_only)
    assert summary(vs) == [("champion", 2, 100, False)]


def test_champion_challenger_split() -> None:
    strategy = StrategySpec(kind="champion_challenger", mode="split", challenger_traffic=20)
    vs, state = plan_variants(strategy, variant(5), variant(6, name="x", traffic=100), None)
    assert summary(vs) == [("champion", 5, 80, False), ("challenger", 6, 20, False)]
    assert state == {"mode": "split"}


def test_champion_challenger_shadow_never_answers() -> None:
    strategy = StrategySpec(kind="champion_challenger", mode="shadow", challenger_traffic=50)
    vs, state = plan_variants(strategy, variant(5), variant(6), None)
    assert summary(vs) == [("champion", 5, 100, False), ("challenger", 6, 0, True)]
    assert state == {"mode": "shadow"}
    m = manifest(vs, strategy="champion_challenger")
    assert [v.name for v in m.answering()] == ["champion"]
    assert {route(m, f"{i:05d}").name for i in range(2000)} == {"champion"}


def test_champion_challenger_without_challenger_is_champion_only() -> None:
    strategy = StrategySpec(kind="champion_challenger", mode="shadow")
    vs, state = plan_variants(strategy, variant(5), None, None)
    assert summary(vs) == [("champion", 5, 100, False)]
    assert state == {"live_version": 5}


# --- routing ------------------------------------------------------------------------------


def split_manifest(share: int, endpoint: str = "churn-api") -> Manifest:
    return manifest(
        [variant(1, "champion", 100 - share), variant(2, "challenger", share)],
        strategy="champion_challenger",
        endpoint=endpoint,
    )


def test_bucket_is_stable_and_in_range() -> None:
    assert bucket("00042", "churn-api") == bucket("00042", "churn-api")
    buckets = {bucket(f"{i:05d}", "churn-api") for i in range(5000)}
    assert buckets == set(range(100))
    # The endpoint salts the bucket: two endpoints do not split customers identically.
    same = sum(bucket(f"{i:05d}", "a") == bucket(f"{i:05d}", "b") for i in range(2000))
    assert same < 100


def test_route_is_sticky() -> None:
    m = split_manifest(50)
    first = [route(m, f"{i:05d}").name for i in range(500)]
    again = [route(split_manifest(50), f"{i:05d}").name for i in range(500)]
    assert first == again
    assert set(first) == {"champion", "challenger"}


def test_route_10_90_split_over_20000_ids() -> None:
    m = split_manifest(10)
    counts = Counter(route(m, f"{i:05d}").name for i in range(20_000))
    assert counts["challenger"] + counts["champion"] == 20_000
    assert abs(counts["challenger"] / 20_000 * 100 - 10) <= 1.5
    assert abs(counts["champion"] / 20_000 * 100 - 90) <= 1.5


def test_route_growing_canary_only_moves_customers_towards_it() -> None:
    small = manifest([variant(1, "stable", 95), variant(2, "canary", 5)], strategy="canary")
    big = manifest([variant(1, "stable", 75), variant(2, "canary", 25)], strategy="canary")
    ids = [f"{i:05d}" for i in range(5000)]
    for i in ids:
        if route(small, i).name == "canary":
            assert route(big, i).name == "canary"


def test_route_never_picks_a_zero_traffic_variant() -> None:
    m = manifest([variant(1, "champion", 100), variant(2, "challenger", 0)], strategy="champion_challenger")
    assert {route(m, str(i)).name for i in range(3000)} == {"champion"}


# --- manifests, revisions, rollback -------------------------------------------------------


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


def test_read_manifest_of_a_never_deployed_endpoint_is_none(storage: LocalStorage) -> None:
    assert read_manifest(storage, "churn-api") is None


def test_write_manifest_increments_revisions_and_keeps_history(storage: LocalStorage) -> None:
    revisions = []
    for version in (1, 2, 3):
        m = write_manifest(storage, manifest([variant(version)]).model_copy(update={"revision": 42}))
        revisions.append(m.revision)
    assert revisions == [1, 2, 3]  # the stored revision ignores whatever the caller put there
    current = read_manifest(storage, "churn-api")
    assert current is not None
    assert current.revision == 3
    assert current.variants[0].version == 3
    assert storage.list("deployments/churn-api/history/") == [
        layout.manifest_history("churn-api", r) for r in (1, 2, 3)
    ]
    for r in (1, 2, 3):
        old = Manifest.model_validate(read_json(storage, layout.manifest_history("churn-api", r)))
        assert old.revision == r
        assert old.variants[0].version == r
    assert read_json(storage, layout.manifest("churn-api")) == read_json(
        storage, layout.manifest_history("churn-api", 3)
    )


def test_endpoints_have_separate_revisions(storage: LocalStorage) -> None:
    write_manifest(storage, manifest([variant(1)], endpoint="a"))
    write_manifest(storage, manifest([variant(2)], endpoint="a"))
    assert write_manifest(storage, manifest([variant(1)], endpoint="b")).revision == 1


def test_rollback_restores_previous_variants_as_a_new_revision(storage: LocalStorage) -> None:
    write_manifest(storage, manifest([variant(1)]))
    write_manifest(
        storage,
        manifest([variant(1, "stable", 90), variant(2, "canary", 10)], strategy="canary"),
    )
    rolled = rollback(storage, "churn-api")
    assert rolled.revision == 3
    assert summary(rolled.variants) == [("champion", 1, 100, False)]
    assert rolled.strategy == "blue_green"
    current = read_manifest(storage, "churn-api")
    assert current is not None
    assert current.revision == 3
    assert summary(current.variants) == [("champion", 1, 100, False)]
    # History keeps all three revisions, including the one rolled back from.
    assert len(storage.list("deployments/churn-api/history/")) == 3
    rev2 = Manifest.model_validate(read_json(storage, layout.manifest_history("churn-api", 2)))
    assert [v.version for v in rev2.variants] == [1, 2]
    assert rolled.created_at >= rev2.created_at


def test_rollback_without_earlier_revision_fails(storage: LocalStorage) -> None:
    with pytest.raises(ModelNotFoundError, match="no earlier revision"):
        rollback(storage, "churn-api")
    write_manifest(storage, manifest([variant(1)]))
    with pytest.raises(ModelNotFoundError, match="churn-api has no earlier revision"):
        rollback(storage, "churn-api")
    current = read_manifest(storage, "churn-api")
    assert current is not None and current.revision == 1  # a failed rollback writes nothing


def test_corrupt_manifest_is_a_data_error(storage: LocalStorage) -> None:
    storage.write_bytes(layout.manifest("churn-api"), b'{"endpoint": "churn-api"}')
    with pytest.raises(DataError, match="deployment manifest of churn-api is invalid"):
        read_manifest(storage, "churn-api")
    storage.write_bytes(layout.manifest("churn-api"), b"{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_manifest(storage, "churn-api")


def test_variant_traffic_is_bounded() -> None:
    bad: dict[str, Any] = {"name": "x", "model_name": "m", "version": 1, "booster_uri": "u"}
    with pytest.raises(ValueError):
        Variant(**bad, traffic=101)
    with pytest.raises(ValueError):
        Variant(**bad, traffic=-1)


def test_an_earlier_cutoff_than_the_champion_does_not_contend() -> None:
    from datetime import date

    from mlforge.models.gate import unseen_by_champion

    champ = date(1998, 6, 30)
    assert unseen_by_champion(date(1998, 6, 30), champ) is None  # same cutoff: same holdout day
    assert unseen_by_champion(date(1998, 7, 7), champ) is None
    assert unseen_by_champion(date(1998, 6, 15), None) is None  # champion without a cutoff tag
    why = unseen_by_champion(date(1998, 6, 29), champ)
    assert why is not None and "1998-06-29 is earlier than the champion's 1998-06-30" in why

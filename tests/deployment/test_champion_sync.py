"""Which version gets the champion alias and which tags after a rollout's verdict (no registry)."""

from __future__ import annotations

from typing import Any

import pytest
from manifests import manifest, variant

from mlforge.deployment.champion import ChampionSync, apply_champion_sync, plan_champion_sync
from mlforge.models.tracking import ModelVersionInfo

ROLLOUT = manifest([variant(1, "stable", 90), variant(2, "canary", 10)], strategy="canary", revision=4)


class FakeTracker:
    """The three registry calls the sync makes, recorded in order."""

    def __init__(self, champion: int | None) -> None:
        self.champion = champion
        self.calls: list[tuple[Any, ...]] = []

    def alias(self, name: str, alias: str) -> ModelVersionInfo | None:
        self.calls.append(("alias", name, alias))
        if self.champion is None:
            return None
        return ModelVersionInfo(name, self.champion, None, "", "", {})

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self.calls.append(("set_alias", name, alias, version))
        self.champion = version

    def set_version_tags(self, name: str, version: int, tags: dict[str, str]) -> None:
        self.calls.append(("tags", name, version, tags))


def test_rollback_puts_champion_on_the_stable_version_and_tags_the_canary() -> None:
    written = manifest([variant(1, "champion", 100)], revision=5)
    plan = plan_champion_sync(written, ROLLOUT, "rollback", "p99 latency " + "x" * 600)
    assert plan is not None and (plan.model, plan.version, plan.verdict) == ("churn", 1, "rolled_back")
    assert plan.version_tags[1] == {"mlforge.deployment": "live", "mlforge.deployment_revision": "5"}
    tags = plan.version_tags[2]
    assert tags["mlforge.deployment"] == "rolled_back"
    assert (
        tags["mlforge.deployment_reason"].startswith("p99 latency")
        and len(tags["mlforge.deployment_reason"]) == 500
    )
    assert list(plan.version_tags) == [1, 2]  # the live version first


def test_promotion_tags_only_the_live_version() -> None:
    written = manifest([variant(2, "champion", 100)], revision=6)
    plan = plan_champion_sync(written, ROLLOUT, "promote", "healthy")
    assert plan == ChampionSync(
        "churn", 2, "promoted", {2: {"mlforge.deployment": "live", "mlforge.deployment_revision": "6"}}
    )


def test_rejection_tags_every_other_version_in_version_order() -> None:
    before = manifest([variant(3, "stable", 80), variant(1, "a", 10), variant(2, "b", 10)], strategy="canary")
    plan = plan_champion_sync(manifest([variant(3, "champion", 100)]), before, "reject", "worse")
    assert plan is not None and plan.verdict == "rejected"
    assert list(plan.version_tags) == [3, 1, 2]
    assert plan.version_tags[1] == {"mlforge.deployment": "rejected", "mlforge.deployment_reason": "worse"}


def test_no_single_live_version_changes_nothing() -> None:
    assert plan_champion_sync(ROLLOUT, ROLLOUT, "rollback", "") is None
    shadowed = manifest([variant(1, "champion", 100, shadow=True)])
    assert plan_champion_sync(shadowed, ROLLOUT, "promote", "") is None


def test_an_action_without_a_verdict_is_refused() -> None:
    with pytest.raises(ValueError, match="advance"):
        plan_champion_sync(manifest([variant(1)]), ROLLOUT, "advance", "")


def test_apply_moves_the_alias_then_sets_the_tags() -> None:
    plan = ChampionSync("churn", 1, "rolled_back", {1: {"a": "1"}, 2: {"b": "2"}})
    tracker = FakeTracker(champion=2)
    assert apply_champion_sync(tracker, plan) is True  # type: ignore[arg-type]
    assert tracker.calls == [
        ("alias", "churn", "champion"),
        ("set_alias", "churn", "champion", 1),
        ("tags", "churn", 1, {"a": "1"}),
        ("tags", "churn", 2, {"b": "2"}),
    ]
    fresh = FakeTracker(champion=None)
    assert apply_champion_sync(fresh, plan) is True and fresh.champion == 1  # type: ignore[arg-type]


def test_apply_keeps_an_alias_already_in_place() -> None:
    tracker = FakeTracker(champion=2)
    plan = ChampionSync("churn", 2, "promoted", {2: {"mlforge.deployment": "live"}})
    assert apply_champion_sync(tracker, plan) is False  # type: ignore[arg-type]
    assert [c[0] for c in tracker.calls] == ["alias", "tags"]

"""The registry after a rollout's verdict: `champion` on the version now answering all traffic.

A rollout's end is decided from live traffic, after the registry's gate: a promotion makes the
promoted version champion, a rollback or rejection puts the alias back on the version that kept
serving and tags the other ones with the verdict. `plan_champion_sync` decides (pure);
`apply_champion_sync` carries the plan out through a tracker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlforge.deployment.manifest import Manifest
from mlforge.models.gate import CHAMPION

if TYPE_CHECKING:
    from mlforge.models.tracking import Tracker

#: A rollout's final action → the verdict recorded on the versions it concerned.
VERDICTS = {"promote": "promoted", "rollback": "rolled_back", "reject": "rejected"}
#: Longest verdict reason stored as a version tag.
MAX_REASON = 500


@dataclass(frozen=True)
class ChampionSync:
    """What the registry should say: `version` is champion; `version_tags` to set, in order."""

    model: str
    version: int
    verdict: str
    version_tags: dict[int, dict[str, str]] = field(default_factory=dict)


def plan_champion_sync(written: Manifest, before: Manifest, action: str, reason: str) -> ChampionSync | None:
    """The alias and tags after `action` turned `before` into `written`; None: no single live version.

    The live version is tagged `live` with the manifest revision; on a rollback or a rejection
    every other version of `before` is tagged with the verdict and its reason.
    """
    live = [v for v in written.answering() if v.traffic == 100]
    if not live:
        return None
    if action not in VERDICTS:
        raise ValueError(f"no champion verdict for rollout action {action!r} (one of {sorted(VERDICTS)})")
    version = live[0].version
    verdict = VERDICTS[action]
    tags = {version: {"mlforge.deployment": "live", "mlforge.deployment_revision": str(written.revision)}}
    if verdict != "promoted":
        others = {v.version for v in before.variants} - {version}
        for other in sorted(others):
            tags[other] = {"mlforge.deployment": verdict, "mlforge.deployment_reason": reason[:MAX_REASON]}
    return ChampionSync(written.model, version, verdict, tags)


def apply_champion_sync(tracker: Tracker, plan: ChampionSync) -> bool:
    """Move the `champion` alias (if it is elsewhere) and set the plan's tags; True if it moved."""
    current = tracker.alias(plan.model, CHAMPION)
    moved = current is None or current.version != plan.version
    if moved:
        tracker.set_alias(plan.model, CHAMPION, plan.version)
    for version, tags in plan.version_tags.items():
        tracker.set_version_tags(plan.model, version, tags)
    return moved

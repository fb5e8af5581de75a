"""Typed rollout state: variant roles, the strategy-state keys a manifest stores, and a typed view of them.

The stored JSON keeps its shape: roles are strings (a ``StrEnum`` equals and serializes as its value),
the state stays a flat ``{key: int | str}`` dict, and :class:`RolloutState` only reads it.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class VariantRole(StrEnum):
    """The role a variant plays behind an endpoint (its label in responses and the prediction log)."""

    CHAMPION = "champion"  # answers all traffic (blue-green, finished rollouts) or the split's rest
    CHALLENGER = "challenger"  # champion-challenger: a split share or a shadow
    STABLE = "stable"  # canary: the version that served before the rollout
    CANARY = "canary"  # canary: the candidate at its current step
    BLUE = "blue"  # hand-made blue-green swaps (admin, benchmarks)
    GREEN = "green"


class StateKey(StrEnum):
    """Keys of ``Manifest.state`` the planners and the canary sensor write and read."""

    STEP = "step"  # canary: index into the strategy's steps
    LIVE_VERSION = "live_version"  # the version that serves (or served before the candidate)
    CANDIDATE_VERSION = "candidate_version"  # canary: the version being rolled out
    REJECTED_VERSION = "rejected_version"  # rolled back / rejected by live metrics: never re-planned
    PROMOTED_VERSION = "promoted_version"  # challenger promoted by live metrics
    MODE = "mode"  # champion-challenger: shadow or split
    STATUS = "status"  # what decided the revision (RolloutStatus)
    REASON = "reason"  # why, in one line
    DECIDED_ON_REVISION = "decided_on_revision"  # the revision the decision was taken on


class RolloutStatus(StrEnum):
    """Values of ``state.status``: what wrote the revision."""

    ADVANCING = "advancing"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"
    MANUAL_TRAFFIC = "manual_traffic"


class RolloutState(BaseModel):
    """A typed, read-only view of a manifest's strategy state (unknown keys are kept as extras)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    step: int | None = None
    live_version: int | None = None
    candidate_version: int | None = None
    rejected_version: int | None = None
    promoted_version: int | None = None
    mode: str | None = None
    # left to right: a known status becomes the enum, one written by a newer version stays a string
    status: RolloutStatus | str | None = Field(None, union_mode="left_to_right")
    reason: str | None = None
    decided_on_revision: int | None = None

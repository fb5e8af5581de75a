"""Variants of a new manifest: what each strategy (blue-green, canary, champion-challenger) deploys."""

from __future__ import annotations

from mlforge.config.spec import StrategySpec
from mlforge.deployment.manifest import Manifest, Variant
from mlforge.deployment.state import StateKey, VariantRole

# Strategy-state keys a later plan keeps: what live metrics decided beyond the registry's aliases.
REJECTED = StateKey.REJECTED_VERSION  # rolled back / rejected by live metrics: never re-planned
PROMOTED = StateKey.PROMOTED_VERSION  # challenger promoted by live metrics


def plan_variants(
    strategy: StrategySpec, champion: Variant, challenger: Variant | None, previous: Manifest | None
) -> tuple[list[Variant], dict[str, int | str]]:
    """Variants and strategy state for a new manifest.

    blue-green: the champion takes all traffic at once. canary: a new champion starts at the first
    step beside the previous one; a rollout of the same candidate in flight keeps its step (the
    canary sensor advances it), and a version the canary rolled back (``rejected_version``) is
    not rolled out again. champion-challenger: a split, or a shadow that scores but never
    answers; a challenger the live metrics promoted (``promoted_version``) keeps answering as the
    champion, a rejected one is not deployed again.

    When the plan gives the variants the previous manifest already serves under the same
    strategy, the previous strategy state is kept (so re-running the deployment writes no new
    revision over what the canary sensor recorded).
    """
    variants, state = _plan(strategy, champion, challenger, previous)
    if (
        previous is not None
        and previous.strategy == strategy.kind
        and [v.model_dump() for v in variants] == [v.model_dump() for v in previous.variants]
    ):
        state = {**state, **previous.state}
    return variants, state


def _plan(
    strategy: StrategySpec, champion: Variant, challenger: Variant | None, previous: Manifest | None
) -> tuple[list[Variant], dict[str, int | str]]:
    champ = champion.model_copy(update={"traffic": 100, "name": VariantRole.CHAMPION, "shadow": False})
    if strategy.kind == "canary":
        answering = previous.answering() if previous else []
        stable = next(
            (v for v in answering if v.name == VariantRole.STABLE), answering[0] if answering else None
        )
        canary = next((v for v in answering if v.name == VariantRole.CANARY), None)
        rejected = previous.rollout_state().rejected_version if previous else None
        if previous is not None and stable is not None and rejected == champion.version:
            # the canary of this version was rolled back: keep serving what serves now
            return [v.model_copy() for v in previous.variants], dict(previous.state)
        if (
            previous is not None
            and stable is not None
            and canary is not None
            and canary is not stable
            and canary.version == champion.version
        ):  # this candidate's rollout is in flight: the sensor owns its step
            step = strategy.steps.index(canary.traffic) if canary.traffic in strategy.steps else 0
            return [v.model_copy() for v in previous.variants], {
                StateKey.STEP: step,
                StateKey.LIVE_VERSION: stable.version,
                StateKey.CANDIDATE_VERSION: champion.version,
                **previous.state,
            }
        done: dict[str, int | str] = {
            StateKey.STEP: len(strategy.steps) - 1,
            StateKey.LIVE_VERSION: champion.version,
        }
        if stable is None or stable.version == champion.version:
            return [champ], dict(done)
        first = strategy.steps[0]
        if first >= 100:
            return [champ], dict(done)
        return (
            [
                stable.model_copy(
                    update={"name": VariantRole.STABLE, "traffic": 100 - first, "shadow": False}
                ),
                champion.model_copy(update={"name": VariantRole.CANARY, "traffic": first, "shadow": False}),
            ],
            {
                StateKey.STEP: 0,
                StateKey.LIVE_VERSION: stable.version,
                StateKey.CANDIDATE_VERSION: champion.version,
            },
        )
    carry: dict[str, int | str] = {}
    if strategy.kind == "champion_challenger" and previous is not None:
        promoted = previous.rollout_state().promoted_version
        if promoted is not None and promoted > champion.version:
            served = next((v for v in previous.answering() if v.version == promoted), None)
            if served is not None:  # live metrics promoted it past the registry's champion
                champion = served
                champ = champion.model_copy(
                    update={"traffic": 100, "name": VariantRole.CHAMPION, "shadow": False}
                )
                carry[PROMOTED] = promoted
        rejected = previous.rollout_state().rejected_version
        if challenger is not None and challenger.version in (rejected, champion.version):
            if challenger.version == rejected:
                carry[REJECTED] = rejected
            challenger = None
    if strategy.kind == "blue_green" or challenger is None:
        return [champ], {StateKey.LIVE_VERSION: champion.version, **carry}
    if strategy.mode == "shadow":
        return (
            [
                champ,
                challenger.model_copy(update={"name": VariantRole.CHALLENGER, "traffic": 0, "shadow": True}),
            ],
            {StateKey.MODE: "shadow", **carry},
        )
    share = strategy.challenger_traffic
    return (
        [
            champion.model_copy(
                update={"name": VariantRole.CHAMPION, "traffic": 100 - share, "shadow": False}
            ),
            challenger.model_copy(update={"name": VariantRole.CHALLENGER, "traffic": share, "shadow": False}),
        ],
        {StateKey.MODE: "split", **carry},
    )

"""Rollout: an endpoint's manifest written from the registry's aliases and the endpoint's strategy."""

from __future__ import annotations

from datetime import date
from typing import Any

from mlforge.config.spec import DeploymentSpec, ModelSpec, ProjectSpec, StrategySpec, parse_section
from mlforge.deployment.manifest import Manifest, Variant, read_manifest, write_manifest
from mlforge.deployment.state import VariantRole
from mlforge.deployment.variants import plan_variants
from mlforge.errors import MLForgeError, ModelNotFoundError
from mlforge.features.refs import service_features, service_views
from mlforge.io.storage import Storage
from mlforge.io.timeline import Cadence, key
from mlforge.models.base import ALGORITHM_TAG, CUTOFF_TAG, TASK_TAG, Task
from mlforge.models.gate import CHALLENGER, CHAMPION
from mlforge.models.registration import version_threshold
from mlforge.models.tracking import ModelVersionInfo, Tracker


def _variant(mv: ModelVersionInfo, model: ModelSpec) -> Variant:
    """A registered version as a variant: where its model file is, what loads it, its threshold."""
    task = Task(mv.tags.get(TASK_TAG, str(model.model_task)))
    return Variant(
        name=VariantRole.CHAMPION,
        model_name=mv.name,
        version=mv.version,
        booster_uri=mv.booster_uri,
        traffic=100,
        algorithm=mv.tags.get(ALGORITHM_TAG, model.algorithm),
        task=task,
        threshold=version_threshold(mv, model) if task is Task.BINARY else None,
    )


def deploy_endpoint(
    storage: Storage,
    tracker: Tracker,
    spec: ProjectSpec,
    dep: DeploymentSpec,
    partition: date,
    version: ModelVersionInfo | None = None,
    strategy: StrategySpec | None = None,
) -> tuple[Manifest, bool]:
    """Write the endpoint's manifest from the registry's aliases; (manifest, changed).

    The deployment asset rolls out the champion with the spec's strategy; `mlforge deploy` and the
    SDK pass a registered `version` (the challenger under champion-challenger, beside the
    champion; the version rolled out otherwise) and may pass another `strategy`.
    """
    model = spec.model(dep.model)
    strategy = strategy or dep.strategy
    champion = tracker.alias(model.name, CHAMPION)
    challenger = tracker.alias(model.name, CHALLENGER)
    if version is not None and strategy.kind == "champion_challenger":
        challenger = version
    elif version is not None:
        champion, challenger = version, None
    if champion is None:
        raise ModelNotFoundError(
            f"deployments/{dep.endpoint}: model {model.name} has no champion yet — materialize "
            f"models/{model.name}/registered first (or the candidate failed the gate)"
        )
    if challenger is not None and challenger.version == champion.version:
        challenger = None
    previous = read_manifest(storage, dep.endpoint)
    variants, state = plan_variants(
        strategy, _variant(champion, model), _variant(challenger, model) if challenger else None, previous
    )
    pairs = service_features(spec, model.feature_service)
    manifest = Manifest(
        endpoint=dep.endpoint,
        model=model.name,
        strategy=strategy.kind,
        feature_service=model.feature_service,
        feature_names=[f for _, f in pairs],
        entity_key=spec.service_entity(model.feature_service).join_key,
        views=service_views(spec, model.feature_service),
        variants=variants,
        partition=key(partition),
        state=state,
    )
    if previous is not None and _same(previous, manifest):
        return previous, False
    return write_manifest(storage, manifest), True


def _same(a: Manifest, b: Manifest) -> bool:
    strip = {"revision", "created_at", "partition"}
    return a.model_dump(exclude=strip) == b.model_dump(exclude=strip)


def strategy_of(strategy: Any, default: StrategySpec) -> StrategySpec:
    """A strategy given on its own: a `StrategySpec`, a DSL strategy object (``to_dict()``), a
    mapping of fields over `default` (a command's options), a kind's name, or None (`default`)."""
    if strategy is None or isinstance(strategy, StrategySpec):
        return strategy or default
    data = strategy.to_dict() if hasattr(strategy, "to_dict") else strategy
    data = {"kind": data} if isinstance(data, str) else dict(data)
    return parse_section(StrategySpec, {**default.model_dump(), **data}, "strategy")


def deploy_version(
    storage: Storage,
    tracker: Tracker,
    spec: ProjectSpec,
    endpoint: str,
    version: ModelVersionInfo,
    strategy: StrategySpec | None = None,
) -> tuple[Manifest, bool]:
    """Deploy a registered `version` to `endpoint` (`mlforge deploy`, the SDK's `deploy_model`):
    `deploy_endpoint` with that version, the manifest's partition its cutoff; (manifest, changed)."""
    dep = spec.deployment(endpoint)
    if dep.model != version.name:
        raise MLForgeError(f"endpoint {endpoint} serves model {dep.model}, not {version.name}")
    cutoff = version.tags.get(CUTOFF_TAG)
    partition = date.fromisoformat(cutoff) if cutoff else Cadence.of(spec).snap(spec.partitions.end)
    return deploy_endpoint(storage, tracker, spec, dep, partition, version=version, strategy=strategy)

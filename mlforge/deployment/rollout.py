"""Rollout: an endpoint's manifest written from the registry's aliases and the endpoint's strategy."""

from __future__ import annotations

from datetime import date

from mlforge.config.spec import DeploymentSpec, ModelSpec, ProjectSpec, StrategySpec
from mlforge.deployment.manifest import Manifest, Variant, read_manifest, write_manifest
from mlforge.deployment.state import VariantRole
from mlforge.deployment.variants import plan_variants
from mlforge.errors import ModelNotFoundError
from mlforge.features.refs import service_features, service_views
from mlforge.io.storage import Storage
from mlforge.io.timeline import key
from mlforge.models.base import ALGORITHM_TAG, TASK_TAG, Task
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

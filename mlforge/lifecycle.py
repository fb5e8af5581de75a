"""The model-side lifecycle steps, each a function of (storage, tracker, spec, day).

Dagster assets, the CLI and the SDK all call these, so a step works the same however it is run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from mlforge.deployment import Manifest, Variant, plan_variants, read_manifest, write_manifest
from mlforge.errors import DataError, MissingPartitionsError, ModelNotFoundError
from mlforge.features import service_features
from mlforge.labels import LABEL
from mlforge.offline_store import missing_snapshots, read_snapshot
from mlforge.predictions import predict_frame
from mlforge.registry import CHALLENGER, CHAMPION, GateDecision, decide
from mlforge.spec import DeploymentSpec, ModelSpec, ProjectSpec
from mlforge.storage import Storage, read_json, read_parquet, write_json, write_parquet
from mlforge.timeline import key
from mlforge.tracking import LoggedModel, ModelVersionInfo, Tracker
from mlforge.training import (
    booster_sha256,
    build_training_data,
    evaluate,
    predict,
    train_model,
    xgb_params,
)


def model_dir(model: str, cutoff: date) -> str:
    """Storage prefix of what training for `cutoff` keeps beside MLflow."""
    return f"models/{model}/cutoff={key(cutoff)}"


@dataclass(frozen=True)
class TrainedModel:
    """What one training run produced."""

    cutoff: date
    run_id: str
    model_id: str
    model_uri: str
    booster_uri: str
    experiment_id: str
    metrics: dict[str, float]
    booster_sha256: str
    data_version: str
    train_rows: int
    holdout_rows: int
    features: list[str]

    def to_json(self) -> dict[str, Any]:
        """JSON form stored as run.json."""
        d = dict(self.__dict__)
        d["cutoff"] = key(self.cutoff)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainedModel:
        """Inverse of to_json."""
        return cls(**{**d, "cutoff": date.fromisoformat(d["cutoff"])})

    def logged_model(self) -> LoggedModel:
        """The MLflow logged model this training produced (what a model version is created from)."""
        return LoggedModel(
            self.run_id,
            self.model_id,
            self.model_uri,
            self.booster_uri.rsplit("/", 1)[0],
            self.experiment_id,
        )


def train_cutoff(
    storage: Storage,
    tracker: Tracker,
    spec: ProjectSpec,
    model: ModelSpec,
    cutoff: date,
    tags: dict[str, str],
) -> TrainedModel:
    """Build the point-in-time training set for `cutoff`, train, evaluate, log to MLflow."""
    data = build_training_data(storage, spec, model, cutoff)
    booster = train_model(data, model)
    x_hold, y_hold = data.matrix("holdout")
    metrics = evaluate(predict(booster, x_hold), y_hold)
    lineage = json.dumps(data.data_versions, sort_keys=True)
    data_version = hashlib.sha256(lineage.encode()).hexdigest()[:16]
    digest = booster_sha256(booster)
    params, rounds = xgb_params(model)
    run_tags = {
        **tags,
        "mlforge.model": model.name,
        "mlforge.cutoff": key(cutoff),
        "mlforge.data_version": data_version,
        "mlforge.train_days": f"{data.train_days[0]}..{data.train_days[-1]}",
        "mlforge.holdout_day": key(data.holdout_day),
        "mlforge.booster_sha256": digest,
    }
    logged = tracker.log_training(
        experiment=f"{spec.project}/{model.name}",
        run_name=f"{model.name}-{key(cutoff)}",
        booster=booster,
        params={**params, "num_boost_round": rounds},
        metrics={f"holdout_{k}": v for k, v in metrics.items()},
        tags=run_tags,
        feature_names=data.features,
        artifacts={"data_versions.json": lineage.encode()},
    )
    prefix = model_dir(model.name, cutoff)
    write_parquet(storage, f"{prefix}/holdout.parquet", data.holdout)
    # The drift reference is the newest population the model was judged on (its holdout snapshot),
    # not the older training snapshots: customers age, so a reference months older than the
    # monitored day shows "drift" on every clean day.
    reference = data.holdout.select(data.features)
    n = spec.monitoring_for(model.name).drift.reference_rows
    if reference.height > n:
        reference = reference.sample(n, seed=model.training.seed)
    write_parquet(storage, f"{prefix}/reference.parquet", reference)
    trained = TrainedModel(
        cutoff=cutoff,
        run_id=logged.run_id,
        model_id=logged.model_id,
        model_uri=logged.model_uri,
        booster_uri=logged.booster_uri,
        experiment_id=logged.experiment_id,
        metrics=metrics,
        booster_sha256=digest,
        data_version=data_version,
        train_rows=data.train.height,
        holdout_rows=data.holdout.height,
        features=data.features,
    )
    write_json(storage, f"{prefix}/run.json", trained.to_json())
    return trained


def read_trained(storage: Storage, model: str, cutoff: date) -> TrainedModel:
    """The training run stored for `cutoff`; MissingPartitionsError when there is none."""
    k = f"{model_dir(model, cutoff)}/run.json"
    if not storage.exists(k):
        raise MissingPartitionsError(
            f"models/{model}/registered[{key(cutoff)}]", f"models/{model}/trained", [key(cutoff)]
        )
    return TrainedModel.from_json(read_json(storage, k))


@dataclass(frozen=True)
class Registration:
    """The outcome of registering one trained model."""

    version: int
    decision: GateDecision
    champion_version: int | None

    def to_json(self) -> dict[str, Any]:
        """JSON form stored as registration.json."""
        return {
            "version": self.version,
            "promoted": self.decision.promote,
            "reason": self.decision.reason,
            "candidate_metric": self.decision.candidate,
            "champion_metric": self.decision.champion,
            "champion_version": self.champion_version,
        }


def register_cutoff(
    storage: Storage, tracker: Tracker, model: ModelSpec, cutoff: date, tags: dict[str, str]
) -> Registration:
    """Register the cutoff's model as `challenger`; promote to `champion` only through the gate."""
    trained = read_trained(storage, model.name, cutoff)
    logged = trained.logged_model()
    existing = tracker.version_of_run(model.name, trained.run_id)
    mv = existing or tracker.register(
        model.name,
        logged,
        {**tags, "mlforge.cutoff": key(cutoff), "mlforge.data_version": trained.data_version},
    )
    tracker.set_alias(model.name, CHALLENGER, mv.version)
    champion = tracker.alias(model.name, CHAMPION)
    champion_metric = None
    if champion is not None and champion.version != mv.version:
        holdout = read_parquet(storage, f"{model_dir(model.name, cutoff)}/holdout.parquet")
        booster = tracker.load_booster(champion.booster_uri)
        scores = predict_frame(booster, holdout, trained.features)
        champion_metric = evaluate(scores, holdout[LABEL].to_numpy())[model.gate.metric]
    candidate = trained.metrics[model.gate.metric]
    if champion is not None and champion.version == mv.version:
        decision = GateDecision(True, "already champion", candidate, candidate)
    else:
        decision = decide(model.gate, candidate, champion_metric)
    if decision.promote:
        tracker.set_alias(model.name, CHAMPION, mv.version)
    tracker.set_version_tags(model.name, mv.version, decision.as_tags())
    after = tracker.alias(model.name, CHAMPION)
    reg = Registration(mv.version, decision, after.version if after else None)
    write_json(storage, f"{model_dir(model.name, cutoff)}/registration.json", reg.to_json())
    return reg


def _variant(mv: ModelVersionInfo) -> Variant:
    return Variant(
        name="champion", model_name=mv.name, version=mv.version, booster_uri=mv.booster_uri, traffic=100
    )


def deploy_endpoint(
    storage: Storage, tracker: Tracker, spec: ProjectSpec, dep: DeploymentSpec, partition: date
) -> tuple[Manifest, bool]:
    """Write the endpoint's manifest from the registry's aliases; (manifest, changed)."""
    model = spec.model(dep.model)
    champion = tracker.alias(model.name, CHAMPION)
    if champion is None:
        raise ModelNotFoundError(
            f"deployments/{dep.endpoint}: model {model.name} has no champion yet — materialize "
            f"models/{model.name}/registered first (or the candidate failed the gate)"
        )
    challenger = tracker.alias(model.name, CHALLENGER)
    if challenger is not None and challenger.version == champion.version:
        challenger = None
    previous = read_manifest(storage, dep.endpoint)
    variants, state = plan_variants(
        dep.strategy, _variant(champion), _variant(challenger) if challenger else None, previous
    )
    pairs = service_features(spec, model.feature_service)
    manifest = Manifest(
        endpoint=dep.endpoint,
        model=model.name,
        strategy=dep.strategy.kind,
        feature_service=model.feature_service,
        feature_names=[f for _, f in pairs],
        entity_key=spec.join_key(pairs[0][0]),
        views=sorted({v for v, _ in pairs}),
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


def service_frame(storage: Storage, spec: ProjectSpec, service: str, d: date) -> pl.DataFrame:
    """Every entity's features of a feature service as of day `d` (the views' snapshots joined)."""
    pairs = service_features(spec, service)
    frame: pl.DataFrame | None = None
    for view_name in dict.fromkeys(v for v, _ in pairs):
        missing = missing_snapshots(storage, view_name, [d])
        if missing:
            raise MissingPartitionsError(f"service {service}", f"features/{view_name}", missing)
        join_key = spec.join_key(view_name)
        cols = [f for v, f in pairs if v == view_name]
        snap = read_snapshot(storage, view_name, d).select(join_key, *cols)
        frame = snap if frame is None else frame.join(snap, on=join_key, how="full", coalesce=True)
    if frame is None:
        raise DataError(f"feature service {service} names no features")
    return frame


def champion_or_fail(tracker: Tracker, model: str, stage: str) -> ModelVersionInfo:
    """The current champion, or a clear error naming what to do."""
    champion = tracker.alias(model, CHAMPION)
    if champion is None:
        raise ModelNotFoundError(f"{stage}: model {model} has no champion yet; register one first")
    return champion

"""Registration: a trained model becomes an MLflow model version, champion only through the gate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from mlforge.config.spec import ModelSpec
from mlforge.errors import ModelNotFoundError
from mlforge.features.labels import LABEL
from mlforge.io import layout
from mlforge.io.storage import Storage, read_parquet, write_json
from mlforge.io.timeline import key
from mlforge.models.base import (
    ALGORITHM_TAG,
    CUTOFF_TAG,
    DATA_VERSION_TAG,
    TASK_TAG,
    THRESHOLD_TAG,
    FittedModel,
)
from mlforge.models.gate import CHALLENGER, CHAMPION, GateDecision, decide, unseen_by_champion
from mlforge.models.metrics import evaluate
from mlforge.models.predictions import predict_frame
from mlforge.models.tracking import ModelVersionInfo, Tracker
from mlforge.models.training import read_trained


@dataclass(frozen=True)
class Registration:
    """The outcome of registering one trained model."""

    version: int
    decision: GateDecision
    champion_version: int | None
    #: False when the candidate's cutoff is earlier than the champion's (it was not compared)
    contended: bool = True

    def to_json(self) -> dict[str, Any]:
        """JSON form stored as registration.json."""
        return {
            "version": self.version,
            "promoted": self.decision.promote,
            "reason": self.decision.reason,
            "candidate_metric": self.decision.candidate,
            "champion_metric": self.decision.champion,
            "champion_version": self.champion_version,
            "contended": self.contended,
        }


def register_cutoff(
    storage: Storage, tracker: Tracker, model: ModelSpec, cutoff: date, tags: dict[str, str]
) -> Registration:
    """Register the cutoff's model as `challenger`; promote to `champion` only through the gate.

    A candidate whose cutoff is earlier than the champion's is registered (and its holdout metrics
    stored) but neither becomes the challenger nor contends: see `gate.unseen_by_champion`.
    """
    trained = read_trained(storage, model.name, cutoff)
    logged = trained.logged_model()
    existing = tracker.version_of_run(model.name, trained.run_id)
    mv = existing or tracker.register(
        model.name,
        logged,
        {
            **tags,
            CUTOFF_TAG: key(cutoff),
            DATA_VERSION_TAG: trained.data_version,
            ALGORITHM_TAG: model.algorithm,
            TASK_TAG: str(model.model_task),
            **({THRESHOLD_TAG: repr(trained.threshold)} if trained.threshold is not None else {}),
        },
    )
    champion = tracker.alias(model.name, CHAMPION)
    candidate = trained.metrics[model.gate_metric]
    seen = None
    if champion is not None and champion.version != mv.version:
        seen = unseen_by_champion(cutoff, _cutoff_of(champion))
    if seen is not None:
        decision = GateDecision(False, seen, candidate, None)
        tracker.set_version_tags(model.name, mv.version, decision.as_tags())
        after = tracker.alias(model.name, CHAMPION)
        reg = Registration(mv.version, decision, after.version if after else None, contended=False)
        write_json(storage, layout.model_registration(model.name, cutoff), reg.to_json())
        return reg
    tracker.set_alias(model.name, CHALLENGER, mv.version)
    champion_metric = None
    if champion is not None and champion.version != mv.version:
        holdout = read_parquet(storage, layout.model_holdout(model.name, cutoff))
        scores = predict_frame(version_model(tracker, champion, model), holdout, trained.features)
        champion_metric = evaluate(scores, holdout[LABEL].to_numpy(), model.threshold, model.model_task)[
            model.gate_metric
        ]
    if champion is not None and champion.version == mv.version:
        decision = GateDecision(True, "already champion", candidate, candidate)
    else:
        decision = decide(model.gate, model.gate_metric, candidate, champion_metric)
    if decision.promote:
        tracker.set_alias(model.name, CHAMPION, mv.version)
    tracker.set_version_tags(model.name, mv.version, decision.as_tags())
    after = tracker.alias(model.name, CHAMPION)
    reg = Registration(mv.version, decision, after.version if after else None)
    write_json(storage, layout.model_registration(model.name, cutoff), reg.to_json())
    return reg


def _cutoff_of(version: ModelVersionInfo) -> date | None:
    """The cutoff a version was trained for (its ``mlforge.cutoff`` tag), None when untagged."""
    raw = version.tags.get(CUTOFF_TAG)
    return date.fromisoformat(raw) if raw else None


def champion_or_fail(tracker: Tracker, model: str, stage: str) -> ModelVersionInfo:
    """The current champion, or a clear error naming what to do."""
    champion = tracker.alias(model, CHAMPION)
    if champion is None:
        raise ModelNotFoundError(f"{stage}: model {model} has no champion yet; register one first")
    return champion


def version_model(tracker: Tracker, version: ModelVersionInfo, model: ModelSpec) -> FittedModel:
    """The model of a registered version, loaded with the algorithm it was fitted with.

    That is its ``mlforge.algorithm`` tag; versions registered before the tag existed are XGBoost,
    as is the spec's default, so the spec's algorithm stands in for them.
    """
    return tracker.load_model(version.booster_uri, version.tags.get(ALGORITHM_TAG, model.algorithm))


def version_threshold(version: ModelVersionInfo, model: ModelSpec) -> float:
    """A binary version's decision threshold: its THRESHOLD_TAG (chosen on the validation folds
    when the spec asks for it), else the spec's `threshold`."""
    raw = version.tags.get(THRESHOLD_TAG)
    return float(raw) if raw else model.threshold

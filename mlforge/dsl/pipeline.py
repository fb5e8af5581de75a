"""The fluent builder: a project assembled stage by stage, validated by the same `parse_spec`."""

from __future__ import annotations

from typing import Any

from mlforge.config.spec import ProjectSpec
from mlforge.dsl.nodes import (
    Dataset,
    Deployment,
    Entity,
    FeatureService,
    FeatureView,
    Gate,
    Model,
    Monitoring,
    Partitions,
    Project,
    Validation,
)
from mlforge.errors import SpecError

_SECTIONS = (
    "entities",
    "datasets",
    "feature_views",
    "feature_services",
    "models",
    "deployments",
    "monitoring",
)


class Pipeline:
    """``Pipeline("churn", partitions=…).with_dataset(…).with_feature_engineering(…)
    .with_training(…).with_evaluation(…).with_deployment(…).build()`` → a validated ProjectSpec.

    Each ``with_*`` adds DSL objects to the project's sections and returns the builder; top-level
    fields (description, partitions, timezone, infrastructure, schedules …) are keyword arguments.
    """

    def __init__(self, name: str, **fields: Any) -> None:
        self._fields: dict[str, Any] = {"project": name, **fields}
        self._sections: dict[str, list[Any]] = {k: [] for k in _SECTIONS}

    def _add(self, section: str, *items: Any) -> Pipeline:
        for item in items:
            if item not in self._sections[section]:
                self._sections[section].append(item)
        return self

    def with_partitions(self, partitions: Partitions | None = None, **fields: Any) -> Pipeline:
        """The partitioning: a :class:`Partitions`, or its fields (``start=…, end=…``)."""
        self._fields["partitions"] = partitions if partitions is not None else Partitions(**fields)
        return self

    def with_entity(self, *entities: Entity) -> Pipeline:
        """Add entities (join keys)."""
        return self._add("entities", *entities)

    def with_dataset(self, dataset: Dataset, *, entity: Entity | None = None) -> Pipeline:
        """Add a dataset, and the entity it is about when given (once)."""
        if entity is not None:
            self.with_entity(entity)
        return self._add("datasets", dataset)

    def with_feature_engineering(
        self, *views: FeatureView, service: FeatureService | None = None
    ) -> Pipeline:
        """Add feature views, and the feature service a model reads when given."""
        self._add("feature_views", *views)
        return self._add("feature_services", service) if service is not None else self

    def with_training(self, model: Model) -> Pipeline:
        """Add a model (feature service, label, algorithm, params, training window)."""
        return self._add("models", model)

    def with_evaluation(
        self,
        *,
        gate: Gate | None = None,
        validation: Validation | None = None,
        monitoring: Monitoring | None = None,
        model: str | None = None,
    ) -> Pipeline:
        """Set how a model is judged: its gate and validation (the last model added, or `model`),
        and its monitoring (drift, alert thresholds)."""
        models = self._sections["models"]
        where = f"<python project {self._fields['project']!r}>"
        if not models:
            raise SpecError(where, ["with_evaluation: no model yet: call with_training(Model(…)) first"])
        names = [m.fields.get("name") for m in models]
        if model is not None and model not in names:
            raise SpecError(where, [f"with_evaluation.model: unknown model '{model}' (known: {names})"])
        target = models[names.index(model)] if model is not None else models[-1]
        for key, value in (("gate", gate), ("validation", validation)):
            if value is not None:
                target.fields[key] = value
        return self._add("monitoring", monitoring) if monitoring is not None else self

    def with_deployment(self, *deployments: Deployment) -> Pipeline:
        """Add deployments (endpoint, model, strategy)."""
        return self._add("deployments", *deployments)

    def project(self) -> Project:
        """The DSL project assembled so far."""
        sections = {k: list(v) for k, v in self._sections.items() if v}
        name = self._fields["project"]
        return Project(name, **{k: v for k, v in self._fields.items() if k != "project"}, **sections)

    def to_dict(self) -> dict[str, Any]:
        """The plain mapping the YAML would hold."""
        return self.project().to_dict()

    def build(self, path: str | None = None) -> ProjectSpec:
        """The validated spec (SpecError naming every bad field, as for YAML)."""
        return self.project().to_spec(path)

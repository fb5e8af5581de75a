"""The DSL's objects: one per model of :mod:`mlforge.config.spec`, each holding what the YAML would.

A node keeps exactly the keyword arguments it was given (plus the `kind` its class stands for)
and turns them into the plain mapping the YAML would hold (:meth:`Node.to_dict`). It declares no
field, rule or default of its own: names, types, defaults and every check live in the pydantic
models, and only :func:`mlforge.config.spec.parse_spec` (through :meth:`Project.to_spec`) judges
them, so a bad field fails with the same ``section[i].field: what is wrong`` line as in YAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, ClassVar

from pydantic import BaseModel

from mlforge.config import spec as s


class Node:
    """A DSL object: the fields of one spec model, as keyword arguments (the YAML mapping's keys).

    The first fields of :attr:`positional` may also be passed positionally
    (``Entity("customer", join_key="customer_id")``).
    """

    #: The spec model this node stands for (its fields, defaults and checks).
    model: ClassVar[type[BaseModel]]
    #: Fields that may be given positionally, in order.
    positional: ClassVar[tuple[str, ...]] = ()
    #: The `kind` the class stands for (a transformation, label or strategy), set by the class itself.
    kind: ClassVar[str | None] = None
    #: Fields the class sets itself (``{"kind": kind}``).
    fixed: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.fixed = {"kind": cls.kind} if cls.kind else {}
        model = cls.__dict__.get("model")
        if model is not None:  # the field list comes from the model, so it cannot go stale
            names = ", ".join(n for n in model.model_fields if n not in cls.fixed) or "none"
            cls.__doc__ = f"{(cls.__doc__ or '').strip()}\n\nFields (see :class:`{model.__module__}.{model.__name__}`): {names}."

    def __init__(self, *args: Any, **fields: Any) -> None:
        name = type(self).__name__
        if len(args) > len(self.positional):
            raise TypeError(
                f"{name}() takes {len(self.positional)} positional argument(s) "
                f"({', '.join(self.positional) or 'none'}), got {len(args)}"
            )
        given = dict(zip(self.positional, args, strict=False))
        for key in given.keys() & fields.keys():
            raise TypeError(f"{name}() got {key!r} both positionally and as a keyword")
        for key in self.fixed.keys() & fields.keys():
            raise TypeError(f"{name}() sets {key}={self.fixed[key]!r} itself")
        self.fields: dict[str, Any] = {**self.fixed, **given, **fields}

    def to_dict(self) -> dict[str, Any]:
        """The plain mapping the YAML would hold (nested nodes turned into mappings too)."""
        return {k: plain(v) for k, v in self.fields.items()}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.fields == self.fields  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by its fields

    def __repr__(self) -> str:
        from mlforge.dsl.source import render

        return render(self)


def plain(value: Any) -> Any:
    """A DSL value as YAML would hold it: nodes → mappings, tuples → lists, the rest as it is."""
    if isinstance(value, Node):
        return value.to_dict()
    if isinstance(value, BaseModel):  # a spec model given where a node goes
        return value.model_dump(exclude_unset=True)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


# --- infrastructure ----------------------------------------------------------------------------


class Storage(Node):
    """Where datasets, features, manifests, reports and logs live."""

    model = s.StorageSpec


class OnlineStore(Node):
    """The online store serving reads features from."""

    model = s.OnlineStoreSpec


class Tracking(Node):
    """MLflow tracking and registry."""

    model = s.TrackingSpec


class Infrastructure(Node):
    """External parts: state folder, storage, online store, tracking, executor."""

    model = s.InfrastructureSpec


# --- data --------------------------------------------------------------------------------------


class Partitions(Node):
    """The one partitioning every stage shares (``Partitions(start=…, end=…)``)."""

    model = s.PartitionsSpec


class Entity(Node):
    """A join key: ``Entity("customer", join_key="customer_id")``."""

    model = s.EntitySpec
    positional = ("name",)


class Column(Node):
    """One column of a dataset's schema: ``Column("int", nullable=False, min=1)``."""

    model = s.ColumnSpec
    positional = ("type",)


class Source(Node):
    """Where a dataset is read from: ``Source("data/x.csv", format="csv")``."""

    model = s.SourceSpec
    positional = ("path",)


class Timestamp(Node):
    """The event-time column and its format: ``Timestamp("date", format="%Y%m%d")``."""

    model = s.TimestampSpec
    positional = ("column",)


class Dataset(Node):
    """A raw dataset: ``Dataset("transactions", source=Source(…), timestamp=…, entity=…, columns={…})``."""

    model = s.DatasetSpec
    positional = ("name",)


# --- features ----------------------------------------------------------------------------------


class Recency(Node):
    """Transformation `recency`: days_since_last, days_since_first."""

    model = s.RecencyTransform
    kind = "recency"


class Tenure(Node):
    """Transformation `tenure`: tenure_days."""

    model = s.TenureTransform
    kind = "tenure"


class Aggregate(Node):
    """Transformation `aggregate`: ``Aggregate(columns=[…], functions=["sum", "mean"])``."""

    model = s.AggregateTransform
    kind = "aggregate"


class Window(Node):
    """Transformation `window`: ``Window(columns=[…], functions=[…], windows_days=[30, 90])``."""

    model = s.WindowTransform
    kind = "window"


class Feature(Node):
    """A declared feature of a SQL or profile view: ``Feature("store_id", type="int")``."""

    model = s.FeatureSpec
    positional = ("name",)


class FeatureView(Node):
    """A feature view: transformations over events, a SQL query, or a profile's features."""

    model = s.FeatureViewSpec
    positional = ("name",)


class Join(Node):
    """A view of another entity joined in a service: ``Join("store_stats", on="profile:store_id")``."""

    model = s.ServiceJoin
    positional = ("view",)


class FeatureService(Node):
    """What a model reads: ``FeatureService("churn_features", features=["view:*"], joins=[…])``."""

    model = s.FeatureServiceSpec
    positional = ("name",)


# --- models ------------------------------------------------------------------------------------


class Condition(Node):
    """A row filter of a label: ``Condition("number_of_cds", "ge", 3)``."""

    model = s.Condition
    positional = ("column", "op", "value")


class ChurnLabel(Node):
    """Label `churn`: no (matching) event in the horizon (binary)."""

    model = s.ChurnLabel
    kind = "churn"


class EventLabel(Node):
    """Label `event`: at least one (matching) event in the horizon (binary)."""

    model = s.EventLabel
    kind = "event"


class AggregateLabel(Node):
    """Label `aggregate`: sum / count / mean of a column in the horizon (regression; bins: multiclass)."""

    model = s.AggregateLabel
    kind = "aggregate"


class ColumnLabel(Node):
    """Label `column`: a value from a labels dataset (the model declares its task)."""

    model = s.ColumnLabel
    kind = "column"


class Training(Node):
    """Which snapshots a cutoff trains on."""

    model = s.TrainingSpec


class Validation(Node):
    """Validation folds and the choice of a binary model's threshold."""

    model = s.ValidationSpec


class Gate(Node):
    """The promotion gate: ``Gate(metric="auc", min=0.7, max_regression=0.005)``."""

    model = s.GateSpec


class Model(Node):
    """A model: ``Model("churn", feature_service=…, label=ChurnLabel(…), algorithm="xgboost", …)``."""

    model = s.ModelSpec
    positional = ("name",)


# --- deployments and monitoring ----------------------------------------------------------------


class PromotionCriteria(Node):
    """When a challenger is promoted (champion-challenger)."""

    model = s.PromotionCriteria


class BlueGreen(Node):
    """Strategy `blue_green`: a new champion takes all traffic at once."""

    model = s.StrategySpec
    kind = "blue_green"


class Canary(Node):
    """Strategy `canary`: ``Canary(steps=[5, 25, 50, 100], max_error_rate=0.01, …)``."""

    model = s.StrategySpec
    kind = "canary"


class ChampionChallenger(Node):
    """Strategy `champion_challenger`: ``ChampionChallenger(mode="shadow", challenger_traffic=10, …)``."""

    model = s.StrategySpec
    kind = "champion_challenger"


class Deployment(Node):
    """An endpoint serving a model: ``Deployment("churn-api", model="churn", strategy=Canary())``."""

    model = s.DeploymentSpec
    positional = ("endpoint",)


class Drift(Node):
    """Data drift settings of a model."""

    model = s.DriftSpec


class Monitoring(Node):
    """Monitoring of a model: ``Monitoring("churn", drift=Drift(threshold=0.5), alert_thresholds={…})``."""

    model = s.MonitoringSpec
    positional = ("model",)


class Schedules(Node):
    """The refresh schedule."""

    model = s.ScheduleSpec


class Alerts(Node):
    """Where alerts go."""

    model = s.AlertsSpec


class Replay(Node):
    """A simulated clock for demos and tests."""

    model = s.ReplaySpec


# --- the project -------------------------------------------------------------------------------


class Project(Node):
    """A whole project: ``Project("churn", partitions=Partitions(…), entities=[…], datasets=[…], …)``.

    :meth:`to_spec` validates it with :func:`mlforge.config.spec.parse_spec`, exactly as a YAML
    file is validated; a module-level ``project = Project(…)`` makes a Python file a spec.
    """

    model = s.ProjectSpec
    positional = ("project",)

    def to_spec(self, path: str | None = None) -> s.ProjectSpec:
        """The validated spec; a bad field raises SpecError naming `path` and the field path."""
        name = self.fields.get("project")
        return s.parse_spec(self.to_dict(), path or f"<python project {name!r}>")


#: Spec model (and `kind` for models several DSL classes share) → DSL class, for generating source.
NODES: dict[tuple[type[BaseModel], str | None], type[Node]] = {}
for _cls in list(globals().values()):
    if isinstance(_cls, type) and issubclass(_cls, Node) and _cls is not Node:
        NODES[(_cls.model, _cls.kind if _cls.model is s.StrategySpec else None)] = _cls


def node_class(obj: BaseModel) -> type[Node]:
    """The DSL class of a spec object (a strategy's by its kind)."""
    kind = getattr(obj, "kind", None) if isinstance(obj, s.StrategySpec) else None
    return NODES[(type(obj), kind)]

"""Deployment manifests: the only thing serving reads.

A manifest names, per endpoint, which model versions serve, in which role, with what share of
traffic, and where their native booster lives. It is written atomically; the previous one is kept
in the endpoint's history so a rollback is a rewrite of an older manifest.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, PlainSerializer

from mlforge.deployment.state import RolloutState, RolloutStatus, StateKey, VariantRole
from mlforge.deployment.summary import ManifestSummary, VariantSummary
from mlforge.errors import DataError, MLForgeError, ModelNotFoundError
from mlforge.io import layout
from mlforge.io.storage import Storage, read_json, write_json
from mlforge.models.base import Task


def _aware(t: datetime) -> datetime:
    # Every writer used datetime.now(UTC); a stored time without an offset is UTC.
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _iso(t: datetime) -> str:
    # datetime.isoformat ("...+00:00"), as manifests were always stored; pydantic would write "Z".
    return t.isoformat()


Timestamp = Annotated[
    datetime, AfterValidator(_aware), PlainSerializer(_iso, return_type=str, when_used="json")
]
"""A timezone-aware time, read from any ISO string, stored in ``datetime.isoformat`` form."""


def utc_now() -> datetime:
    """The creation time of a new revision."""
    return datetime.now(UTC)


class Variant(BaseModel):
    """One model version behind an endpoint."""

    # Left to right: a known role becomes the enum; any other label (hand-made manifests, e.g. a
    # shadow named "shadow") stays the string it was, so every stored manifest still reads.
    name: VariantRole | str = Field(
        union_mode="left_to_right",
        description="Variant role (champion, challenger, stable, canary, blue, green): its label in "
        "responses and the prediction log.",
    )
    model_name: str
    version: int
    booster_uri: str = Field(description="The native model file (its algorithm's model_file).")
    traffic: int = Field(ge=0, le=100, description="Percent of requests it answers.")
    shadow: bool = Field(False, description="Scores every request, answers none.")
    # Manifests written before other algorithms and tasks existed are XGBoost binary models.
    algorithm: str = Field("xgboost", description="The spec's algorithm: what loads booster_uri.")
    task: Task = Field(Task.BINARY, description="What the model predicts (the response's fields).")
    threshold: float | None = Field(
        None, description="A binary version's decision threshold: the response's label is score >= it."
    )

    @property
    def role(self) -> VariantRole | None:
        """The variant's role, None for a label outside :class:`VariantRole`."""
        return self.name if isinstance(self.name, VariantRole) else None

    def summary(self) -> VariantSummary:
        """The variant as the CLI, the monitor report, asset metadata and the admin API show it."""
        return VariantSummary(self.name, self.model_name, self.version, self.traffic, self.shadow)


class Manifest(BaseModel):
    """What an endpoint serves."""

    endpoint: str
    model: str
    strategy: Literal["blue_green", "canary", "champion_challenger"]
    feature_service: str
    feature_names: list[str]
    entity_key: str
    views: list[str]
    variants: list[Variant]
    revision: int = 1
    created_at: Timestamp = Field(default_factory=utc_now)
    partition: str | None = None
    state: dict[str, int | str] = Field(default_factory=dict)

    def answering(self) -> list[Variant]:
        """Variants that answer requests (traffic > 0, not shadows)."""
        return [v for v in self.variants if v.traffic > 0 and not v.shadow]

    def variant(self, role: VariantRole, *, answering: bool = False) -> Variant | None:
        """The first variant in `role` (only among the answering ones with `answering`)."""
        return next((v for v in (self.answering() if answering else self.variants) if v.name == role), None)

    def rollout_state(self) -> RolloutState:
        """The strategy state, typed (the stored dict stays as it is)."""
        return RolloutState.model_validate(self.state)

    def summary(self) -> ManifestSummary:
        """The revision as the CLI, the monitor report, asset metadata and the admin API show it."""
        rs = self.rollout_state()
        return ManifestSummary(
            endpoint=self.endpoint,
            model=self.model,
            revision=self.revision,
            strategy=self.strategy,
            created_at=self.created_at,
            variants=tuple(v.summary() for v in self.variants),
            status=rs.status,
            reason=rs.reason,
            state=dict(self.state),
        )


def read_manifest(storage: Storage, endpoint: str) -> Manifest | None:
    """The current manifest of `endpoint`, or None if it was never deployed."""
    key = layout.manifest(endpoint)
    if not storage.exists(key):
        return None
    try:
        return Manifest.model_validate(read_json(storage, key))
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"deployment manifest of {endpoint} is invalid: {exc}") from None


class DeploymentConflictError(MLForgeError):
    """The manifest changed since it was read (another writer got there first)."""


def write_manifest(storage: Storage, manifest: Manifest, expected_revision: int | None = None) -> Manifest:
    """Store `manifest` as the next revision (history first, then the current pointer).

    With `expected_revision`, refuse (DeploymentConflictError) when the current revision is not
    that one any more: a decision taken on revision N is not written over a newer N + 1.
    """
    previous = read_manifest(storage, manifest.endpoint)
    if expected_revision is not None and (previous.revision if previous else 0) != expected_revision:
        raise DeploymentConflictError(
            f"manifest of {manifest.endpoint} is at revision {previous.revision if previous else 0}, "
            f"not {expected_revision}: it changed meanwhile; read it again"
        )
    m = manifest.model_copy(update={"revision": (previous.revision + 1) if previous else 1})
    data = m.model_dump(mode="json")
    write_json(storage, layout.manifest_history(m.endpoint, m.revision), data)
    write_json(storage, layout.manifest(m.endpoint), data)
    return m


def rollback(storage: Storage, endpoint: str) -> Manifest:
    """Make the revision before the current one current again (as a new revision)."""
    current = read_manifest(storage, endpoint)
    if current is None or current.revision < 2:
        raise ModelNotFoundError(f"endpoint {endpoint} has no earlier revision to roll back to")
    old = Manifest.model_validate(read_json(storage, layout.manifest_history(endpoint, current.revision - 1)))
    return write_manifest(storage, old.model_copy(update={"created_at": utc_now()}))


def history(storage: Storage, endpoint: str) -> list[Manifest]:
    """Every stored revision of `endpoint`, oldest first."""
    keys = layout.stored_revisions(storage.list(layout.manifest_history_prefix(endpoint)), endpoint)
    out = [Manifest.model_validate(read_json(storage, k)) for k in keys.values()]
    return sorted(out, key=lambda m: m.revision)


def set_traffic(manifest: Manifest, traffic: dict[str, int]) -> Manifest:
    """`manifest` with new traffic shares for its existing, answering-capable variants.

    Every named variant must exist and not be a shadow; variants not named keep their share; the
    shares of the non-shadow variants must add up to 100. Raises ValueError naming the problem.
    """
    # plain-string keys: the names are echoed in error messages, where an enum's repr would show
    names = {str(v.name): v for v in manifest.variants}
    unknown = sorted(set(traffic) - set(names))
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown} of {manifest.endpoint}; it has {sorted(names)}")
    shadows = sorted(n for n in traffic if names[n].shadow)
    if shadows:
        raise ValueError(f"shadow variant(s) {shadows} answer no traffic; shadows stay at 0")
    bad = {n: t for n, t in traffic.items() if not 0 <= t <= 100}
    if bad:
        raise ValueError(f"traffic must be 0..100 percent, got {bad}")
    variants = [v.model_copy(update={"traffic": traffic.get(v.name, v.traffic)}) for v in manifest.variants]
    total = sum(v.traffic for v in variants if not v.shadow)
    if total != 100:
        shares = {str(v.name): v.traffic for v in variants if not v.shadow}
        raise ValueError(f"traffic of the answering variants must add up to 100, got {total} ({shares})")
    return manifest.model_copy(update={"variants": variants})


def apply_traffic(storage: Storage, endpoint: str, traffic: dict[str, int], source: str) -> Manifest:
    """Write a new revision of `endpoint` with `traffic` shares (see `set_traffic`); the written one.

    The state records ``status: manual_traffic`` and a reason ``"traffic set <source>: a=75%, ..."``
    (`source` e.g. "through the admin API"). Raises ModelNotFoundError when the endpoint has no
    manifest, ValueError for bad shares, DeploymentConflictError when the manifest changed meanwhile.
    """
    current = read_manifest(storage, endpoint)
    if current is None:
        raise ModelNotFoundError(f"endpoint {endpoint} has no deployment manifest yet")
    changed = set_traffic(current, traffic)
    reason = f"traffic set {source}: " + ", ".join(f"{v.name}={v.traffic}%" for v in changed.variants)
    state = {**changed.state, StateKey.STATUS: RolloutStatus.MANUAL_TRAFFIC, StateKey.REASON: reason}
    return write_manifest(
        storage,
        changed.model_copy(update={"state": state, "created_at": utc_now()}),
        expected_revision=current.revision,
    )

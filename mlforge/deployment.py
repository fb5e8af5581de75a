"""Deployment manifests: the only thing serving reads.

A manifest names, per endpoint, which model versions serve, in which role, with what share of
traffic, and where their native booster lives. It is written atomically; the previous one is kept
in the endpoint's history so a rollback is a rewrite of an older manifest.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from mlforge.errors import DataError, ModelNotFoundError
from mlforge.spec import StrategySpec
from mlforge.storage import Storage, read_json, write_json


class Variant(BaseModel):
    """One model version behind an endpoint."""

    name: str = Field(description="Variant label in responses: champion, challenger, canary, blue, green.")
    model_name: str
    version: int
    booster_uri: str
    traffic: int = Field(ge=0, le=100, description="Percent of requests it answers.")
    shadow: bool = Field(False, description="Scores every request, answers none.")


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
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    partition: str | None = None
    state: dict[str, int | str] = Field(default_factory=dict)

    def answering(self) -> list[Variant]:
        """Variants that answer requests (traffic > 0, not shadows)."""
        return [v for v in self.variants if v.traffic > 0 and not v.shadow]


def manifest_key(endpoint: str) -> str:
    """Storage key of an endpoint's current manifest."""
    return f"deployments/{endpoint}/manifest.json"


def history_key(endpoint: str, revision: int) -> str:
    """Storage key of one past revision."""
    return f"deployments/{endpoint}/history/{revision:06d}.json"


def read_manifest(storage: Storage, endpoint: str) -> Manifest | None:
    """The current manifest of `endpoint`, or None if it was never deployed."""
    if not storage.exists(manifest_key(endpoint)):
        return None
    try:
        return Manifest.model_validate(read_json(storage, manifest_key(endpoint)))
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"deployment manifest of {endpoint} is invalid: {exc}") from None


def write_manifest(storage: Storage, manifest: Manifest) -> Manifest:
    """Store `manifest` as the next revision (history first, then the current pointer)."""
    previous = read_manifest(storage, manifest.endpoint)
    m = manifest.model_copy(update={"revision": (previous.revision + 1) if previous else 1})
    data = m.model_dump(mode="json")
    write_json(storage, history_key(m.endpoint, m.revision), data)
    write_json(storage, manifest_key(m.endpoint), data)
    return m


def rollback(storage: Storage, endpoint: str) -> Manifest:
    """Make the revision before the current one current again (as a new revision)."""
    current = read_manifest(storage, endpoint)
    if current is None or current.revision < 2:
        raise ModelNotFoundError(f"endpoint {endpoint} has no earlier revision to roll back to")
    old = Manifest.model_validate(read_json(storage, history_key(endpoint, current.revision - 1)))
    return write_manifest(storage, old.model_copy(update={"created_at": datetime.now(UTC).isoformat()}))


def plan_variants(
    strategy: StrategySpec, champion: Variant, challenger: Variant | None, previous: Manifest | None
) -> tuple[list[Variant], dict[str, int | str]]:
    """Variants and strategy state for a new manifest.

    blue-green: the champion takes all traffic at once. canary: a new champion starts at the first
    step beside the previous one. champion-challenger: a split, or a shadow that scores but never
    answers.
    """
    champ = champion.model_copy(update={"traffic": 100, "name": "champion"})
    if strategy.kind == "blue_green" or (challenger is None and strategy.kind == "champion_challenger"):
        return [champ], {"live_version": champion.version}
    if strategy.kind == "canary":
        prev = previous.answering()[0] if previous and previous.answering() else None
        if prev is None or prev.version == champion.version:
            return [champ], {"step": len(strategy.steps) - 1, "live_version": champion.version}
        first = strategy.steps[0]
        return (
            [
                prev.model_copy(update={"name": "stable", "traffic": 100 - first, "shadow": False}),
                champion.model_copy(update={"name": "canary", "traffic": first}),
            ],
            {"step": 0, "live_version": prev.version, "candidate_version": champion.version},
        )
    assert challenger is not None
    if strategy.mode == "shadow":
        return (
            [
                champ,
                challenger.model_copy(update={"name": "challenger", "traffic": 0, "shadow": True}),
            ],
            {"mode": "shadow"},
        )
    share = strategy.challenger_traffic
    return (
        [
            champion.model_copy(update={"name": "champion", "traffic": 100 - share}),
            challenger.model_copy(update={"name": "challenger", "traffic": share}),
        ],
        {"mode": "split"},
    )


def bucket(entity_id: str, salt: str = "") -> int:
    """Stable bucket 0..99 of an entity id, so one customer always sees one variant."""
    digest = hashlib.blake2b(f"{salt}:{entity_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


def route(manifest: Manifest, entity_id: str) -> Variant:
    """The answering variant for `entity_id` by cumulative traffic over stable buckets."""
    answering = manifest.answering()
    b = bucket(entity_id, manifest.endpoint)
    acc = 0
    for v in answering:
        acc += v.traffic
        if b < acc:
            return v
    return answering[-1]

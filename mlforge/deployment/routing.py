"""Routing: a stable hash of the entity id picks the answering variant, so a customer sees one variant."""

from __future__ import annotations

import hashlib

from mlforge.deployment.manifest import Manifest, Variant


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

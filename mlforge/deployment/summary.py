"""One summary of what an endpoint serves, shared by the CLI, the monitor report, asset metadata and
the serving admin API, so they all describe a variant and a revision the same way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NotRequired, TypedDict

from mlforge.deployment.state import RolloutStatus, VariantRole


class VariantRecord(TypedDict):
    """A variant as plain JSON: the shape the admin API and the monitor report have always returned."""

    name: str
    version: int
    traffic: int
    shadow: bool
    model_name: NotRequired[str]


class ManifestRecord(TypedDict):
    """A manifest revision as plain JSON (``created_at`` in the manifest's own ISO format)."""

    endpoint: str
    model: str
    revision: int
    strategy: str
    created_at: str
    status: str | None
    reason: str | None
    variants: list[VariantRecord]


@dataclass(frozen=True)
class VariantSummary:
    """What one variant serves: its role, model version, traffic share and whether it is a shadow."""

    name: VariantRole | str  # a role, or a label outside the enum as the manifest has it
    model: str
    version: int
    traffic: int
    shadow: bool = False

    def line(self) -> str:
        """Aligned one-line form: ``champion   v1    traffic 100%`` (plus ``  (shadow)``)."""
        shadow = "  (shadow)" if self.shadow else ""
        return f"{self.name:<10} v{self.version:<4} traffic {self.traffic:>3}%{shadow}"

    def compact(self) -> str:
        """Compact form for lists: ``challenger=v2:0% (shadow)``."""
        return f"{self.name}=v{self.version}:{self.traffic}%{' (shadow)' if self.shadow else ''}"

    def __str__(self) -> str:
        return self.compact()

    def to_dict(self, *, model: bool = False) -> VariantRecord:
        """Plain JSON; with `model`, also the registered model's name (``model_name``)."""
        out = VariantRecord(
            name=str(self.name), version=self.version, traffic=self.traffic, shadow=self.shadow
        )
        if model:
            out["model_name"] = self.model
        return out


@dataclass(frozen=True)
class ManifestSummary:
    """What one manifest revision serves and what decided it."""

    endpoint: str
    model: str
    revision: int
    strategy: str
    created_at: datetime
    variants: tuple[VariantSummary, ...]
    status: RolloutStatus | str | None = None
    reason: str | None = None
    state: Mapping[str, int | str] = field(default_factory=dict)

    def served(self) -> str:
        """The variants in compact form: ``stable=v1:75%, canary=v2:25%``."""
        return ", ".join(v.compact() for v in self.variants)

    def line(self) -> str:
        """One line per revision (``mlforge deploy history``): revision, time, strategy, variants, status."""
        stamp = self.created_at.isoformat()[:19]  # to the second, without the offset
        return f"{self.revision:>4}  {stamp}  {self.strategy:<19} {self.served()}  {self.status or ''}"

    def to_dict(self, *, model: bool = False) -> ManifestRecord:
        """Plain JSON; `model` adds each variant's ``model_name``."""
        return ManifestRecord(
            endpoint=self.endpoint,
            model=self.model,
            revision=self.revision,
            strategy=self.strategy,
            created_at=self.created_at.isoformat(),
            status=None if self.status is None else str(self.status),
            reason=self.reason,
            variants=[v.to_dict(model=model) for v in self.variants],
        )

"""The promotion gate: a candidate becomes champion only if it is good enough and not worse.

Pure logic, so the rule is tested without MLflow; the registered asset applies the decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlforge.config.spec import GateSpec
from mlforge.models.metrics import TOLERANCE, metric

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class GateDecision:
    """Whether a candidate is promoted, and why."""

    promote: bool
    reason: str
    candidate: float
    champion: float | None

    def as_tags(self) -> dict[str, str]:
        """The decision as model-version tags."""
        return {
            "mlforge.gate.promoted": str(self.promote).lower(),
            "mlforge.gate.reason": self.reason,
            "mlforge.gate.candidate": f"{self.candidate:.6f}",
            "mlforge.gate.champion": "none" if self.champion is None else f"{self.champion:.6f}",
        }


def decide(gate: GateSpec, candidate: float, champion: float | None) -> GateDecision:
    """Apply the gate: candidate meets the bound and is at most max_regression worse than the champion.

    Both metrics must come from the same holdout; `champion` is None when there is none yet.
    """
    m = metric(gate.metric)
    if not m.meets(candidate, gate.min):
        return GateDecision(
            False,
            f"{gate.metric} {candidate:.4f} {m.sign(False)} minimum {gate.min}",
            candidate,
            champion,
        )
    if champion is None:
        return GateDecision(
            True, f"{gate.metric} {candidate:.4f} meets minimum; no champion yet", candidate, None
        )
    delta = m.worse_by(candidate, champion)
    if delta > gate.max_regression + TOLERANCE:
        return GateDecision(
            False,
            f"{gate.metric} {candidate:.4f} is {delta:.4f} worse than champion {champion:.4f} on the same "
            f"holdout (allowed {gate.max_regression})",
            candidate,
            champion,
        )
    return GateDecision(
        True,
        f"{gate.metric} {candidate:.4f} vs champion {champion:.4f} on the same holdout",
        candidate,
        champion,
    )

"""The promotion gate: a candidate becomes champion only if it is good enough and not worse.

Pure logic, so the rule is tested without MLflow; the registered asset applies the decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlforge.spec import GateSpec

CHAMPION = "champion"
CHALLENGER = "challenger"
_LOWER_IS_BETTER = {"logloss"}


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
    """Apply the gate: candidate ≥ minimum and not worse than champion − max_regression.

    Both metrics must come from the same holdout; `champion` is None when there is none yet.
    """
    lower = gate.metric in _LOWER_IS_BETTER
    meets_min = candidate <= gate.min if lower else candidate >= gate.min
    if not meets_min:
        op = ">" if lower else "<"
        return GateDecision(
            False, f"{gate.metric} {candidate:.4f} {op} minimum {gate.min}", candidate, champion
        )
    if champion is None:
        return GateDecision(
            True, f"{gate.metric} {candidate:.4f} meets minimum; no champion yet", candidate, None
        )
    delta = (champion - candidate) if not lower else (candidate - champion)
    if delta > gate.max_regression + 1e-9:  # metrics are floats: exactly at the limit passes
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

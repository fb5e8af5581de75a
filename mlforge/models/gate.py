"""The promotion gate: a candidate becomes champion only if it is good enough and not worse.

Pure logic, so the rule is tested without MLflow; the registered asset applies the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

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


def decide(gate: GateSpec, name: str, candidate: float, champion: float | None) -> GateDecision:
    """Apply the gate on metric `name`: the candidate meets the bound (if any) and is at most
    max_regression worse than the champion.

    Both metrics must come from the same holdout; `champion` is None when there is none yet.
    """
    m = metric(name)
    if candidate != candidate:  # NaN: e.g. AUC of a one-class holdout
        return GateDecision(False, f"{name} could not be computed on the holdout", candidate, champion)
    if gate.min is not None and not m.meets(candidate, gate.min):
        return GateDecision(
            False,
            f"{name} {candidate:.4f} {m.sign(False)} {'minimum' if m.bound == 'min' else 'maximum'} "
            f"{gate.min}",
            candidate,
            champion,
        )
    if champion is None:
        return GateDecision(True, f"{name} {candidate:.4f} meets the bound; no champion yet", candidate, None)
    delta = m.worse_by(candidate, champion)
    if delta > gate.max_regression + TOLERANCE:
        return GateDecision(
            False,
            f"{name} {candidate:.4f} is {delta:.4f} worse than champion {champion:.4f} on the same "
            f"holdout (allowed {gate.max_regression})",
            candidate,
            champion,
        )
    return GateDecision(
        True,
        f"{name} {candidate:.4f} vs champion {champion:.4f} on the same holdout",
        candidate,
        champion,
    )


def unseen_by_champion(candidate_cutoff: date, champion_cutoff: date | None) -> str | None:
    """Why the champion cannot be compared on the candidate's holdout, or None when it can.

    A model for cutoff C trains on snapshots before its holdout day C - horizon; a candidate with
    an earlier cutoff has an earlier holdout day, which the champion may have trained on, so the
    comparison would flatter the champion (seen data). Such a candidate is registered and
    evaluated but does not contend. A champion without a cutoff (registered by hand) contends.
    """
    if champion_cutoff is None or candidate_cutoff >= champion_cutoff:
        return None
    return (
        f"cutoff {candidate_cutoff} is earlier than the champion's {champion_cutoff}: the champion "
        "may have trained on this holdout, so the candidate does not contend"
    )

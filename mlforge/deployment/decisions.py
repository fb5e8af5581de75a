"""Live-metric decisions for canary rollouts and champion-challenger promotion: pure functions.

The canary sensor (``mlforge_assets.sensors.canary_sensor``) reads an endpoint's manifest and
its prediction log, calls :func:`decide`, and writes the manifest the decision carries as the
next revision. Nothing here does I/O, so every rule is unit-tested on hand-made logs.

Canary (manifest strategy ``canary`` with a ``stable`` and a ``canary`` variant):

- The rows judged are those served under the current manifest revision (one revision per step),
  so a step is judged only on its own traffic.
- **Roll back** (the stable version takes 100 %, the candidate is recorded as
  ``rejected_version``) as soon as the canary has ``min_requests`` rows and breaks a bound —
  error rate, p99 latency, |mean score − stable's mean score|, PSI of its scores against
  stable's — or earlier when its errors alone already exceed what ``min_requests`` rows allow.
- **Wait** while the step is younger than ``evaluation_minutes`` or has fewer than
  ``min_requests`` canary rows.
- Otherwise **advance** to the next step; the step that would reach 100 % **promotes**: the
  candidate becomes the only variant (``champion``, 100 %).

Champion-challenger (a ``challenger`` variant, split or shadow), judged against
``promotion_criteria``: a challenger that breaks the error/latency bounds is **rejected**
(removed); with ``min_requests`` challenger rows, a challenger whose scores agree with the
champion's (shadow: the same rows paired; split: mean shift only) is **promoted** to champion;
otherwise **wait**.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

import numpy as np

from mlforge.config.spec import StrategySpec
from mlforge.deployment.manifest import Manifest, Variant, utc_now
from mlforge.deployment.state import RolloutStatus, StateKey, VariantRole
from mlforge.deployment.variants import PROMOTED, REJECTED
from mlforge.models.metrics import metric
from mlforge.monitoring.prediction_log import STATUS_ERROR, answering_rows, ok_scored_rows

if TYPE_CHECKING:
    import polars as pl

Action = Literal["none", "wait", "advance", "promote", "rollback", "reject"]
MIN_PAIRED_FOR_SHIFT = 20  # stable rows needed before the score shift is judged


@dataclass(frozen=True)
class VariantStats:
    """Live metrics of one variant over a window of the prediction log."""

    variant: str
    rows: int = 0
    errors: int = 0
    requests: int = 0
    latency_p99_ms: float | None = None
    mean_score: float | None = None
    scores: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    @property
    def error_rate(self) -> float:
        """Failed rows / rows (0 without rows)."""
        return self.errors / self.rows if self.rows else 0.0

    def describe(self) -> str:
        """One line for logs and tags."""
        p99 = "-" if self.latency_p99_ms is None else f"{self.latency_p99_ms:.1f} ms"
        mean = "-" if self.mean_score is None else f"{self.mean_score:.4f}"
        return f"{self.variant}: {self.rows} rows, error rate {self.error_rate:.2%}, p99 {p99}, mean score {mean}"


@dataclass(frozen=True)
class Decision:
    """What the sensor does now, why, and the manifest to write (None: write nothing)."""

    action: Action
    reason: str
    manifest: Manifest | None = None
    stats: dict[str, VariantStats] = field(default_factory=dict)
    revision: int = 0  # the revision the decision was taken on

    def tags(self) -> dict[str, str]:
        """Short string tags (sensor results, run tags, asset metadata)."""
        out = {
            "mlforge/canary_action": self.action,
            "mlforge/canary_reason": self.reason[:250],
            "mlforge/canary_revision": str(self.revision),
        }
        if self.manifest is not None:
            out["mlforge/canary_traffic"] = ",".join(
                f"{v.name}=v{v.version}:{v.traffic}" for v in self.manifest.variants
            )
        return out


# ---------------------------------------------------------------------------------------------
# Metrics of a log window
# ---------------------------------------------------------------------------------------------


def variant_stats(log: pl.DataFrame) -> dict[str, VariantStats]:
    """Per variant: rows, failed rows, p99 latency per request, mean and values of its ok scores."""

    out: dict[str, VariantStats] = {}
    if log.height == 0:
        return out
    for (name,), part in log.group_by("variant", maintain_order=True):
        ok = ok_scored_rows(part)
        scores = ok["score"].to_numpy().astype(np.float64)
        per_request = part.unique(["request_id"], keep="first")["latency_ms"].to_numpy()
        out[str(name)] = VariantStats(
            variant=str(name),
            rows=part.height,
            errors=int((part["status"] == STATUS_ERROR).sum()),
            requests=len(per_request),
            latency_p99_ms=float(np.percentile(per_request, 99)) if len(per_request) else None,
            mean_score=float(scores.mean()) if scores.size else None,
            scores=scores,
        )
    return out


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `actual` against `expected` (bins = deciles of expected)."""
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if expected.size == 0 or actual.size == 0:
        return 0.0
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    if edges.size < 2:  # a constant expected distribution
        same = float(np.mean(actual == expected[0]))
        return 0.0 if same == 1.0 else float("inf")
    inner = edges[1:-1]
    e = np.bincount(np.searchsorted(inner, expected, side="right"), minlength=edges.size - 1)
    a = np.bincount(np.searchsorted(inner, actual, side="right"), minlength=edges.size - 1)
    eps = 1e-4
    ep = np.maximum(e / e.sum(), eps)
    ap = np.maximum(a / a.sum(), eps)
    return float(np.sum((ap - ep) * np.log(ap / ep)))


def window(log: pl.DataFrame, manifest: Manifest) -> pl.DataFrame:
    """The rows served under `manifest`'s revision (non-shadow and shadow)."""
    import polars as pl

    if log.height == 0:
        return log
    return log.filter((pl.col("endpoint") == manifest.endpoint) & (pl.col("revision") == manifest.revision))


def _fmt(x: float) -> str:
    return f"{x:.4g}"


# ---------------------------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------------------------


def decide(manifest: Manifest, strategy: StrategySpec, log: pl.DataFrame, now: datetime) -> Decision:
    """The next step for `manifest` given its prediction log (any rows; the window is chosen here)."""
    if manifest.strategy == "canary":
        return decide_canary(manifest, strategy, log, now)
    if manifest.strategy == "champion_challenger":
        return decide_challenger(manifest, strategy, log, now)
    return Decision("none", f"{manifest.strategy} has nothing to advance", revision=manifest.revision)


def bound_breaches(strategy: StrategySpec, c: VariantStats, base: VariantStats | None) -> list[str]:
    """Which live bounds `c` breaks (compared with `base` for the score distribution)."""
    out = []
    if not metric("error_rate").meets(c.error_rate, strategy.max_error_rate):
        out.append(f"error rate {c.error_rate:.2%} > {strategy.max_error_rate:.2%}")
    if c.latency_p99_ms is not None and not metric("latency_p99_ms").meets(
        c.latency_p99_ms, strategy.max_latency_p99_ms
    ):
        out.append(f"p99 latency {c.latency_p99_ms:.1f} ms > {_fmt(strategy.max_latency_p99_ms)} ms")
    if base is not None and base.scores.size >= MIN_PAIRED_FOR_SHIFT and c.scores.size:
        assert base.mean_score is not None and c.mean_score is not None
        shift = abs(c.mean_score - base.mean_score)
        if shift > strategy.max_score_shift:
            out.append(f"mean score shift {shift:.4f} > {_fmt(strategy.max_score_shift)}")
        if strategy.max_score_psi is not None:
            value = psi(base.scores, c.scores)
            if value > strategy.max_score_psi:
                out.append(f"score PSI {value:.3f} > {_fmt(strategy.max_score_psi)}")
    return out


def decide_canary(manifest: Manifest, strategy: StrategySpec, log: pl.DataFrame, now: datetime) -> Decision:
    """Advance, wait, promote or roll back a canary rollout."""

    rev = manifest.revision
    canary = manifest.variant(VariantRole.CANARY, answering=True)
    stable = manifest.variant(VariantRole.STABLE, answering=True)
    if canary is None or stable is None or canary.traffic >= 100:
        return Decision("none", "no canary rollout in progress", revision=rev)
    rows = window(log, manifest)
    stats = variant_stats(answering_rows(rows))
    c = stats.get(canary.name, VariantStats(canary.name))
    s = stats.get(stable.name)
    step = f"canary v{canary.version} at {canary.traffic}%"
    breaches = bound_breaches(strategy, c, s) if c.rows >= strategy.min_requests else []
    if not breaches and c.errors > strategy.max_error_rate * strategy.min_requests:
        breaches = [
            f"{c.errors} failed rows already exceed {strategy.max_error_rate:.2%} of "
            f"{strategy.min_requests} rows"
        ]
    if breaches:
        reason = f"rolled back {step}: " + "; ".join(breaches) + f" ({c.describe()})"
        return Decision("rollback", reason, _rolled_back(manifest, stable, canary, reason), stats, rev)
    elapsed = now - manifest.created_at
    need = timedelta(minutes=strategy.evaluation_minutes)
    if elapsed < need:
        reason = (
            f"{step}: evaluating, {elapsed.total_seconds() / 60:.1f} of "
            f"{_fmt(strategy.evaluation_minutes)} min, {c.rows} rows"
        )
        return Decision("wait", reason, None, stats, rev)
    if c.rows < strategy.min_requests:
        reason = f"{step}: waiting for traffic, {c.rows} of {strategy.min_requests} rows"
        return Decision("wait", reason, None, stats, rev)
    nxt = next((t for t in strategy.steps if t > canary.traffic), 100)
    within = f"within bounds after {elapsed.total_seconds() / 60:.1f} min ({c.describe()})"
    if nxt >= 100:
        reason = f"promoted canary v{canary.version} to 100%: {within}"
        return Decision("promote", reason, _promoted(manifest, strategy, canary, reason), stats, rev)
    reason = f"advanced canary v{canary.version} {canary.traffic}% → {nxt}%: {within}"
    variants = [
        v.model_copy(update={"traffic": nxt if v is canary else 100 - nxt if v is stable else v.traffic})
        for v in manifest.variants
    ]
    state = {
        **manifest.state,
        StateKey.STEP: strategy.steps.index(nxt),
        StateKey.LIVE_VERSION: stable.version,
        StateKey.CANDIDATE_VERSION: canary.version,
        StateKey.STATUS: RolloutStatus.ADVANCING,
        StateKey.REASON: reason,
        StateKey.DECIDED_ON_REVISION: rev,
    }
    return Decision("advance", reason, _next(manifest, variants, state), stats, rev)


def _next(manifest: Manifest, variants: list[Variant], state: dict[str, int | str]) -> Manifest:
    return manifest.model_copy(update={"variants": variants, "state": state, "created_at": utc_now()})


def _rolled_back(manifest: Manifest, stable: Variant, canary: Variant, reason: str) -> Manifest:
    champ = stable.model_copy(update={"name": VariantRole.CHAMPION, "traffic": 100, "shadow": False})
    state: dict[str, int | str] = {
        StateKey.STEP: manifest.state.get(StateKey.STEP, 0),
        StateKey.LIVE_VERSION: stable.version,
        REJECTED: canary.version,
        StateKey.STATUS: RolloutStatus.ROLLED_BACK,
        StateKey.REASON: reason,
        StateKey.DECIDED_ON_REVISION: manifest.revision,
    }
    return _next(manifest, [champ], state)


def _promoted(manifest: Manifest, strategy: StrategySpec, canary: Variant, reason: str) -> Manifest:
    champ = canary.model_copy(update={"name": VariantRole.CHAMPION, "traffic": 100, "shadow": False})
    state: dict[str, int | str] = {
        StateKey.STEP: len(strategy.steps) - 1,
        StateKey.LIVE_VERSION: canary.version,
        StateKey.STATUS: RolloutStatus.PROMOTED,
        StateKey.REASON: reason,
        StateKey.DECIDED_ON_REVISION: manifest.revision,
    }
    return _next(manifest, [champ], state)


def agreement(log: pl.DataFrame, champion: str, challenger: str, tolerance: float) -> tuple[float, int]:
    """Share of rows both scored whose scores differ by at most `tolerance`, and how many pairs."""
    import polars as pl

    ok = ok_scored_rows(log)
    a = ok.filter(pl.col("variant") == champion).select("request_id", "row", pl.col("score").alias("a"))
    b = ok.filter(pl.col("variant") == challenger).select("request_id", "row", pl.col("score").alias("b"))
    pairs = a.join(b, on=["request_id", "row"], how="inner")
    if pairs.height == 0:
        return 0.0, 0
    agree = ((pairs["a"] - pairs["b"]).abs() <= tolerance).sum()
    return float(agree) / pairs.height, pairs.height


def decide_challenger(
    manifest: Manifest, strategy: StrategySpec, log: pl.DataFrame, now: datetime
) -> Decision:
    """Promote, reject or keep a challenger (split or shadow) by its logged scores."""
    rev = manifest.revision
    champion = next((v for v in manifest.variants if v.name == VariantRole.CHAMPION and not v.shadow), None)
    challenger = manifest.variant(VariantRole.CHALLENGER)
    if champion is None or challenger is None:
        return Decision("none", "no challenger deployed", revision=rev)
    crit = strategy.promotion_criteria
    rows = window(log, manifest)
    stats = variant_stats(rows)
    ch = stats.get(challenger.name, VariantStats(challenger.name))
    cp = stats.get(champion.name)
    mode = "shadow" if challenger.shadow else "split"
    who = f"challenger v{challenger.version} ({mode})"
    breaches = bound_breaches(strategy, ch, None) if ch.rows >= strategy.min_requests else []
    if challenger.shadow:  # a shadow's latency is the whole request's, and it never answers
        breaches = [b for b in breaches if not b.startswith("p99")]
    if breaches:
        reason = f"rejected {who}: " + "; ".join(breaches) + f" ({ch.describe()})"
        champ = champion.model_copy(update={"traffic": 100})
        state: dict[str, int | str] = {
            StateKey.LIVE_VERSION: champion.version,
            REJECTED: challenger.version,
            StateKey.STATUS: RolloutStatus.REJECTED,
            StateKey.REASON: reason,
            StateKey.DECIDED_ON_REVISION: rev,
        }
        if PROMOTED in manifest.state:
            state[PROMOTED] = manifest.state[PROMOTED]
        return Decision("reject", reason, _next(manifest, [champ], state), stats, rev)
    if not crit.enabled:
        return Decision("none", f"{who}: automatic promotion is off ({ch.describe()})", None, stats, rev)
    if ch.rows < crit.min_requests:
        return Decision("wait", f"{who}: {ch.rows} of {crit.min_requests} rows logged", None, stats, rev)
    problems = []
    detail = ch.describe()
    if challenger.shadow:
        share, pairs = agreement(rows, champion.name, challenger.name, crit.agreement_tolerance)
        detail += f"; agreement {share:.2%} over {pairs} rows"
        if pairs < crit.min_requests:
            problems.append(f"only {pairs} paired rows")
        elif share < crit.min_agreement:
            problems.append(
                f"agreement {share:.2%} < {crit.min_agreement:.2%} (tolerance {_fmt(crit.agreement_tolerance)})"
            )
    if cp is not None and cp.mean_score is not None and ch.mean_score is not None:
        shift = abs(ch.mean_score - cp.mean_score)
        detail += f"; mean shift {shift:.4f}"
        if shift > crit.max_mean_shift:
            problems.append(f"mean score shift {shift:.4f} > {_fmt(crit.max_mean_shift)}")
    else:
        problems.append("no champion scores to compare with")
    if problems:
        return Decision(
            "wait", f"{who} not promoted: " + "; ".join(problems) + f" ({detail})", None, stats, rev
        )
    reason = f"promoted {who} to champion: {detail}"
    champ = challenger.model_copy(update={"name": VariantRole.CHAMPION, "traffic": 100, "shadow": False})
    state = {
        StateKey.LIVE_VERSION: challenger.version,
        PROMOTED: challenger.version,
        StateKey.STATUS: RolloutStatus.PROMOTED,
        StateKey.REASON: reason,
        StateKey.DECIDED_ON_REVISION: rev,
    }
    return Decision("promote", reason, _next(manifest, [champ], state), stats, rev)

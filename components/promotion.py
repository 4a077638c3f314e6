"""The champion gate's decision, as a pure function of two scores (trackflow/tracking.py applies it)."""

from __future__ import annotations

from dataclasses import dataclass

# Parallel tree ensembles sum in thread order: the same model can score 1e-15 apart. That is a tie.
_TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    challenger_score: float
    champion_score: float | None


def decide_promotion(
    challenger: float,
    champion: float | None,
    margin: float,
    metric: str = "rmse",
    lower_is_better: bool = True,
) -> PromotionDecision:
    """The challenger becomes champion only when its holdout `metric` beats the champion's on the same rows by
    more than `margin`; a tie keeps the champion, so a deterministic rerun never churns the alias."""
    if champion is None:
        return PromotionDecision(True, "no champion yet", challenger, None)
    gain = champion - challenger if lower_is_better else challenger - champion
    comparison = f"challenger {metric} {challenger:.4f} vs champion {champion:.4f}"
    if gain > margin + _TIE_TOLERANCE:
        return PromotionDecision(
            True, f"promoted: {comparison} (better by more than {margin})", challenger, champion
        )
    return PromotionDecision(False, f"champion kept: {comparison} (margin {margin})", challenger, champion)

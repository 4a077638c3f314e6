"""Which model a task keeps, decided on cross-validation of the training rows only (the holdout plays no
part): the families ranked by their studies' best CV score, and the blend of the best two when the same folds
score their mean better than either."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# The name of the mean of the two best families, beside the family names.
BLEND = "blend"


def rank_by_cv(studies: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Tuning summaries best first, by each study's own direction (every criterion here is minimised)."""
    return sorted(studies, key=lambda s: s["cv_score"] if s["direction"] == "minimize" else -s["cv_score"])


def keeps_blend(blend_scores: Mapping[str, float], members: Sequence[str]) -> bool:
    """The blend is kept only when its CV score (lower is better) beats both members' on the same folds."""
    return blend_scores[BLEND] < min(blend_scores[m] for m in members)

"""The artist holdout by album: which held-out tracks share an album name with training, the metrics and
report on each subset, and the untuned baseline's verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.evaluation import album_shared
from components.task_report import against_baseline, album_subsets_markdown
from components.tasks import TaskData


def test_an_album_is_shared_by_its_name_case_and_spaces_aside() -> None:
    train = pd.Series(["Greatest Hits", " Now 90s ", None, ""])
    test = pd.Series(["greatest hits", "NOW 90S", "Unheard", "", None])
    assert album_shared(test, train).tolist() == [True, True, False, False, False]


def test_task_rows_are_taken_by_mask_or_position() -> None:
    data = TaskData(
        pd.DataFrame({"a": [1, 2, 3]}),
        np.array([10, 20, 30]),
        np.array(["x", "y", "z"]),
        np.array(["t1", "t2", "t3"]),
        [{"pop"}, {"rock"}, {"jazz"}],
    )
    masked = data.take(np.array([True, False, True]))
    assert masked.y.tolist() == [10, 30] and masked.label_sets == [{"pop"}, {"jazz"}]
    assert masked.inputs["a"].tolist() == [1, 3] and masked.inputs.index.tolist() == [0, 1]
    assert data.take(np.array([2, 0])).track_ids.tolist() == ["t3", "t1"]


def test_the_report_says_when_the_selected_model_does_not_beat_the_baseline() -> None:
    rows = {"blend": {"rmse": 16.3}, "baseline": {"rmse": 16.1}}
    assert "does not beat it" in against_baseline(rows, "blend", "rmse", lower_is_better=True)
    assert "beats it" in against_baseline(rows, "blend", "rmse", lower_is_better=False)
    assert against_baseline({"blend": {"rmse": 1.0}}, "blend", "rmse", True) is None


def test_the_album_subsets_report_counts_and_marks_undefined_subsets() -> None:
    metrics = {
        "selected": "blend",
        "album_subsets": {
            "protocol": "artist",
            "tracks": {"album_unseen": 80, "album_shared": 20},
            "given": {
                "album_unseen": {"blend": {"r2": 0.5}, "baseline": {"r2": 0.4}},
                "album_shared": {"blend": None, "baseline": None},
            },
        },
    }
    text = album_subsets_markdown("hit", metrics, ["r2"], gate=("r2", False))
    assert "20 of 100 held-out tracks (20.0%)" in text
    assert "| blend (selected) | 0.5000 |" in text and "| baseline | undefined here |" in text
    assert "the untuned baseline's 0.4000; it beats it" in text


def test_calibration_error_is_zero_for_honest_probabilities_and_grows_with_overconfidence() -> None:
    from components.evaluation import binary_metrics, calibration_bins, expected_calibration_error

    rng = np.random.default_rng(0)
    honest = rng.uniform(0, 1, 200_000)
    outcome = (rng.uniform(0, 1, honest.size) < honest).astype(int)
    assert expected_calibration_error(outcome, honest) < 0.01
    overconfident = np.clip((honest - 0.5) * 3 + 0.5, 0, 1)
    assert expected_calibration_error(outcome, overconfident) > 0.1
    predicted, observed, counts = calibration_bins(np.array([0, 1, 1, 0]), np.array([0.05, 0.95, 0.9, 0.08]))
    assert counts.tolist() == [2, 2] and observed.tolist() == [0.0, 1.0]
    assert predicted == pytest.approx([0.065, 0.925])
    metrics = binary_metrics(outcome[:1000], honest[:1000], 0.5)
    assert 0 <= metrics["brier"] <= 0.25 and "calibration_error" in metrics

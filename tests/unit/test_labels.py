"""Labels attached to a scored batch's rows and merged into the listings, and the retraining decision that
weighs drift with the labels that came back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.labels import LABELLED_AT, LabelError, attach_labels, merge_labels
from components.performance import NO_NEW_LABELS, degraded, realised_performance, retrain_decision
from components.schema import COLUMNS
from components.tracks import LABEL_BATCH, collapse_to_tracks
from tests.builders import synthetic_tracks

T0 = pd.Timestamp("2026-11-01", tz="UTC")


def _batch(n: int = 6) -> pd.DataFrame:
    rows = synthetic_tracks(50, seed=5).drop_duplicates("track_id").head(n).reset_index(drop=True)
    return rows.drop(columns=["popularity", "track_genre"])


def test_labels_set_the_outcomes_on_the_batch_rows() -> None:
    batch = _batch()
    labels = pd.DataFrame({"track_id": batch["track_id"][:3], "popularity": [10, 20, 30]})
    rows = attach_labels(batch, labels, "b1", T0)
    assert list(rows.columns) == [*COLUMNS, LABELLED_AT, LABEL_BATCH]
    assert rows["popularity"].tolist() == [10, 20, 30]
    assert rows["energy"].tolist() == batch["energy"][:3].tolist()
    assert rows[LABEL_BATCH].unique().tolist() == ["b1"] and rows["track_genre"].isna().all()
    assert "popularity" not in batch  # the batch is not modified


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (pd.DataFrame({"popularity": [1]}), "no track_id column"),
        (pd.DataFrame({"track_id": ["x"]}), "neither popularity nor track_genre"),
        (pd.DataFrame({"track_id": ["nope"], "popularity": [1]}), r"not in the batch, e\.g\. \['nope'\]"),
    ],
)
def test_bad_labels_are_refused_naming_what_is_wrong(labels: pd.DataFrame, message: str) -> None:
    with pytest.raises(LabelError, match=message):
        attach_labels(_batch(), labels, "b1", T0)


def test_a_track_labelled_twice_in_one_file_is_refused() -> None:
    batch = _batch()
    labels = pd.DataFrame({"track_id": [batch["track_id"][0]] * 2, "popularity": [1, 2]})
    with pytest.raises(LabelError, match="twice or more"):
        attach_labels(batch, labels, "b1", T0)


def test_the_newest_label_of_a_track_replaces_older_ones_and_the_datasets_listings() -> None:
    listings = synthetic_tracks(200, seed=7)
    known = listings["track_id"].iloc[0]
    batch = listings[listings["track_id"] == known].drop(columns=["popularity", "track_genre"]).head(1)
    batch = pd.concat([batch, _batch(2).assign(track_id=["new-1", "new-2"])], ignore_index=True)
    ids = batch["track_id"].tolist()
    older = attach_labels(
        batch, pd.DataFrame({"track_id": ids, "popularity": 5, "track_genre": "jazz"}), "a", T0
    )
    newer = attach_labels(
        batch,
        pd.DataFrame({"track_id": ids[:2], "popularity": 90, "track_genre": "pop|rock"}),
        "b",
        T0 + pd.Timedelta("1D"),
    )
    merged, report = merge_labels(listings, [newer, older])  # file order does not decide: labelled_at does
    assert report.labelled_tracks == 3 and report.replaced_tracks == 1 and report.new_tracks == 2
    assert report.superseded_labels == 2 and report.newest_labelled_at == newer[LABELLED_AT].max().isoformat()
    tracks, _ = collapse_to_tracks(merged)
    by_id = tracks.set_index("track_id")
    assert by_id.loc[known, "popularity"] == 90 and by_id.loc[known, "track_genre"] == "pop|rock"
    assert by_id.loc["new-2", "popularity"] == 5 and by_id.loc["new-2", LABEL_BATCH] == "a"
    assert by_id[LABEL_BATCH].notna().sum() == 3
    assert len(merged) == len(listings) - (listings["track_id"] == known).sum() + 2 + 2 + 1


def test_drift_retrains_only_with_new_labels_and_labels_retrain_when_worse() -> None:
    drift = "drift on batch b: 5 of 14 input columns drifted"
    no_labels = retrain_decision(drift, 0, [])
    assert not no_labels.retrain and no_labels.decision.startswith(NO_NEW_LABELS) and no_labels.reason is None
    assert retrain_decision(drift, 2, []).retrain
    assert "2 new label file(s)" in (retrain_decision(drift, 2, []).reason or "")
    assert not retrain_decision(None, 2, []).retrain
    worse = retrain_decision(None, 1, ["popularity RMSE 30 > 20"])
    assert worse.retrain and "realised error" in (worse.reason or "")
    assert not retrain_decision(None, 0, ["popularity RMSE 30 > 20"]).retrain  # labels already learned
    both = retrain_decision(drift, 1, ["popularity RMSE 30 > 20"]).reason or ""
    assert "1 new label file(s)" in both and "realised error on new labels: popularity RMSE 30 > 20" in both


def test_realised_error_against_the_holdout_promise() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 100, 400)
    joined = pd.DataFrame(
        {
            "track_id": [f"t{i}" for i in range(400)],
            "popularity": truth,
            "track_genre": "pop",
            "predicted_popularity": truth + rng.normal(0, 10, 400),
            "hit_probability": (truth >= 60) * 0.6 + rng.uniform(0, 0.4, 400),
            "predicted_genre": np.where(np.arange(400) % 4 == 0, "rock", "pop"),
        }
    )
    result = realised_performance(joined, hit_threshold=60)
    assert result.metrics["popularity"]["rmse"] == pytest.approx(10, abs=1.5)
    assert result.metrics["hit"]["roc_auc"] == 1.0 and result.metrics["genre"]["top1_set_accuracy"] == 0.75
    assert result.html and "MAE" in result.html and "RocAuc" in result.html  # both of Evidently's reports
    margins = {"popularity": 0.1, "hit": 0.03}
    assert degraded(result.metrics, {"popularity": 12.0, "hit": 0.99}, margins) == []
    reasons = degraded(result.metrics, {"popularity": 5.0, "hit": 1.0}, margins)
    assert len(reasons) == 1 and reasons[0].startswith("popularity RMSE")

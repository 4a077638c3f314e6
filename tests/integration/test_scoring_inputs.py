"""What a scoring batch may carry: its own genre (normalised, used by the popularity and hit models, row by
row), and columns of its own (carried to the predictions, never model inputs). A misspelt genre that cannot
be matched fails its row, naming the value; a column with an output's name rejects the batch."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from components.scoring import conform_to_signature, plain_inputs
from tests.conftest import copy_project
from trackflow.paths import ProjectPaths
from trackflow.stages import scoring as scoring_stage
from trackflow.stages import simulate as simulate_stage
from trackflow.stages.common import params_for

SPELLED_AS_SOURCES_DO = {"r-n-b": "R&B", "hip-hop": "Hip Hop", "drum-and-bass": "Drum & Bass"}


@pytest.fixture(scope="module")
def project(trained_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(trained_project, tmp_path_factory.mktemp("scoring-inputs"))


def _batch(root: Path, name: str, rows: int = 400) -> tuple[pd.DataFrame, pd.Series]:
    """Held-out rows as a batch arrives (no labels), and each row's true genre set from the track table."""
    paths = ProjectPaths.at(root)
    path = Path(simulate_stage.simulate(paths, params_for(paths), "none", rows=rows, name=name)["path"])
    batch = pd.read_parquet(path)
    path.unlink()
    genres = pd.read_parquet(paths.features, columns=["track_id", "track_genre"]).set_index("track_id")
    return batch, genres["track_genre"].reindex(batch["track_id"]).reset_index(drop=True)


def _score(root: Path, batch: pd.DataFrame, name: str) -> dict:
    paths = ProjectPaths.at(root)
    path = scoring_stage.incoming_dir(paths, params_for(paths)) / f"{name}.csv"
    batch.to_csv(path, index=False)
    return scoring_stage.score_file(paths, params_for(paths), path)


def _as_a_source_writes(genre: str) -> str:
    return "|".join(SPELLED_AS_SOURCES_DO.get(g, g.upper()) for g in genre.split("|"))


def test_a_given_genre_feeds_the_models_row_by_row_and_extra_columns_pass_through(project: Path) -> None:
    batch, true_genre = _batch(project, "with-genre")
    given = batch.assign(track_genre=true_genre.map(_as_a_source_writes))
    given.loc[::4, "track_genre"] = None  # a quarter without a genre: the genre champion's guess fills it
    given.loc[1, "track_genre"] = "polka step"  # matches no genre: that row fails, naming the value
    given = given.assign(catalog_id=[f"cat-{i:05d}" for i in range(len(given))], playlist="Friday mix")

    summary = _score(project, given, "with-genre")

    predictions = pd.read_parquet(summary["predictions_path"])
    assert summary["rows_quarantined"] == 1 and len(predictions) == len(given) - 1
    quarantine = pd.read_parquet(ProjectPaths.at(project).scoring_quarantine("with-genre"))
    assert "'polka step' is not a known genre" in quarantine["quarantine_reason"].iloc[0]
    # Extra columns come through as they were, row by row; they are no model input.
    kept = given.drop(index=1).reset_index(drop=True)
    assert predictions["catalog_id"].tolist() == kept["catalog_id"].tolist()
    assert set(predictions["playlist"]) == {"Friday mix"}
    assert summary["columns_passed_through"] == ["catalog_id", "playlist"]
    # Where a genre was given it is used; elsewhere the genre champion's answer is.
    had_genre = kept["track_genre"].notna().to_numpy()
    expected_source = np.where(had_genre, "given", "predicted")
    assert predictions["genre_input"].tolist() == expected_source.tolist()
    assert summary["genre_input"] == {"given": int(had_genre.sum()), "predicted": int((~had_genre).sum())}

    # The popularity champion, asked directly with each row's true genre (the canonical spelling), gives
    # exactly what scoring wrote for the rows that carried it.
    champion = mlflow.pyfunc.load_model("models:/popularity@champion")
    direct_rows = kept.assign(track_genre=true_genre.drop(index=1).reset_index(drop=True))
    inputs = plain_inputs(direct_rows.drop(columns=["catalog_id", "playlist"]))
    names = champion.metadata.get_input_schema().input_names()
    direct = np.asarray(champion.predict(conform_to_signature(inputs[names], champion)))
    np.testing.assert_allclose(predictions["predicted_popularity"][had_genre], direct[had_genre], rtol=1e-6)


def test_without_a_genre_column_the_genre_champion_fills_it(project: Path) -> None:
    batch, _ = _batch(project, "no-genre", rows=200)
    summary = _score(project, batch, "no-genre")
    predictions = pd.read_parquet(summary["predictions_path"])
    assert set(predictions["genre_input"]) == {"predicted"} and len(predictions) == 200
    assert summary["columns_passed_through"] == []


def test_a_column_named_like_an_output_rejects_the_batch(project: Path) -> None:
    batch, _ = _batch(project, "collides", rows=100)
    with pytest.raises(scoring_stage.BatchRejected, match="predicted_popularity"):
        _score(project, batch.assign(predicted_popularity=50), "collides")
    paths = ProjectPaths.at(project)
    assert not paths.predictions("collides").exists()
    assert (paths.rejected("collides") / "collides.csv").is_file()

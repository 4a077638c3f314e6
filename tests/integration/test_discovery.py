"""Discovery: clusters, outliers, similar tracks and playlists on a sample of the real data, the Prefect flow
into a temporary MLflow store, and the query commands."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.neighbors import NearestNeighbors
from typer.testing import CliRunner

from components.discovery.clusters import TrackClusterer, cluster_profiles, genre_agreement, random_agreement
from components.discovery.outliers import OutlierDetector
from components.discovery.playlist import (
    parse_targets,
    playlist_table,
    select_by_seeds,
    select_by_targets,
    transition_stats,
    within_targets,
)
from components.discovery.similarity import SimilarityIndex
from components.discovery.space import SPACE_FEATURES, DiscoveryInputError, copy_groups, genre_sets
from components.ingest import ingest_csv
from components.io import read_json, write_json, write_parquet
from components.schema import model_inputs
from components.split import make_splits
from components.tracks import collapse_to_tracks
from tests.conftest import REPO, fast_params, make_project, sample_rows
from trackflow.cli import app
from trackflow.config import ParamsError, load_params
from trackflow.paths import ProjectPaths
from trackflow.stages.common import params_for
from trackflow.stages.discovery.common import GATE_METRICS
from trackflow.stages.discovery.register import register_discovery
from trackflow.tracking import Tracker

AUDIO_DIR = REPO.parent / "shared" / "data" / "audio"
# Small budgets: the algorithms are the real ones, on about 3,000 real tracks.
SMALL = {
    "discovery__clusters__k": 8,
    "discovery__clusters__k_range": [4, 8],
    "discovery__clusters__n_init": 2,
    "discovery__clusters__score_sample": 1000,
    "discovery__density__sample": 2000,
    "discovery__density__min_cluster_size": 15,
    "discovery__outliers__n_estimators": 100,
    "discovery__outliers__ae_epochs": 10,
    "discovery__outliers__ae_batch_size": 128,
    "discovery__outliers__eval_rows": 300,
    "discovery__similar__eval_queries": 300,
    "discovery__playlist__n": 10,
    "discovery__playlist__eval_seed_sets": 3,
    "discovery__map__tsne_sample": 300,
}


@pytest.fixture(scope="module")
def small_data(real_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """About 3,000 real tracks through the real ingest, per-track collapse and grouped split."""
    csv = tmp_path_factory.mktemp("discovery") / "sample.csv"
    sample_rows(real_frame, 3000, seed=11).to_csv(csv, index=False)
    ingested = ingest_csv(csv)
    tracks, _ = collapse_to_tracks(ingested.frame)
    splits = make_splits(tracks, 0.2, 42)
    is_test = (tracks[["track_id"]].merge(splits, on="track_id")["split_artist"] == "test").to_numpy()
    return {"tracks": tracks, "splits": splits, "is_test": is_test, "hash": ingested.content_hash}


@pytest.fixture(scope="module")
def train_rows(small_data: dict) -> pd.DataFrame:
    return small_data["tracks"].loc[~small_data["is_test"]].reset_index(drop=True)


def test_clusters_profiles_and_genre_agreement(small_data: dict, train_rows: pd.DataFrame) -> None:
    tracks = small_data["tracks"]
    clusterer = TrackClusterer(k=6, seed=3, n_init=2, min_cluster_size=15, density_sample=1500).fit(
        train_rows
    )
    assignments = clusterer.predict(tracks)
    assert list(assignments.columns) == ["cluster", "centroid_distance", "density_cluster", "niche"]
    assert len(assignments) == len(tracks) and set(assignments["cluster"]) == set(range(6))
    profiles = cluster_profiles(tracks, assignments, clusterer, top_genres=5, typical=4)
    assert [p["cluster"] for p in profiles] == list(range(6))
    assert sum(p["size"] for p in profiles) == len(tracks)
    for profile in profiles:
        assert set(profile["mean_features"]) == set(SPACE_FEATURES)
        assert 1 <= len(profile["top_genres"]) <= 5 and len(profile["typical_tracks"]) == 4
        members = set(tracks.loc[assignments["cluster"] == profile["cluster"], "track_id"])
        assert {t["track_id"] for t in profile["typical_tracks"]} <= members
        assert profile["name"]
    # Audio clusters carry genre signal: purer and more concentrated than the same sizes at random.
    sets = genre_sets(tracks)
    ours = genre_agreement(assignments["cluster"].to_numpy(), sets)
    chance = random_agreement(assignments["cluster"].to_numpy(), sets, seed=0)
    assert ours["purity"] > chance["purity"] and ours["coverage"] > chance["coverage"]
    # The density model extends to unseen tracks with about the noise share of its own sample.
    sample_noise = float(np.mean(clusterer.density_labels_ == -1))
    assert abs(float(assignments["niche"].mean()) - sample_noise) < 0.1


def test_outlier_scores_rank_a_planted_absurd_track_first(small_data: dict, train_rows: pd.DataFrame) -> None:
    detector = OutlierDetector(contamination=0.02, n_estimators=100, epochs=15, batch_size=128, seed=5)
    detector.fit(train_rows)
    held_out = small_data["tracks"].loc[small_data["is_test"]].reset_index(drop=True)
    absurd = held_out.iloc[[0]].copy()
    absurd[["danceability", "energy", "speechiness", "acousticness", "instrumentalness", "liveness"]] = 1.0
    absurd[["loudness", "tempo", "duration_ms"]] = [4.0, 245.0, 3 * 3_600_000]
    absurd["track_id"] = "planted-absurd"
    rows = pd.concat([held_out, absurd], ignore_index=True)
    scored = detector.predict(rows)
    # The scoring contract batch scoring relies on.
    assert list(scored.columns) == ["outlier_score", "is_outlier"]
    assert scored["outlier_score"].dtype == "float64" and scored["is_outlier"].dtype == bool
    assert len(scored) == len(rows)
    assert int(scored["outlier_score"].to_numpy().argmax()) == len(rows) - 1
    assert bool(scored["is_outlier"].iloc[-1])
    parts = detector.score_components(rows)
    # Both opinions agree on it, not just their mean.
    assert int(parts["isolation_score"].to_numpy().argmax()) == len(rows) - 1
    assert int(parts["reconstruction_error"].to_numpy().argmax()) == len(rows) - 1
    flagged = detector.predict(train_rows)["is_outlier"].mean()
    assert flagged == pytest.approx(0.02, abs=0.005)  # the threshold is that training quantile
    odd = {f["feature"] for f in detector.explain(absurd)[0]}
    assert odd & {"log_duration", "tempo", "loudness", "speechiness", "liveness"}
    assert rows.equals(pd.concat([held_out, absurd], ignore_index=True))  # inputs untouched


def _with_copies(tracks: pd.DataFrame) -> tuple[pd.DataFrame, str, set[str]]:
    """The catalogue plus two copies of one track: a re-release (same name and artists, new id) and the
    same master under another name (identical audio, same artist)."""
    original = tracks.iloc[10]
    rerelease = original.copy()
    rerelease["track_id"], rerelease["album_name"] = "copy-rerelease", "Greatest Hits"
    renamed = original.copy()
    renamed["track_id"], renamed["track_name"] = "copy-renamed", f"{original['track_name']} (From 'Film')"
    catalogue = pd.concat([tracks, pd.DataFrame([rerelease, renamed])], ignore_index=True)
    return catalogue, str(original["track_id"]), {"copy-rerelease", "copy-renamed"}


def test_similar_is_exact_and_excludes_the_query_and_its_copies(
    small_data: dict, train_rows: pd.DataFrame
) -> None:
    catalogue, query_id, copies = _with_copies(small_data["tracks"])
    index = SimilarityIndex().fit(train_rows).build(catalogue)
    table = index.similar_to([query_id], k=10)
    assert list(table["rank"]) == list(range(1, 11))
    assert not ({query_id} | copies) & set(table["track_id"])
    assert table["distance"].is_monotonic_increasing
    # Exact: the same answer as a brute-force search over the catalogue minus the query's song, keeping the
    # nearest track of each song.
    groups = copy_groups(catalogue)
    position = int(index.positions([query_id])[0])
    keep = np.flatnonzero(groups != groups[position])
    _, found = (
        NearestNeighbors(n_neighbors=60).fit(index.vectors_[keep]).kneighbors(index.vectors_[[position]])
    )
    expected, seen = [], set()
    for candidate in keep[found[0]]:
        if groups[candidate] not in seen:
            seen.add(groups[candidate])
            expected.append(str(catalogue.iloc[candidate]["track_id"]))
    assert table["track_id"].tolist() == expected[:10]
    # A song seen from elsewhere appears once: ask for the neighbours of the song's nearest other track.
    neighbour = table["track_id"].iloc[0]
    around = index.similar_to([neighbour], k=30)["track_id"].tolist()
    assert len({*around} & ({query_id} | copies)) <= 1
    # Raw rows without a track id (an audio file's row) are still matched to their copies by name.
    as_file = catalogue.loc[catalogue["track_id"] == query_id].drop(columns=["track_id"])
    assert not ({query_id} | copies) & set(index.query(as_file, k=10)["track_id"])
    with pytest.raises(DiscoveryInputError, match="not in the catalogue"):
        index.similar_to(["no-such-track"], k=5)


def test_playlists_meet_targets_and_order_reduces_tempo_jumps(
    small_data: dict, train_rows: pd.DataFrame
) -> None:
    index = SimilarityIndex().fit(train_rows).build(small_data["tracks"])
    targets = parse_targets(["energy=high", "tempo=100:140", "valence=0.6"], index.catalog_, 0.5)
    chosen = select_by_targets(index, targets, n=15, max_per_artist=1)
    assert len(chosen) == 15
    assert within_targets(index.catalog_.iloc[chosen], targets).all(axis=None)
    artists = index.catalog_.iloc[chosen]["artists"].str.split(";").str[0]
    assert artists.is_unique and len(set(index.song_codes_[chosen])) == 15
    table = playlist_table(index, chosen, targets, tempo_step_bpm=10.0, key_weight=0.0)
    assert table["meets_targets"].all() and set(table["track_id"]) == set(
        index.catalog_.iloc[chosen]["track_id"]
    )
    ordered = transition_stats(table["tempo"].to_numpy(), np.zeros(15), np.ones(15))
    as_chosen = transition_stats(index.catalog_.iloc[chosen]["tempo"].to_numpy(), np.zeros(15), np.ones(15))
    assert ordered["mean_abs_tempo_step"] < as_chosen["mean_abs_tempo_step"]
    # Seeds: neither the seeds nor copies of them come back.
    seeds = small_data["tracks"]["track_id"].iloc[[5, 50]].tolist()
    from_seeds = index.catalog_.iloc[select_by_seeds(index, seeds, n=12, max_per_artist=2)]
    assert len(from_seeds) == 12 and not set(seeds) & set(from_seeds["track_id"])
    seed_songs = set(index.song_codes_[index.positions(seeds)])
    assert not seed_songs & set(index.song_codes_[index.positions(from_seeds["track_id"])])
    with pytest.raises(DiscoveryInputError, match="'tempo=fast'"):
        parse_targets(["tempo=fast"], index.catalog_, 0.5)
    with pytest.raises(DiscoveryInputError, match="unknown feature 'vibe'"):
        parse_targets(["vibe=0.3"], index.catalog_, 0.5)


def test_unknown_discovery_feature_is_rejected(tmp_path: Path) -> None:
    fast_params(tmp_path, discovery__features=["energy", "vibes"])
    with pytest.raises(ParamsError, match=r"discovery\.features"):
        load_params(tmp_path / "params.yaml")


@pytest.fixture(scope="module")
def discovered(small_data: dict, tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Path:
    """A project with the sample's per-track table and splits, through the Prefect discovery flow."""
    from flows.discovery import discovery

    root = make_project(tmp_path_factory.mktemp("discovery-flow"), **SMALL)
    paths = ProjectPaths.at(root)
    write_parquet(small_data["tracks"], paths.features)
    write_parquet(small_data["splits"], paths.splits)
    write_json({"content_hash": small_data["hash"]}, paths.ingest_meta)
    started = time.perf_counter()
    discovery(root=str(root))
    print(f"discovery flow on {len(small_data['tracks']):,} tracks: {time.perf_counter() - started:.1f} s")
    return root


def test_flow_writes_metrics_reports_and_registers_three_models(discovered: Path) -> None:
    paths = ProjectPaths.at(discovered)
    metrics = read_json(paths.discovery_metrics)
    assert set(metrics) >= {"clusters", "outliers", "similar", "playlists", "map", "k_scan"}
    assert [row["k"] for row in metrics["k_scan"]] == [4, 8]
    similar = metrics["similar"]
    assert similar["genre_agreement_at_k"] > 2 * similar["random_genre_agreement_at_k"]
    assert metrics["playlists"]["target_share_within_all"] > 0.5
    for report in ("summary.md", "clusters.md", "outliers.md", "playlists.md", "map.png", "k_scan.png"):
        assert (paths.discovery_reports / report).is_file(), report
    client = Tracker.for_project(paths, params_for(paths)).client
    for name in ("clusters", "outliers", "similar-tracks"):
        champion = client.get_model_version_by_alias(name, "champion")
        challenger = client.get_model_version_by_alias(name, "challenger")
        assert str(champion.version) == str(challenger.version) == "1"
        assert champion.tags["data_hash"] == read_json(paths.ingest_meta)["content_hash"]
        assert champion.tags["params_hash"] and champion.tags["git_commit"]
        assert float(champion.tags[f"holdout_{GATE_METRICS[name]}"]) > 0
    runs = client.search_runs(
        [client.get_experiment_by_name("trackflow").experiment_id], "attributes.run_name = 'discovery'"
    )
    assert runs and runs[0].data.metrics["similar_genre_agreement_at_k"] == pytest.approx(
        similar["genre_agreement_at_k"], abs=1e-4
    )
    assert "kscan_silhouette_sample" in runs[0].data.metrics


def test_registered_pyfuncs_answer_raw_rows_and_a_rerun_keeps_the_champion(
    discovered: Path, small_data: dict
) -> None:
    paths = ProjectPaths.at(discovered)
    Tracker.for_project(paths, params_for(paths))  # points MLflow at the project's store
    rows = model_inputs(small_data["tracks"].head(6))
    # A scoring batch has no label columns: clusters and outliers take it as it is.
    batch = rows.drop(columns=["track_genre"])
    outliers = mlflow.pyfunc.load_model("models:/outliers@champion").predict(batch)
    assert list(outliers.columns) == ["outlier_score", "is_outlier"] and len(outliers) == 6
    clusters = mlflow.pyfunc.load_model("models:/clusters@champion").predict(batch)
    assert clusters["cluster"].between(0, 7).all()
    neighbours = mlflow.pyfunc.load_model("models:/similar-tracks@champion").predict(rows, params={"k": 3})
    assert len(neighbours) == 18 and neighbours.groupby("query").size().eq(3).all()
    for position, group in neighbours.groupby("query"):
        assert rows["track_id"].iloc[position] not in set(group["track_id"])
    # Same data, same params: the challenger ties the champion, which stays.
    result = register_discovery(paths, params_for(paths))
    client = MlflowClient(tracking_uri=mlflow.get_tracking_uri())
    for name, outcome in result.items():
        assert outcome["version"] == "2" and outcome["aliases"] == ["challenger"]
        assert outcome["champion_score"] == pytest.approx(outcome["challenger_score"])
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"


def test_cli_similar_and_playlist_answer_from_the_saved_index(discovered: Path, small_data: dict) -> None:
    runner = CliRunner()
    track_id = str(small_data["tracks"]["track_id"].iloc[0])
    started = time.perf_counter()
    result = runner.invoke(app, ["similar", track_id, "-k", "5", "--json", "--root", str(discovered)])
    wall = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert len(answer["neighbours"]) == 5 and track_id not in {n["track_id"] for n in answer["neighbours"]}
    timing = answer["timing_ms"]
    print(
        f"trackflow similar: index load {timing['load']:.0f} ms, query {timing['query']:.1f} ms, {wall:.2f} s"
    )
    table = runner.invoke(app, ["similar", track_id, "-k", "3", "--root", str(discovered)])
    assert table.exit_code == 0 and "distance" in table.stdout
    unknown = runner.invoke(app, ["similar", "no-such-track", "--root", str(discovered)])
    assert unknown.exit_code == 1 and "not in the catalogue" in unknown.output
    made = runner.invoke(
        app,
        [
            "playlist",
            "--target",
            "energy=high",
            "--target",
            "tempo=100:140",
            "-n",
            "8",
            "--json",
            "--root",
            str(discovered),
        ],
    )
    assert made.exit_code == 0, made.output
    playlist = json.loads(made.stdout)
    assert playlist["n"] == 8 and playlist["adherence"]["share_within_all"] == 1.0
    print(
        f"trackflow playlist: index load {playlist['timing_ms']['load']:.0f} ms, "
        f"build {playlist['timing_ms']['build']:.1f} ms"
    )
    both = runner.invoke(
        app, ["playlist", "--seed", track_id, "--target", "energy=high", "--root", str(discovered)]
    )
    assert both.exit_code == 1 and "not both" in both.output


def test_cli_similar_to_an_audio_file(discovered: Path) -> None:
    clips = sorted(AUDIO_DIR.glob("*.ogg")) if AUDIO_DIR.is_dir() else []
    if not clips:
        pytest.skip(f"no audio clips in {AUDIO_DIR} (shared test data absent)")
    clip = next((c for c in clips if "trumpet" in c.name and ".hq." not in c.name), clips[0])
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["similar", str(clip), "-k", "5", "--json", "--root", str(discovered)])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["query"]["source"] == "audio" and len(answer["neighbours"]) == 5
    assert set(answer["query"]["features"]) == set(SPACE_FEATURES)
    print(
        f"trackflow similar {clip.name}: extraction {answer['timing_ms']['extract']:.0f} ms, query "
        f"{answer['timing_ms']['query']:.1f} ms, {time.perf_counter() - started:.2f} s; imputed "
        f"{answer['query']['imputed_with_training_medians']}"
    )

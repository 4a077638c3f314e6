"""The explorer (`trackflow explore`, `make explore`): a Streamlit app over the project in TRACKFLOW_ROOT.

Pages: prediction (the champions' answers for a track you describe), the track map (PCA / t-SNE by cluster
or genre, similar tracks of a chosen one), genres (popularity and audio profiles, overlaps), artists (their
tracks and the nearest artists), playlists (from targets or seeds), the registry (champion and challenger of
every model, their holdout metrics and promotion decisions, the latest drift and performance reports).
It reads through the components the CLI and the server use; before training, a page says what to run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

PAGES = ("Prediction", "Track map", "Genres", "Artists", "Playlists", "Registry")
ROOT_ENV = "TRACKFLOW_ROOT"
NOT_GIVEN = "(not given: the genre-free fallback answers)"


def _paths_and_params() -> tuple[Any, Any]:
    from trackflow.paths import ProjectPaths
    from trackflow.stages.common import params_for

    paths = ProjectPaths.project(Path(os.environ.get(ROOT_ENV, ".")))
    return paths, params_for(paths)


@st.cache_data(show_spinner=False)
def _tracks(features: str, mtime: float) -> pd.DataFrame:
    return pd.read_parquet(features)


def _feature_table(paths: Any) -> pd.DataFrame | None:
    if not paths.features.is_file():
        st.info("No feature table yet: run `make run` (or `trackflow featurize`) first.")
        return None
    return _tracks(str(paths.features), paths.features.stat().st_mtime)


@st.cache_resource(show_spinner="Loading the champions ...")
def _champions(root: str, versions: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    import mlflow.pyfunc

    from components.scoring import Champion

    return {
        task: Champion(task, version, "", mlflow.pyfunc.load_model(f"models:/{task}/{version}"))
        for task, version in versions
    }


def _champion_versions(paths: Any, params: Any, names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    from trackflow.tracking import Tracker

    tracker = Tracker.for_project(paths, params)
    found = ((name, tracker.champion(name)) for name in names)
    return tuple((name, str(v.version)) for name, v in found if v is not None)


@st.cache_resource(show_spinner="Loading the similarity index ...")
def _similarity_index(root: str, version: str) -> Any:
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(f"models:/similar-tracks/{version}").unwrap_python_model().index


def _index(paths: Any, params: Any) -> Any | None:
    versions = dict(_champion_versions(paths, params, ("similar-tracks",)))
    if "similar-tracks" not in versions:
        st.info("No similar-tracks champion yet: run `make discovery` (or `make run`) first.")
        return None
    return _similarity_index(str(paths.root), versions["similar-tracks"])


def prediction_page(paths: Any, params: Any) -> None:
    from components.schema import AUDIO_FEATURES, CATEGORICAL_AUDIO, GENRE
    from components.serving import answer_rows
    from components.tasks import TASKS

    st.header("Prediction")
    tracks = _feature_table(paths)
    versions = _champion_versions(paths, params, TASKS)
    if tracks is None:
        return
    if not versions:
        st.info("No champion is registered yet: run `make run` first.")
        return
    st.caption("Describe a track; the champions answer as batch scoring and the model server do.")
    medians = tracks[[*AUDIO_FEATURES, "duration_ms"]].median()
    row: dict[str, Any] = {"track_id": "explorer00000000000000"}
    names = st.columns(3)  # the names feature group reads them; empty names are imputed
    row["track_name"] = names[0].text_input("track name", value="")
    row["album_name"] = names[1].text_input("album name", value="")
    row["artists"] = names[2].text_input("artists (joined by ;)", value="")
    columns = st.columns(3)
    for k, feature in enumerate((*AUDIO_FEATURES, "duration_ms")):
        integer = feature in CATEGORICAL_AUDIO or feature == "duration_ms"
        default = int(medians[feature]) if integer else float(round(medians[feature], 3))
        row[feature] = columns[k % 3].number_input(feature, value=default, key=f"in_{feature}")
    row["explicit"] = st.checkbox("explicit", value=False)
    genres = sorted({g for s in tracks[GENRE].astype(str) for g in s.split("|")})
    genre = st.selectbox("genre", [NOT_GIVEN, *genres])
    row[GENRE] = None if genre == NOT_GIVEN else genre
    explain = st.checkbox("why: the top reasons behind each answer", value=False)
    frame = pd.DataFrame([row])
    reasons = params.serve.top_k if explain else 0
    answer = answer_rows(
        frame, _champions(str(paths.root), versions), params.serve.top_k, reasons=reasons
    ).iloc[0]
    metrics = st.columns(3)
    if "predicted_popularity" in answer:
        metrics[0].metric("popularity", f"{answer['predicted_popularity']:.1f}")
    if "hit_probability" in answer:
        metrics[1].metric("hit probability", f"{answer['hit_probability']:.1%}")
    if "predicted_genre" in answer:
        metrics[2].metric("genre", str(answer["predicted_genre"]))
    if "genre_top" in answer:
        st.dataframe(pd.DataFrame(answer["genre_top"]), hide_index=True)
    if explain:
        for task in TASKS:
            if f"{task}_reasons" in answer:
                st.subheader(f"Why: {task}")
                st.dataframe(pd.DataFrame(json.loads(answer[f"{task}_reasons"])), hide_index=True)
    st.caption(
        f"genre input: {answer['genre_input']}; versions: "
        + ", ".join(f"{task} v{version}" for task, version in versions)
    )


def map_page(paths: Any, params: Any) -> None:
    from trackflow.stages.discovery.queries import find_similar

    st.header("Track map")
    coords_path = paths.discovery_part("map") / "coords.parquet"
    tracks = _feature_table(paths)
    if tracks is None:
        return
    if not coords_path.is_file():
        st.info("No track map yet: run `make discovery` (or `make run`) first.")
        return
    coords = pd.read_parquet(coords_path).merge(
        tracks[["track_id", "track_name", "artists", "track_genre"]], on="track_id"
    )
    projection = st.radio("projection", ["PCA", "t-SNE"], horizontal=True)
    colour = st.radio("colour", ["cluster", "genre"], horizontal=True)
    x, y = ("pca_x", "pca_y") if projection == "PCA" else ("tsne_x", "tsne_y")
    shown = coords.dropna(subset=[x, y])
    shown = shown.sample(n=min(len(shown), 5000), random_state=params.discovery.seed)
    first_genre = shown["track_genre"].str.split("|").str[0]
    shown = shown.assign(colour=shown["cluster"].astype(str) if colour == "cluster" else first_genre)
    if colour == "genre":  # 114 colours say nothing: the most common genres, the rest as "other"
        top = shown["colour"].value_counts().index[: params.discovery.map.highlight_genres]
        shown = shown.assign(colour=shown["colour"].where(shown["colour"].isin(top), "other"))
    st.scatter_chart(shown, x=x, y=y, color="colour", height=420)
    st.caption(f"{len(shown):,} of {len(coords):,} tracks (a seeded sample)")
    labels = (shown["track_name"] + " - " + shown["artists"]).head(200)
    choice = st.selectbox("similar tracks of", labels.tolist())
    index = _index(paths, params)
    if index is None or choice is None:
        return
    track_id = shown.loc[labels[labels == choice].index[0], "track_id"]
    result = find_similar(paths, params, str(track_id), params.discovery.similar.k, index=index)
    st.dataframe(pd.DataFrame(result["neighbours"]), hide_index=True)


def genres_page(paths: Any, params: Any) -> None:
    from components.explore import genre_overlaps, genre_profiles

    st.header("Genres")
    tracks = _feature_table(paths)
    if tracks is None:
        return
    profiles = genre_profiles(tracks)
    st.subheader("Popularity per genre")
    st.bar_chart(profiles["mean_popularity"].head(30))
    st.dataframe(profiles)
    st.subheader("Genres listed for the same tracks")
    st.dataframe(genre_overlaps(tracks), hide_index=True)


def artists_page(paths: Any, params: Any) -> None:
    from components.explore import artist_tracks, similar_artists
    from components.tracks import primary_artist

    st.header("Artists")
    tracks = _feature_table(paths)
    if tracks is None:
        return
    counts = primary_artist(tracks["artists"]).value_counts()
    artist = st.selectbox("artist", counts.index[:500].tolist())
    st.subheader(f"Tracks of {artist}")
    st.dataframe(artist_tracks(tracks, artist), hide_index=True)
    index = _index(paths, params)
    if index is None:
        return
    st.subheader("The most similar artists (nearest centroids in the audio space)")
    st.dataframe(similar_artists(index, artist, k=10), hide_index=True)


def playlists_page(paths: Any, params: Any) -> None:
    from components.discovery.space import DiscoveryInputError
    from trackflow.stages.discovery.queries import make_playlist

    st.header("Playlists")
    index = _index(paths, params)
    if index is None:
        return
    mode = st.radio("from", ["targets", "seed tracks"], horizontal=True)
    n = int(st.number_input("tracks", min_value=2, max_value=200, value=params.discovery.playlist.n))
    text = st.text_area(
        "one per line" + (" (feature=low|high|value|low:high)" if mode == "targets" else " (track ids)"),
        value="energy=high\nvalence=high\ntempo=120:130" if mode == "targets" else "",
    )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        st.info("Give at least one " + ("target" if mode == "targets" else "seed track id") + ".")
        return
    try:
        seeds, targets = ([], lines) if mode == "targets" else (lines, [])
        result = make_playlist(paths, params, seeds, targets, n, index=index)
    except (DiscoveryInputError, KeyError) as exc:
        st.error(str(exc))
        return
    st.dataframe(pd.DataFrame(result["tracks"]), hide_index=True)
    if "warning" in result:
        st.warning(result["warning"])


def registry_page(paths: Any, params: Any) -> None:
    from components.io import read_json
    from components.tasks import TASKS
    from trackflow.stages.discovery.common import REGISTERED
    from trackflow.tracking import Tracker

    st.header("Registry")
    client = Tracker.for_project(paths, params).client
    rows = []
    for name in (*TASKS, *REGISTERED):
        for version in client.search_model_versions(f"name='{name}'"):
            aliases = client.get_model_version(name, version.version).aliases
            if not aliases:
                continue
            tags = version.tags or {}
            rows.append(
                {
                    "model": name,
                    "version": version.version,
                    "aliases": ", ".join(sorted(aliases)),
                    **{k.removeprefix("holdout_"): v for k, v in tags.items() if k.startswith("holdout_")},
                    "promotion": tags.get("promotion_decision", ""),
                    "promoted_via": tags.get("promoted_via", ""),
                }
            )
    if not rows:
        st.info("Nothing is registered yet: run `make run` first.")
    else:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    for title, folder in (("drift", paths.reports / "drift"), ("performance", paths.reports / "performance")):
        summaries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
        st.subheader(f"Latest {title} report")
        if not summaries:
            st.caption(f"none yet (`trackflow monitor` writes them to {folder.relative_to(paths.root)})")
            continue
        summary = read_json(summaries[-1])
        st.write(summary.get("decision") or summary.get("degraded") or "")
        st.json(summary, expanded=False)


def main() -> None:
    st.set_page_config(page_title="trackflow explorer", layout="wide")
    try:
        paths, params = _paths_and_params()
    except Exception as exc:  # not a project, or params.yaml broken: say so instead of a traceback
        st.error(f"{exc}")
        return
    page = st.sidebar.radio("page", PAGES)
    st.sidebar.caption(f"project: {paths.root}")
    {
        "Prediction": prediction_page,
        "Track map": map_page,
        "Genres": genres_page,
        "Artists": artists_page,
        "Playlists": playlists_page,
        "Registry": registry_page,
    }[page](paths, params)


if __name__ == "__main__":
    main()

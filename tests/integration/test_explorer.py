"""The explorer through Streamlit's AppTest, page by page: on a trained project with discovery (what a user
sees after `make run`), and on a project before any training (each page says what to run, nothing fails)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO
from trackflow.explorer import PAGES, ROOT_ENV

SCRIPT = str(REPO / "trackflow" / "explorer.py")


def _page(root: Path, page: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv(ROOT_ENV, str(root))
    app = AppTest.from_file(SCRIPT, default_timeout=180)
    app.run()
    app.sidebar.radio[0].set_value(page).run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    return app


def test_prediction_gives_the_champions_answers_and_the_genre_changes_them(
    discovered_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _page(discovered_project, "Prediction", monkeypatch)
    shown = {m.label: m.value for m in app.metric}
    assert set(shown) == {"popularity", "hit probability", "genre"}
    assert 0 <= float(shown["popularity"]) <= 100
    assert any("genre input: predicted" in c.value for c in app.caption)
    genres = app.selectbox[0]
    genres.set_value(genres.options[1]).run()  # a genre given: the genre-aware model answers
    assert any("genre input: given" in c.value for c in app.caption)
    assert {m.label: m.value for m in app.metric}["popularity"] != shown["popularity"]


def test_the_track_map_lists_the_similar_tracks_of_the_chosen_one(
    discovered_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _page(discovered_project, "Track map", monkeypatch)
    neighbours = app.dataframe[0].value
    assert len(neighbours) == 10 and {"rank", "track_id", "distance"} <= set(neighbours.columns)
    app.radio[0].set_value("t-SNE").run()
    app.radio[1].set_value("genre").run()
    assert not app.exception


def test_genres_artists_playlists_and_the_registry(
    discovered_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    genres = _page(discovered_project, "Genres", monkeypatch)
    profiles, overlaps = (frame.value for frame in genres.dataframe)
    assert profiles["mean_popularity"].is_monotonic_decreasing and len(overlaps) > 0
    artists = _page(discovered_project, "Artists", monkeypatch)
    tracks, similar = (frame.value for frame in artists.dataframe)
    assert len(tracks) >= 1 and len(similar) == 10
    assert artists.selectbox[0].value not in set(similar["artist"])
    playlists = _page(discovered_project, "Playlists", monkeypatch)
    assert len(playlists.dataframe[0].value) == 20
    registry = _page(discovered_project, "Registry", monkeypatch)
    table = registry.dataframe[0].value
    assert {"popularity", "genre", "hit", "similar-tracks"} <= set(table["model"])
    assert table["aliases"].str.contains("champion").all()


@pytest.mark.parametrize("page", PAGES)
def test_before_any_training_each_page_says_what_to_run(
    project: Path, page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _page(project, page, monkeypatch)
    said = " ".join(i.value for i in app.info)
    assert "make run" in said or "make discovery" in said, said

"""Genre names as sources write them, matched to the dataset's spellings; unknown names are named."""

from __future__ import annotations

import pandas as pd
import pytest

from components.genres import GenreVocabulary, genre_key, normalise_genres
from tests.conftest import REPO

VOCABULARY = GenreVocabulary.of((REPO / "configs" / "genres.txt").read_text().split())


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("R&B", "r-n-b"),
        ("rnb", "r-n-b"),
        ("Hip Hop", "hip-hop"),
        ("Drum & Bass", "drum-and-bass"),
        ("drum'n'bass", "drum-and-bass"),
        ("Rock and Roll", "rock-n-roll"),
        ("Rock 'n' Roll", "rock-n-roll"),
        ("K-Pop", "k-pop"),
        ("  Singer Songwriter ", "singer-songwriter"),
        ("Forró", "forro"),
        ("world-music", "world-music"),
    ],
)
def test_a_genre_as_sources_write_it_is_the_dataset_s_spelling(written: str, canonical: str) -> None:
    assert VOCABULARY.canonical(written) == (canonical, [])


def test_several_genres_become_the_sorted_set_of_the_feature_table() -> None:
    assert VOCABULARY.canonical("Rock|POP| rock ") == ("pop|rock", [])


def test_unknown_names_are_named_and_not_guessed() -> None:
    genres, notes = normalise_genres(pd.Series(["Jazz", "polka step", None, "pop|sea shanty"]), VOCABULARY)
    assert genres.tolist() == ["jazz", pd.NA, pd.NA, pd.NA]
    assert notes[0] is pd.NA and notes[2] is pd.NA  # a missing genre is no error: the model predicts one
    assert "'polka step' is not a known genre" in notes[1]
    assert "'sea shanty' is not a known genre" in notes[3] and "pop" not in notes[3].split("'")[1]


def test_two_genres_that_normalise_alike_are_refused() -> None:
    assert genre_key("R & B") == genre_key("r-n-b")
    with pytest.raises(ValueError, match="cannot be told apart"):
        GenreVocabulary.of(["r-n-b", "R&B"])

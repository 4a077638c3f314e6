"""Genre names as people write them, mapped onto the dataset's own spellings.

A scoring batch may carry `track_genre` (one genre, or several joined by '|' as in the per-track table).
Sources spell genres their own way: "R&B", "Hip Hop", "Drum & Bass", "rock and roll", "K-Pop", "Forró".
Each is matched to the vocabulary (configs/genres.txt: `r-n-b`, `hip-hop`, `drum-and-bass`, `rock-n-roll`,
`k-pop`, `forro`) by a key that ignores case, accents, spaces and punctuation, and reads `&`, `and` and
`n` alike. A name that still matches nothing is not guessed: it is reported, naming the value.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from components.schema import GENRE_SEPARATOR

_WORDS = re.compile(r"[^0-9a-z]+")


def genre_key(name: str) -> str:
    """The spelling-free key of a genre name: letters and digits only, `&`/`and` read as `n`."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    words = _WORDS.split(plain.replace("&", " n "))
    return "".join("n" if word == "and" else word for word in words if word)


@dataclass(frozen=True)
class GenreVocabulary:
    """The known genres, by key; two genres with one key would make the matching ambiguous."""

    by_key: dict[str, str]

    @classmethod
    def of(cls, genres: Sequence[str]) -> GenreVocabulary:
        by_key: dict[str, str] = {}
        for genre in genres:
            other = by_key.setdefault(genre_key(genre), genre)
            if other != genre:
                raise ValueError(f"genres {other!r} and {genre!r} cannot be told apart once normalised")
        return cls(by_key)

    def canonical(self, value: str) -> tuple[str | None, list[str]]:
        """The canonical '|'-joined, sorted set of the genres in `value`, and the parts it does not know."""
        parts = [part for part in value.split(GENRE_SEPARATOR) if part.strip()]
        known = {self.by_key.get(genre_key(part)) for part in parts}
        unknown = [part.strip() for part in parts if self.by_key.get(genre_key(part)) is None]
        if unknown or not parts:
            return None, unknown or [value]
        return GENRE_SEPARATOR.join(sorted(g for g in known if g is not None)), []


def unknown_genre_note(unknown: Sequence[str]) -> str:
    """What a row's note says of the genre names that match none."""
    names = ", ".join(repr(u) for u in unknown)
    return f"track_genre: {names} is not a known genre (configs/genres.txt)"


def normalise_genre(value: object, vocabulary: GenreVocabulary) -> tuple[str | None, str | None]:
    """One genre value in the dataset's spellings, and a note naming what is unknown (None when nothing
    is): null, blank and NaN read as no genre; a genre that matches none gives (None, note)."""
    text = value.strip() if isinstance(value, str) else value
    if text is None or text is pd.NA or text == "" or (isinstance(text, float) and text != text):
        return None, None
    genre, unknown = vocabulary.canonical(str(text))
    if genre is None:
        return None, unknown_genre_note(unknown or [str(text)])
    return genre, unknown_genre_note(unknown) if unknown else None


def normalise_genres(values: pd.Series, vocabulary: GenreVocabulary) -> tuple[pd.Series, pd.Series]:
    """Canonical genre sets for `values` (null stays null), and per row a note naming what is unknown
    (null where the row is fine). A row with an unknown genre gets a null genre and a note."""
    text = values.astype("string").str.strip().replace("", pd.NA)
    # A batch repeats few distinct spellings: each is matched once, then mapped onto the rows.
    canonical: dict[str, object] = {}
    notes: dict[str, object] = {}
    for value in text.dropna().unique():
        genre, note = normalise_genre(value, vocabulary)
        canonical[value] = genre if genre is not None else pd.NA
        notes[value] = note if note is not None else pd.NA
    return (
        text.map(canonical).astype("string"),
        text.map(notes).astype("string"),
    )

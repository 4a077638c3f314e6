"""Leak-free features as pure functions plus one fitted, scikit-learn compatible transformer.

`TrackFeaturizer` is the whole preprocessing: it takes raw track rows (the dataset's columns, with
`track_genre` holding one genre or several joined by '|') and returns the model's feature frame. It is the
first step of every logged model, so scoring feeds raw rows and never re-implements a feature. It selects its
inputs by name, so the upstream index column (or any column not listed here) can never reach a model.

The catalog counts and the artist mask are in components/catalog.py, the positional helpers in
components/feature_matrix.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import KFold
from sklearn.preprocessing import TargetEncoder
from sklearn.utils.validation import check_is_fitted

from components.catalog import (
    album_key,
    catalog_of_others,
    credited_artists,
    distinct_tracks,
    masked_artist_rows,
    primary_artists,
)
from components.feature_matrix import Distinct, Lookups, floats
from components.names import (
    NAME_COLUMNS,
    NAME_OUTPUT,
    SCRIPT_COLUMNS,
    NameCharacters,
    NameModel,
    NameModelSettings,
    fit_name_model,
    hashed_ngrams,
    name_texts,
    script_shares,
)
from components.schema import AUDIO_FEATURES, GENRE, GENRE_SEPARATOR, InputArrays
from components.tracks import primary_artist

FEATURE_GROUPS: tuple[str, ...] = (
    "audio",  # the API's audio features, explicit, log duration
    "engineered",  # energy_dance_ratio, acoustic_electronic_spectrum, normalised loudness and tempo
    "genre",  # multi-hot of the track's set of genres
    "artist_frequency",  # tracks per primary artist in the training data
    "artist_target",  # out-of-fold smoothed target encoding of the primary artist
    "album_target",  # the same for the album
    "ids",  # integer genre_index and artist_bucket, for models that embed them (the MLP)
    "names",  # out-of-fold linear model on the names' character n-grams, and their scripts (names.py)
    "catalog",  # credited artists; the catalog's other tracks on the album (album_catalog_tracks)
)
CATALOG_COLUMNS = ("credited_artists", "album_catalog_tracks")
DEFAULT_GROUPS: tuple[str, ...] = ("audio", "engineered", "genre")
_IMPUTED = (*AUDIO_FEATURES, "duration_ms")
_EPS = 1e-3
ARTIST_BUCKETS = 2048
ID_COLUMNS = ("genre_index", "artist_bucket")


# --- pure feature functions -------------------------------------------------------------------------------
def log_duration(duration_ms: pd.Series) -> pd.Series:
    """log1p of the duration in seconds: durations are right-skewed (a few tracks last over an hour)."""
    return np.log1p(duration_ms.astype("float64").clip(lower=0) / 1000.0)


def energy_dance_ratio(energy: pd.Series, danceability: pd.Series) -> pd.Series:
    """Energy per unit of danceability: high for intense but hard-to-dance-to tracks (metal, noise)."""
    return energy.astype("float64") / (danceability.astype("float64") + _EPS)


def acoustic_electronic_spectrum(acousticness: pd.Series, energy: pd.Series) -> pd.Series:
    """From -1 (electronic, energetic) to +1 (acoustic, calm): acousticness minus energy."""
    return acousticness.astype("float64") - energy.astype("float64")


def genre_column(X: pd.DataFrame) -> pd.Series:
    """The genre input; absent for the genre task (where it is the label), which then reads as unknown."""
    if "track_genre" in X.columns:
        return X["track_genre"]
    return pd.Series("", index=X.index, dtype="object")


def artist_bucket(artists: pd.Series, buckets: int = ARTIST_BUCKETS) -> pd.Series:
    """A stable hash bucket of the primary artist (embedding input; collisions are acceptable)."""
    hashed = pd.util.hash_pandas_object(primary_artist(artists.fillna("")).astype(str), index=False)
    return pd.Series((hashed.to_numpy() % np.uint64(buckets)).astype("int64"), index=artists.index)


def first_genre(track_genre: pd.Series) -> pd.Series:
    return track_genre.fillna("").astype(str).str.split(GENRE_SEPARATOR, n=1).str[0]


def genre_multi_hot(track_genre: pd.Series, vocabulary: Sequence[str]) -> pd.DataFrame:
    """One 0/1 column per known genre; unknown genres set no column."""
    # Filled by position in numpy: pd.crosstab aggregates row by row in Python (about 75% of scoring time).
    column_of = {genre: i for i, genre in enumerate(vocabulary)}
    sets = track_genre.fillna("").astype(str).str.split(GENRE_SEPARATOR)
    exploded = pd.Series(sets.to_numpy(), index=np.arange(len(sets))).explode()
    columns = exploded.map(column_of)
    known = columns.notna().to_numpy()
    hot = np.zeros((len(sets), len(column_of)), dtype="int8")
    hot[exploded.index.to_numpy()[known], columns.to_numpy()[known].astype("int64")] = 1
    return pd.DataFrame(hot, index=track_genre.index, columns=[f"genre__{g}" for g in vocabulary])


def popularity_balanced_weights(y: pd.Series | np.ndarray, bins: int = 10) -> np.ndarray:
    """Weights inversely proportional to the frequency of each popularity band, with mean 1."""
    values = np.asarray(y, dtype="float64")
    edges = np.linspace(0, 100, bins + 1)[1:-1]
    band = np.digitize(values, edges)
    counts = np.bincount(band, minlength=bins).astype("float64")
    weights = 1.0 / counts[band]
    return weights / weights.mean()


def _texts(columns: InputArrays) -> list[str]:
    return name_texts(*(columns[c] for c in NAME_COLUMNS))


def _name_frame(block: np.ndarray, index: pd.Index) -> pd.DataFrame:
    return pd.DataFrame(block, columns=[NAME_OUTPUT, *SCRIPT_COLUMNS], index=index)


# --- the fitted preprocessing -----------------------------------------------------------------------------
class TrackFeaturizer(TransformerMixin, BaseEstimator):
    """Raw track rows -> feature frame. Fitted state: genre vocabulary, genre medians for imputation,
    loudness/tempo scale, artist counts and target encodings (cross-fitted on the training rows)."""

    def __init__(
        self,
        groups: Sequence[str] = DEFAULT_GROUPS,
        seed: int = 42,
        target_cv: int = 5,
        scale: bool = False,
        names: NameModelSettings | None = None,
        artist_mask_share: float = 0.0,
    ):
        self.groups = groups
        self.seed = seed
        self.target_cv = target_cv
        # The name model's settings (params.yaml train.names): needed by the names group only.
        self.names = names
        # The share of training artists whose rows are encoded as an unseen artist's would be (artist
        # groups, catalog counts), so that a model learns both regimes (train.artist_mask_share).
        self.artist_mask_share = artist_mask_share
        # Standardise continuous outputs (for the MLP); 0/1 and id columns are left as they are.
        self.scale = scale

    def _check_groups(self) -> None:
        unknown = sorted(set(self.groups) - set(FEATURE_GROUPS))
        if unknown:
            raise ValueError(f"unknown feature groups {unknown}; known: {list(FEATURE_GROUPS)}")

    def _fit_state(self, X: pd.DataFrame) -> None:
        self._check_groups()
        genre = first_genre(genre_column(X))
        numeric = X[list(_IMPUTED)].astype("float64")
        self.global_medians_ = numeric.median()
        self.genre_medians_ = numeric.groupby(genre.to_numpy()).median()
        self.genre_vocabulary_ = sorted(
            {g for s in genre_column(X).dropna().astype(str) for g in s.split(GENRE_SEPARATOR) if g}
        )
        self.loudness_scale_ = (float(numeric["loudness"].mean()), float(numeric["loudness"].std() or 1.0))
        self.tempo_scale_ = (float(numeric["tempo"].mean()), float(numeric["tempo"].std() or 1.0))
        # Catalog counts are of distinct tracks: the genre task trains on one row per (track, genre), and a
        # track's other genre rows are not other tracks (counting them would hand it its label-set size).
        tracks = distinct_tracks(X)
        self.artist_counts_ = pd.Series(primary_artists(tracks["artists"])).value_counts()
        albums = pd.Series(album_key(tracks["album_name"]))
        self.album_counts_ = albums[albums != ""].value_counts()

    def _impute(self, X: pd.DataFrame) -> pd.DataFrame:
        """Genre-aware imputation: a missing audio value takes the training median of the track's genre."""
        numeric = X[list(_IMPUTED)].astype("float64")
        if not numeric.isna().to_numpy().any():
            return numeric
        by_genre = self.genre_medians_.reindex(first_genre(genre_column(X)).to_numpy())
        by_genre.index = numeric.index
        return numeric.fillna(by_genre).fillna(self.global_medians_)

    def _base_features(self, X: pd.DataFrame) -> pd.DataFrame:
        numeric = self._impute(X)
        parts: list[pd.DataFrame] = []
        if "audio" in self.groups:
            audio = numeric[list(AUDIO_FEATURES)].copy()
            audio["explicit"] = X["explicit"].astype("float64").fillna(0.0).to_numpy()
            audio["log_duration"] = log_duration(numeric["duration_ms"])
            parts.append(audio)
        if "engineered" in self.groups:
            loud_mean, loud_std = self.loudness_scale_
            tempo_mean, tempo_std = self.tempo_scale_
            parts.append(
                pd.DataFrame(
                    {
                        "energy_dance_ratio": energy_dance_ratio(numeric["energy"], numeric["danceability"]),
                        "acoustic_electronic_spectrum": acoustic_electronic_spectrum(
                            numeric["acousticness"], numeric["energy"]
                        ),
                        "loudness_z": (numeric["loudness"] - loud_mean) / loud_std,
                        "tempo_z": (numeric["tempo"] - tempo_mean) / tempo_std,
                    },
                    index=X.index,
                )
            )
        if "genre" in self.groups:
            parts.append(genre_multi_hot(genre_column(X), self.genre_vocabulary_))
        if "artist_frequency" in self.groups:
            artists = primary_artist(X["artists"].fillna(""))
            counts = artists.map(self.artist_counts_).fillna(0).astype("float64")
            parts.append(pd.DataFrame({"artist_frequency": counts.to_numpy()}, index=X.index))
        if "catalog" in self.groups:
            album_tracks = pd.Series(album_key(X["album_name"])).map(self.album_counts_).fillna(0)
            parts.append(
                pd.DataFrame(
                    {
                        "credited_artists": credited_artists(X["artists"]).to_numpy(),
                        "album_catalog_tracks": album_tracks.to_numpy(dtype="float64"),
                    },
                    index=X.index,
                )
            )
        if "ids" in self.groups:
            position = {g: k + 1 for k, g in enumerate(self.genre_vocabulary_)}  # 0: unknown genre
            genre_index = first_genre(genre_column(X)).map(position).fillna(0).astype("int64")
            parts.append(
                pd.DataFrame(
                    {
                        "genre_index": genre_index.to_numpy(),
                        "artist_bucket": artist_bucket(X["artists"]).to_numpy(),
                    },
                    index=X.index,
                )
            )
        return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=X.index)

    def _fit_scaler(self, features: pd.DataFrame) -> None:
        continuous = [
            c
            for c in features.columns
            if c not in ID_COLUMNS and not c.startswith("genre__") and features[c].nunique() > 2
        ]
        self.scale_columns_ = continuous if self.scale else []
        self.scale_mean_ = features[self.scale_columns_].mean()
        self.scale_std_ = features[self.scale_columns_].std().replace(0, 1.0).fillna(1.0)

    def _apply_scaler(self, features: pd.DataFrame) -> pd.DataFrame:
        # getattr: featurizers pickled before scaling existed have no scaler state and never scale.
        if not getattr(self, "scale_columns_", None):
            return features
        scaled = features.copy()
        scaled[self.scale_columns_] = (features[self.scale_columns_] - self.scale_mean_) / self.scale_std_
        return scaled

    def _category_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        columns = {}
        if "artist_target" in self.groups:
            columns["artist_target"] = primary_artist(X["artists"].fillna("")).fillna("").astype(str)
        if "album_target" in self.groups:
            columns["album_target"] = X["album_name"].fillna("").astype(str)
        return pd.DataFrame(columns, index=X.index)

    def fit(self, X: pd.DataFrame, y: pd.Series | np.ndarray | None = None) -> TrackFeaturizer:
        self.fit_transform(X, y)
        return self

    def fit_transform(
        self, X: pd.DataFrame, y: pd.Series | np.ndarray | None = None, **_: object
    ) -> pd.DataFrame:
        X = X.reset_index(drop=True)
        self._fit_state(X)
        masked = masked_artist_rows(X["artists"], self.artist_mask_share, self.seed)
        base = catalog_of_others(X, self._base_features(X), masked)
        categories = self._category_frame(X)
        self.target_encoder_ = None
        if not categories.empty:
            if y is None:
                raise ValueError("target encoding groups need y to fit")
            # fit_transform cross-fits: each training row is encoded by folds it is not in (no self-leak).
            self.target_encoder_ = TargetEncoder(
                target_type="continuous",
                smooth="auto",
                cv=KFold(n_splits=self.target_cv, shuffle=True, random_state=self.seed),
            )
            encoded = self.target_encoder_.fit_transform(categories, np.asarray(y, dtype="float64"))
            if "artist_target" in categories.columns:
                # Masked artists' rows get what an unseen artist gets: the training target's mean.
                column = list(categories.columns).index("artist_target")
                encoded[masked, column] = self.target_encoder_.target_mean_
            base = pd.concat([base, pd.DataFrame(encoded, columns=categories.columns, index=X.index)], axis=1)
        self.name_model_ = None
        if "names" in self.groups:
            if y is None or self.names is None:
                raise ValueError("the names feature group needs y and its settings (train.names) to fit")
            texts = _texts(InputArrays.view(X))
            fitted = fit_name_model(
                texts,
                np.asarray(y),
                primary_artists(X["artists"]),
                self.names,
            )
            self.name_model_ = fitted.model
            scripts = script_shares(NameCharacters.of(texts))
            block = np.column_stack([fitted.out_of_fold, scripts])
            base = pd.concat([base, _name_frame(block, X.index)], axis=1)
        self.feature_names_out_ = list(base.columns)
        self._fit_scaler(base)
        return self._apply_scaler(base)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The feature frame of raw rows (float64), as `fit_transform` builds it for the training rows."""
        return pd.DataFrame(self.transform_matrix(X), columns=self.feature_names_out_)

    def transform_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """The features built frame by frame, as `fit_transform` builds them (dtypes as at fit): the
        reference `transform_matrix` is tested against."""
        check_is_fitted(self, "feature_names_out_")
        X = X.reset_index(drop=True)
        base = self._base_features(X)
        categories = self._category_frame(X)
        if self.target_encoder_ is not None:
            encoded = self.target_encoder_.transform(categories)
            base = pd.concat([base, pd.DataFrame(encoded, columns=categories.columns, index=X.index)], axis=1)
        if self._name_model() is not None:
            base = pd.concat([base, _name_frame(self._name_block(InputArrays.view(X)), X.index)], axis=1)
        return self._apply_scaler(base[self.feature_names_out_])

    def transform_matrix(
        self, X: pd.DataFrame | InputArrays, shared: dict[tuple[object, ...], object] | None = None
    ) -> np.ndarray:
        """`transform` as a float64 matrix in `feature_names_out_` order: the inference path's features.

        Built in numpy from the input columns' arrays, each text column worked out once per distinct value
        (a batch holds far fewer distinct genres and artists than rows): one row costs a fraction of a
        millisecond, where the frame-building path of `fit_transform` costs several. The values are those of
        that path (a test compares them); missing audio values, rare at scoring, are imputed through it.
        `shared`: one batch's store of what featurizers of the batch can share (the names' n-grams)."""
        check_is_fitted(self, "feature_names_out_")
        columns = X if isinstance(X, InputArrays) else InputArrays.view(X)
        lookups = self._lookups()
        genres = Distinct.of(columns[GENRE] if GENRE in columns else np.full(len(columns), "", dtype=object))
        numeric = np.column_stack([floats(columns[c]) for c in _IMPUTED]).reshape(len(columns), len(_IMPUTED))
        gaps = np.isnan(numeric).any(axis=1)
        if gaps.any():
            numeric[gaps] = self._impute(columns.take(gaps).frame()).to_numpy(dtype="float64")
        column = {name: numeric[:, k] for k, name in enumerate(_IMPUTED)}
        blocks: list[np.ndarray] = []
        if "audio" in self.groups:
            explicit = np.nan_to_num(floats(columns["explicit"]), nan=0.0)
            blocks += [numeric[:, : len(AUDIO_FEATURES)], explicit[:, None]]
            blocks.append(np.log1p(np.clip(column["duration_ms"], 0, None) / 1000.0)[:, None])
        if "engineered" in self.groups:
            loud_mean, loud_std = self.loudness_scale_
            tempo_mean, tempo_std = self.tempo_scale_
            engineered = [
                column["energy"] / (column["danceability"] + _EPS),
                column["acousticness"] - column["energy"],
                (column["loudness"] - loud_mean) / loud_std,
                (column["tempo"] - tempo_mean) / tempo_std,
            ]
            blocks.append(np.column_stack(engineered))
        if "genre" in self.groups:
            blocks.append(genres.each(lookups.genre_columns)[genres.codes])
        if {"artist_frequency", "ids"} & set(self.groups):
            artists = Distinct.of(columns["artists"], primary=True)
        if "artist_frequency" in self.groups:
            found = self.artist_counts_.index.get_indexer(artists.values)
            counts = np.where(found >= 0, self.artist_counts_.to_numpy()[found], 0).astype("float64")
            blocks.append(counts[artists.codes][:, None])
        if "catalog" in self.groups:
            credits = Distinct.of(columns["artists"])
            per_credit = credited_artists(np.asarray(credits.values, dtype=object)).to_numpy()
            albums = Distinct.of(columns["album_name"])
            found = self.album_counts_.index.get_indexer(album_key(np.asarray(albums.values, dtype=object)))
            counts = np.append(self.album_counts_.to_numpy(dtype="float64"), 0.0)  # found == -1: none
            album_tracks = counts[found]
            blocks.append(
                np.column_stack([per_credit[credits.codes], album_tracks[albums.codes].astype("float64")])
            )
        if "ids" in self.groups:
            first = np.array(
                [lookups.genre_position.get(g, 0) for g in genres.first_values()], dtype="float64"
            )
            # artist_bucket's hash, on the distinct primary artists.
            hashed = pd.util.hash_array(np.array(artists.values, dtype=object))
            buckets = (hashed % np.uint64(ARTIST_BUCKETS)).astype("float64")
            blocks.append(np.column_stack([first[genres.codes], buckets[artists.codes]]))
        if self.target_encoder_ is not None:
            blocks.append(
                np.asarray(
                    self.target_encoder_.transform(self._category_frame(columns.frame())), dtype="float64"
                )
            )
        if self._name_model() is not None:
            blocks.append(self._name_block(columns, shared))
        matrix = np.hstack(blocks) if blocks else np.empty((len(columns), 0))
        if lookups.scale_positions.size:
            columns = lookups.scale_positions
            matrix[:, columns] = (matrix[:, columns] - lookups.scale_mean) / lookups.scale_std
        return matrix

    def _name_block(
        self, columns: InputArrays, shared: dict[tuple[object, ...], object] | None = None
    ) -> np.ndarray:
        """The names output and script shares of the rows. The characters and hashed n-grams depend on the
        rows and the n-gram settings only, the output on the name model too (a blend's members share one):
        kept in `shared` for the batch's other featurizers."""
        shared = {} if shared is None else shared
        if ("name_characters",) not in shared:
            shared[("name_characters",)] = NameCharacters.of(_texts(columns))
        if ("name_scripts",) not in shared:  # the genre's names prior may have stored the characters alone
            shared[("name_scripts",)] = script_shares(shared[("name_characters",)])  # type: ignore[arg-type]
        settings = self.name_model_.settings
        ngrams_key = ("name_ngrams", settings.n_features, settings.ngram_min, settings.ngram_max)
        if ngrams_key not in shared:
            shared[ngrams_key] = hashed_ngrams(shared[("name_characters",)], settings)
        output_key = ("name_output", self.name_model_.digest_)
        if output_key not in shared:
            shared[output_key] = self.name_model_.predict(shared[ngrams_key])
        return np.column_stack([shared[output_key], shared[("name_scripts",)]])

    def _name_model(self) -> NameModel | None:
        # getattr: featurizers pickled before the names group existed have no name model.
        return getattr(self, "name_model_", None)

    def _lookups(self) -> Lookups:
        # Worked out once per fitted featurizer, never pickled (see __getstate__).
        cached = self.__dict__.get("_lookups_")
        if cached is None:
            cached = self.__dict__["_lookups_"] = Lookups.of(self)
        return cached

    def __getstate__(self) -> dict[str, object]:
        # The inference path's caches (components/inference.py state_key included) are rebuilt on use.
        state = super().__getstate__()
        state.pop("_lookups_", None)
        state.pop("_state_key_", None)
        return state

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)

"""Observed outcomes coming back: labels attached to the rows of a scored batch, and merged into the
training listings (a newer label for a track replaces the older one, and the dataset's own listings of it).

A label file names `track_id` and at least one of `popularity` and `track_genre` (one genre, or several
joined by '|'); a labelled row is the scored batch's row for that track with those values set, plus when it
was labelled and from which batch. Nothing here reads or writes files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from components.schema import COLUMNS, GENRE, GENRE_SEPARATOR, TARGET
from components.tracks import LABEL_BATCH

LABELLED_AT = "labelled_at"
LABEL_VALUES: tuple[str, ...] = (TARGET, GENRE)


class LabelError(ValueError):
    """Labels that cannot be attached: the message names what is wrong."""


def attach_labels(
    batch_rows: pd.DataFrame, labels: pd.DataFrame, batch: str, labelled_at: pd.Timestamp
) -> pd.DataFrame:
    """The batch's rows of the labelled tracks in the dataset's columns, with the labels' values in place
    of the batch's, and `labelled_at` and `label_batch`. Inputs are not modified.

    Raises LabelError when the labels lack `track_id` or every label column, repeat a track, or name tracks
    the batch does not have."""
    if "track_id" not in labels.columns:
        raise LabelError(f"labels for batch {batch} have no track_id column, only {list(labels.columns)}")
    given = [c for c in LABEL_VALUES if c in labels.columns]
    if not given:
        raise LabelError(f"labels for batch {batch} carry neither {TARGET} nor {GENRE}")
    ids = labels["track_id"].astype(str)
    repeated = list(ids[ids.duplicated()].unique())
    if repeated:
        raise LabelError(
            f"labels for batch {batch} list {len(repeated)} track(s) twice or more, e.g. {repeated[:3]}"
        )
    rows = batch_rows.assign(track_id=batch_rows["track_id"].astype(str)).drop_duplicates("track_id")
    unknown = sorted(set(ids) - set(rows["track_id"]))
    if unknown:
        raise LabelError(
            f"labels for batch {batch} name {len(unknown)} track(s) not in the batch, e.g. {unknown[:3]}"
        )
    kept = [c for c in COLUMNS if c in rows.columns and c not in given]
    labelled = labels.assign(track_id=ids)[["track_id", *given]].merge(
        rows[kept], on="track_id", how="left", validate="one_to_one"
    )
    for column in COLUMNS:
        if column not in labelled.columns:
            labelled[column] = None
    labelled = labelled[list(COLUMNS)]
    labelled[LABELLED_AT] = labelled_at
    labelled[LABEL_BATCH] = batch
    return labelled


@dataclass(frozen=True)
class LabelMerge:
    """What merging the labelled rows changed in the listings."""

    label_files: int
    labelled_tracks: int
    replaced_tracks: int  # tracks of the dataset whose listings a label replaced
    new_tracks: int
    superseded_labels: int  # older labels of a track that a newer one replaced
    # The newest label learned from (ISO time): a model trained on these rows knows every label up to it.
    newest_labelled_at: str | None = None

    def as_dict(self) -> dict[str, int | str | None]:
        return dict(self.__dict__)


def merge_labels(listings: pd.DataFrame, labelled: Sequence[pd.DataFrame]) -> tuple[pd.DataFrame, LabelMerge]:
    """Listings with every labelled track's newest label in place of its listings (the dataset's and
    older labels'), and a `label_batch` column (null for the dataset's own rows); a label with several
    genres becomes one listing per genre, like the dataset's. Ties on `labelled_at` go to the later frame in
    `labelled`. Returns new frames."""
    base = listings.assign(**{LABEL_BATCH: pd.Series(pd.NA, index=listings.index, dtype="string")})
    if not labelled:
        return base, LabelMerge(0, 0, 0, 0, 0)
    stacked = pd.concat(
        [frame.assign(_order=k) for k, frame in enumerate(labelled)], ignore_index=True
    ).sort_values([LABELLED_AT, "_order"], kind="stable")
    newest = stacked.drop_duplicates("track_id", keep="last")
    known = set(listings["track_id"].astype(str))
    labelled_ids = set(newest["track_id"].astype(str))
    kept = base[~base["track_id"].astype(str).isin(labelled_ids)]
    genres = newest[GENRE].astype(str).str.split(GENRE_SEPARATOR)
    exploded = newest.assign(**{GENRE: genres}).explode(GENRE)[list(base.columns)]
    merged = pd.concat([kept, exploded.astype(base.dtypes.to_dict())], ignore_index=True)
    report = LabelMerge(
        label_files=len(labelled),
        labelled_tracks=len(newest),
        replaced_tracks=len(labelled_ids & known),
        new_tracks=len(labelled_ids - known),
        superseded_labels=int(len(stacked) - len(newest)),
        newest_labelled_at=pd.Timestamp(stacked[LABELLED_AT].max()).isoformat(),
    )
    return merged, report

"""Realistic incoming batches built from held-out real rows, for demos and for testing drift monitoring."""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import pandas as pd

from components.ingest import INGEST_ERRORS
from components.params import SimulateParams
from components.schema import GENRE_SEPARATOR, LABEL_COLUMNS, ROW_NUMBER

Shift = Literal["none", "genre_mix", "louder", "shorter"]
SHIFTS: tuple[str, ...] = get_args(Shift)


def _energetic_genres(pool: pd.DataFrame, n: int) -> list[str]:
    """The n genres whose tracks have the highest mean energy (metal, hardcore, ... on the real data)."""
    first = pool["track_genre"].astype(str).str.split(GENRE_SEPARATOR, n=1).str[0]
    means = pool["energy"].astype("float64").groupby(first.to_numpy()).mean()
    return sorted(means.sort_values(ascending=False, kind="stable").index[:n])


def simulate_batch(pool: pd.DataFrame, shift: Shift, params: SimulateParams) -> pd.DataFrame:
    """A batch of `params.rows` tracks drawn (seeded) from `pool` (held-out raw rows with labels), shifted as
    asked, with the label columns removed, as a scoring batch arrives. Tracks repeat only when the batch is
    larger than the pool.

    - none: an iid sample of the pool.
    - genre_mix: `genre_mix_share` of the rows from the most energetic genres, the rest iid.
    - louder: loudness + `louder_db` dB (capped at +5 dBFS, the suite's bound) and energy + `louder_energy`
      (capped at 1): loudness-war remasters measure as more energetic too.
    - shorter: durations x `shorter_factor` (radio edits, short-form releases).
    """
    if shift not in SHIFTS:
        raise ValueError(f"unknown drift {shift!r}: expected one of {list(SHIFTS)}")
    if pool.empty:
        raise ValueError("the pool of held-out rows is empty")
    rng = np.random.default_rng(params.seed)
    n = params.rows
    # New tracks arrive once each: a track listed under several genres is one row once the genre is gone.
    pool = pool.drop_duplicates(subset="track_id").reset_index(drop=True)
    if shift == "genre_mix":
        chosen = set(_energetic_genres(pool, params.genre_mix_genres))
        first = pool["track_genre"].astype(str).str.split(GENRE_SEPARATOR, n=1).str[0]
        in_mix = first.isin(chosen).to_numpy()
        # Without replacement (a batch of new tracks has no copies): when the chosen genres hold fewer
        # tracks than asked for, the batch shrinks so that the mix keeps its share.
        n_mix = min(round(n * params.genre_mix_share), int(in_mix.sum()))
        rest_per_mix = (1 - params.genre_mix_share) / params.genre_mix_share
        n_rest = min(round(n_mix * rest_per_mix), int((~in_mix).sum()))
        picks = np.concatenate(
            [
                rng.choice(np.flatnonzero(in_mix), size=n_mix, replace=False),
                rng.choice(np.flatnonzero(~in_mix), size=n_rest, replace=False),
            ]
        )
        rng.shuffle(picks)
    else:
        picks = rng.choice(len(pool), size=n, replace=n > len(pool))
    batch = pool.iloc[picks].reset_index(drop=True)
    batch = batch.drop(columns=[c for c in (*LABEL_COLUMNS, ROW_NUMBER, INGEST_ERRORS) if c in batch])
    if shift == "louder":
        batch["loudness"] = (batch["loudness"].astype("float64") + params.louder_db).clip(upper=5.0)
        batch["energy"] = (batch["energy"].astype("float64") + params.louder_energy).clip(upper=1.0)
    elif shift == "shorter":
        shortened = (batch["duration_ms"].astype("float64") * params.shorter_factor).round()
        batch["duration_ms"] = shortened.astype(batch["duration_ms"].dtype)
    return batch

"""Small data the tests build themselves (no real dataset): shared by several test modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

GENRES = ["pop", "rock", "jazz", "metal"]


# Tiny models of every family: tests of wiring, shapes and equal answers, not of quality.
TINY_FAMILY_PARAMS: dict[str, dict[str, Any]] = {
    "lightgbm": {"n_estimators": 8, "num_leaves": 7},
    "xgboost": {"n_estimators": 8, "max_depth": 3},
    "catboost": {"iterations": 8, "depth": 3},
    "random_forest": {"n_estimators": 5, "max_depth": 4},
    "mlp": {"max_epochs": 3, "hidden_size": 16},
}


def synthetic_tracks(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    genre = rng.choice(GENRES, size=n)
    frame = pd.DataFrame(
        {
            "track_id": [f"{i:022d}" for i in range(n)],
            "artists": [f"artist{rng.integers(0, n // 4)};feat" for _ in range(n)],
            "album_name": [f"album{rng.integers(0, n // 3)}" for _ in range(n)],
            "track_name": "song",
            "duration_ms": rng.integers(60_000, 400_000, n),
            "explicit": rng.random(n) < 0.2,
            "danceability": rng.random(n),
            "energy": rng.random(n),
            "key": rng.integers(-1, 12, n),
            "loudness": rng.normal(-8, 4, n),
            "mode": rng.integers(0, 2, n),
            "speechiness": rng.random(n),
            "acousticness": rng.random(n),
            "instrumentalness": rng.random(n),
            "liveness": rng.random(n),
            "valence": rng.random(n),
            "tempo": rng.normal(120, 25, n),
            "time_signature": 4,
            "track_genre": genre,
        }
    )
    frame["popularity"] = (
        30 + 25 * (genre == "pop") + 20 * frame["danceability"] + rng.normal(0, 5, n)
    ).clip(0, 100)
    return frame


# --- audio signals -----------------------------------------------------------------------------------
SR = 22050


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _tone(notes: list[int], seconds: float, amplitude: float = 0.05) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    envelope = np.clip(np.minimum(t / 0.01, (seconds - t) / 0.05), 0, 1)
    partials = sum(amplitude * np.sin(2 * np.pi * _midi_hz(n) * h * t) / h for n in notes for h in (1, 2, 3))
    return envelope * partials


def chord_progression(chords: list[list[int]], repeats: int = 3) -> np.ndarray:
    return np.concatenate([_tone(chord, 1.0) for _ in range(repeats) for chord in chords]).astype(np.float32)


def metered_clicks(
    beats_per_bar: int, bpm: float, bars: int = 16, seed: int = 0, downbeat_gain: float = 2.4
) -> np.ndarray:
    """A click on every beat, `downbeat_gain` times louder on the downbeat, and a chord that changes with
    every bar."""
    rng = np.random.default_rng(seed)
    beat = 60.0 / bpm
    y = np.zeros(int(bars * beats_per_bar * beat * SR) + SR)
    chords = [[60, 64, 67], [65, 69, 72], [67, 71, 74], [57, 60, 64]]
    click_len = int(0.05 * SR)
    decay = np.exp(-np.arange(click_len) / (0.005 * SR))
    for bar in range(bars):
        start = int(bar * beats_per_bar * beat * SR)
        chord = _tone(chords[bar % 4], beats_per_bar * beat)
        y[start : start + len(chord)] += chord[: len(y) - start]
        for b in range(beats_per_bar):
            at = int((bar * beats_per_bar + b) * beat * SR)
            y[at : at + click_len] += (
                decay * rng.standard_normal(click_len) * (0.25 * downbeat_gain if b == 0 else 0.25)
            )
    return y.astype(np.float32)


def write(path: Path, samples: np.ndarray, **kwargs: object) -> Path:
    sf.write(path, samples, SR, **kwargs)
    return path

"""Audio features (components/audio) on signals the tests synthesise: loudness, key and mode, tempo and
meter, silence, bad files, the dataset schema of extracted rows, the parameters."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.audio import (
    COLUMN_SOURCES,
    MISSING_COLUMNS,
    TRACK_COLUMNS,
    AudioDecodeError,
    analyse,
    decode_file,
    extract_files,
    is_audio_track_id,
)
from components.audio.features import integrated_loudness, k_weighting
from components.params import AudioParams
from tests.builders import SR, chord_progression, metered_clicks, write
from tests.conftest import REPO, repo_params

CONFIG = repo_params().audio.model_copy(update={"workers": 1})


# --- loudness: ITU-R BS.1770-4 ---
def test_k_weighting_matches_the_standard_at_48k() -> None:
    (shelf_b, shelf_a), (high_b, high_a) = k_weighting(48000)
    # BS.1770-4 Tables 1 and 2.
    np.testing.assert_allclose(shelf_b, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-9)
    np.testing.assert_allclose(shelf_a, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-9)
    np.testing.assert_allclose(high_b, [1.0, -2.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(high_a, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-9)


@pytest.mark.parametrize("rate", [48000, 44100, SR])
def test_reference_tone_reads_minus_23_lufs_and_silence_is_gated(rate: int) -> None:
    # A 997 Hz sine at -20 dBFS peak in one channel is -23.0 LUFS (0 dBFS reads -3.01).
    t = np.arange(5 * rate) / rate
    tone = 0.1 * np.sin(2 * np.pi * 997 * t)
    reading = integrated_loudness(tone, rate)
    assert reading == pytest.approx(-23.01, abs=0.05)
    # Gating: 5 s of silence after it. Of the 97 blocks (400 ms, 100 ms apart), the 47 silent ones fall
    # under the -70 LUFS absolute gate; 47 full-tone blocks and 3 straddling ones (3/4, 1/2, 1/4 tone) are
    # above the relative gate and count: the tone's reading + 10 log10(48.5 / 50). Ungated: about -26.
    padded = np.concatenate([tone, np.zeros(5 * rate)])
    assert integrated_loudness(padded, rate) == pytest.approx(reading + 10 * np.log10(48.5 / 50), abs=0.01)
    assert np.isnan(integrated_loudness(np.zeros(rate), rate))


# --- key, tempo, metre on signals built to have them ---
@pytest.mark.parametrize(
    ("chords", "key", "mode"),
    [
        ([[62, 66, 69], [67, 71, 74], [69, 73, 76], [62, 66, 69]], 2, 1),  # D: I IV V I
        ([[59, 62, 66], [64, 67, 71], [66, 70, 73], [59, 62, 66]], 11, 0),  # b: i iv V i
        ([[66, 69, 73], [71, 74, 78], [73, 77, 80], [66, 69, 73]], 6, 0),  # f#: i iv V i
    ],
)
def test_key_and_mode_of_a_cadence(chords: list[list[int]], key: int, mode: int) -> None:
    columns, descriptors = analyse(chord_progression(chords), CONFIG)
    assert (columns["key"], columns["mode"]) == (key, mode)
    assert descriptors["key_correlation"] > 0.8


@pytest.mark.parametrize(
    ("beats_per_bar", "bpm", "downbeat_gain"),
    [(3, 96, 2.4), (4, 120, 2.4), (3, 140, 2.4), (4, 100, 2.4), (4, 160, 1.0), (3, 90, 1.0)],
)
def test_tempo_and_time_signature_of_a_click_track(
    beats_per_bar: int, bpm: float, downbeat_gain: float
) -> None:
    """Gain 1.0: every click alike, only the chord changes mark the bar."""
    signal = metered_clicks(beats_per_bar, bpm, downbeat_gain=downbeat_gain)
    columns, descriptors = analyse(signal, CONFIG)
    assert columns["tempo"] == pytest.approx(bpm, abs=2.0)
    assert columns["time_signature"] == beats_per_bar
    assert descriptors["time_signature_estimated"] is True
    assert 0.5 < columns["danceability"] <= 1.0  # a metronome is as regular and beat-strong as it gets


def test_silence_yields_missing_values_not_a_crash(tmp_path: Path) -> None:
    batch = extract_files([write(tmp_path / "silence.wav", np.zeros(5 * SR, dtype=np.float32))], CONFIG)
    assert batch.errors == []
    row = batch.tracks.iloc[0]
    for column in ("loudness", "energy", "tempo", "danceability", "key", "mode", *MISSING_COLUMNS):
        assert pd.isna(row[column]), column
    assert row["duration_ms"] == 5000
    # Not estimable: the documented fallback, flagged as such.
    assert row["time_signature"] == 4
    assert batch.descriptors.iloc[0]["time_signature_estimated"] is np.False_
    assert batch.descriptors.iloc[0]["silent"]


# --- files: schema, ids, per-file errors ---
def test_tracks_follow_the_dataset_schema_and_ids_follow_the_content(tmp_path: Path) -> None:
    signal = metered_clicks(4, 120, bars=4)
    first = write(tmp_path / "a.wav", signal)
    same = tmp_path / "copy of a.wav"
    shutil.copy(first, same)
    other = write(tmp_path / "b.flac", signal * 0.5)
    batch = extract_files([first, other, same], CONFIG)
    assert list(batch.tracks.columns) == list(TRACK_COLUMNS)
    assert batch.tracks["track_name"].tolist() == ["a", "b"]
    assert batch.tracks["artists"].isna().all() and not batch.tracks["explicit"].any()
    assert str(batch.tracks["duration_ms"].dtype) == "int64"
    assert {str(batch.tracks[c].dtype) for c in ("key", "mode", "time_signature")} == {"Int64"}
    ids = batch.tracks["track_id"].tolist()
    assert ids[0] != ids[1] and all(is_audio_track_id(i) for i in ids)
    assert all(len(i) == 22 and i.isalnum() for i in ids)  # the dataset's track_id form
    # The same bytes under another name: one row, the copy reported.
    assert [(Path(e.path).name, "same content" in e.reason) for e in batch.errors] == [
        ("copy of a.wav", True)
    ]
    again = extract_files([same], CONFIG)
    assert again.tracks["track_id"].tolist() == [ids[0]]


def test_bad_files_are_reported_per_file_and_the_batch_goes_on(tmp_path: Path) -> None:
    signal = metered_clicks(4, 120, bars=4)
    good = write(tmp_path / "good.wav", signal)
    ogg = write(tmp_path / "full.ogg", signal, format="OGG", subtype="VORBIS")
    wav = write(tmp_path / "full.wav", signal)
    truncated_ogg = tmp_path / "truncated.ogg"
    truncated_ogg.write_bytes(ogg.read_bytes()[: ogg.stat().st_size // 2])
    truncated_wav = tmp_path / "truncated.wav"
    truncated_wav.write_bytes(wav.read_bytes()[: wav.stat().st_size // 2])
    text = tmp_path / "notes.wav"
    text.write_text("these are liner notes, not audio\n" * 20)
    empty = tmp_path / "empty.mp3"
    empty.touch()
    short = write(tmp_path / "blip.wav", signal[: SR // 4])
    unsupported = write(tmp_path / "clip.aiff", signal, format="AIFF")
    missing = tmp_path / "gone.wav"

    files = [truncated_ogg, good, truncated_wav, text, empty, short, unsupported, missing]
    batch = extract_files(files, CONFIG)
    assert batch.tracks["track_name"].tolist() == ["good"]
    reasons = {Path(e.path).name: e.reason for e in batch.errors}
    assert set(reasons) == {p.name for p in files} - {"good.wav"}
    assert reasons["truncated.ogg"].startswith("truncated ogg")
    assert reasons["truncated.wav"].startswith("truncated wav: the data chunk declares")
    assert reasons["notes.wav"].startswith("not a readable audio file (libsndfile: Format not recognised")
    assert reasons["empty.mp3"] == "empty file (0 bytes)"
    assert reasons["blip.wav"].startswith("too short to analyse: 0.25 s")
    assert reasons["clip.aiff"].startswith("unsupported file type '.aiff'")
    assert reasons["gone.wav"] == "file not found"
    # The untouched files still decode: the checks are about the damage, not the format.
    assert decode_file(ogg, SR).duration_s == pytest.approx(len(signal) / SR, abs=0.01)
    with pytest.raises(AudioDecodeError, match="truncated"):
        decode_file(truncated_ogg, SR)


def test_only_the_first_max_seconds_are_analysed_but_duration_is_whole(tmp_path: Path) -> None:
    path = write(tmp_path / "long.wav", metered_clicks(4, 120, bars=8))  # 17 s
    batch = extract_files([path], CONFIG.model_copy(update={"max_seconds": 5}))
    descriptors = batch.descriptors.iloc[0]
    assert descriptors["analysed_s"] == pytest.approx(5.0, abs=0.01)
    assert descriptors["truncated_analysis"]
    assert batch.tracks.iloc[0]["duration_ms"] == pytest.approx(17000, abs=1)


def test_audio_params_are_checked() -> None:
    committed = CONFIG.model_dump()
    with pytest.raises(ValueError, match="lower case without a dot"):
        AudioParams.model_validate({**committed, "extensions": (".wav",)})
    with pytest.raises(ValueError, match="extra"):
        AudioParams.model_validate({**committed, "hop": 512})
    with pytest.raises(ValueError, match="sample_rate"):  # no default stands in for a missing key
        AudioParams.model_validate({k: v for k, v in committed.items() if k != "sample_rate"})


def test_column_sources_cover_the_schema() -> None:
    """Every non-identity column is documented: measured, estimated, proxy, missing or not from audio."""
    identity = {"track_id", "artists", "album_name", "track_name"}
    assert set(COLUMN_SOURCES) == set(TRACK_COLUMNS) - identity
    documented = (REPO / "docs" / "audio_features.md").read_text()
    for column in COLUMN_SOURCES:
        assert f"`{column}`" in documented, column

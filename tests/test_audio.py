"""Audio feature extraction (components/audio) and the audio scoring flow.

Ground truth comes from outside the extractor: the ITU-R BS.1770-4 reference values, synthesised signals
whose tempo, metre and key are known by construction, and the three real clips of ../shared/data/audio
(their documented durations, the trumpet loop pack's "in F, 90 bpm", and the pitch content of the Brahms
recording). The clips are never committed: their tests skip when the folder is absent.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

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
from tests.conftest import REPO, copy_project, make_project, repo_params
from trackflow import audio_stages, stages
from trackflow.cli import app
from trackflow.paths import ProjectPaths

SR = 22050
CONFIG = repo_params().audio.model_copy(update={"workers": 1})
TRUMPET = "sorohanro_-_solo-trumpet-06"
BRAHMS = "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra)"
VIBE_ACE = "Kevin_MacLeod_-_Vibe_Ace"
# Lengths from ../shared/data/audio/SOURCE.md.
DURATIONS_S = {TRUMPET: 5.3, BRAHMS: 45.8, VIBE_ACE: 61.5}
F, G = 5, 7  # pitch classes


def audio_dir() -> Path | None:
    candidate = Path(os.environ.get("TRACKFLOW_AUDIO_DIR") or REPO.parent / "shared" / "data" / "audio")
    return candidate if candidate.is_dir() and any(candidate.glob("*.ogg")) else None


@pytest.fixture(scope="module")
def clips_dir() -> Path:
    folder = audio_dir()
    if folder is None:
        pytest.skip(
            "real audio clips not found: set TRACKFLOW_AUDIO_DIR or place the librosa example clips in "
            "../shared/data/audio (see SOURCE.md there)"
        )
    return folder


@pytest.fixture(scope="module")
def clips(clips_dir: Path) -> pd.DataFrame:
    """The six clip files (plain and .hq of each), tracks joined with descriptors, indexed by file name.
    In-process: worker start-up would cost more than the analysis (the pool has its own test)."""
    files = sorted(clips_dir.glob("*.ogg"))
    batch = extract_files(files, CONFIG, n_workers=1)
    assert batch.errors == [] and batch.workers == 1
    frame = batch.tracks.merge(batch.descriptors, on="track_id")
    return frame.set_index(frame["path"].map(lambda p: Path(p).name))


# --- synthetic signals with known answers ---
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


# --- the real clips ---
def test_clip_durations(clips: pd.DataFrame) -> None:
    for stem, seconds in DURATIONS_S.items():
        for name in (f"{stem}.ogg", f"{stem}.hq.ogg"):
            assert clips.loc[name, "duration_ms"] / 1000 == pytest.approx(seconds, abs=0.06), name


def test_trumpet_loop_is_in_f_at_90_bpm_up_to_an_octave(clips: pd.DataFrame) -> None:
    """The loop pack says "in F, 90 bpm, mostly Blues and Dorian scale". Blues and Dorian have a minor
    third, so only the tonic is checked. Tempo is judged as MIREX does (Gouyon et al. 2006): within 4% of
    the true tempo or of a metrical relative (x1/3, x1/2, x2, x3). On this 5.3 s solo phrase the tracker
    locks onto the eighth notes: ~182 BPM, 2x 90 within 2% (see docs/audio_features.md)."""
    for name in (f"{TRUMPET}.ogg", f"{TRUMPET}.hq.ogg"):
        row = clips.loc[name]
        assert row["key"] == F, row["key_name"]
        tempo = row["tempo"]
        assert any(abs(tempo / (90 * factor) - 1) <= 0.04 for factor in (1 / 3, 1 / 2, 1, 2, 3)), tempo


def test_brahms_recording_is_in_g_minor(clips: pd.DataFrame) -> None:
    """Hungarian Dance No. 5 is catalogued in F-sharp minor, the key of Brahms' piano original; orchestral
    arrangements (Schmeling's among them) play it in G minor, and this string-orchestra recording does:
    the melody test below measures it independently of the key estimator."""
    for name in (f"{BRAHMS}.ogg", f"{BRAHMS}.hq.ogg"):
        assert (clips.loc[name, "key"], clips.loc[name, "mode"]) == (G, 0), clips.loc[name, "key_name"]


@pytest.mark.slow
def test_brahms_melody_uses_the_g_minor_scale(clips_dir: Path) -> None:
    """Independent of the chroma/profile estimator: pYIN pitch tracking of the opening melody at A440
    (measured tuning within 5 cents), folded to pitch classes."""
    import librosa

    samples, rate = sf.read(clips_dir / f"{BRAHMS}.ogg", dtype="float32", frames=8 * SR)
    assert abs(librosa.estimate_tuning(y=samples, sr=rate)) <= 0.05
    f0, voiced, _ = librosa.pyin(samples, fmin=150, fmax=1500, sr=rate, hop_length=1024)
    classes = np.round(librosa.hz_to_midi(f0[voiced])).astype(int) % 12
    share = np.bincount(classes, minlength=12) / len(classes)
    g_minor = [7, 9, 10, 0, 2, 3, 6]  # G A Bb C D Eb F# (harmonic minor)
    assert share[g_minor].sum() > 0.9
    assert share[1] + share[8] < 0.02  # C# and G#: dominant and leading tone of F-sharp minor, absent


@pytest.mark.slow
def test_energy_proxy_follows_the_datasets_loudness_energy_relation(real_csv: Path) -> None:
    """The energy proxy's constants are a least-squares logistic fit of energy on loudness over the
    dataset's tracks; refit here on the real data."""
    from scipy.optimize import curve_fit

    from components.audio.features import (
        ENERGY_LOUDNESS_MID_DB,
        ENERGY_LOUDNESS_SCALE_DB,
        energy_from_loudness,
    )

    rows = pd.read_csv(real_csv, usecols=["track_id", "loudness", "energy"]).drop_duplicates("track_id")

    def logistic(loudness: np.ndarray, mid: float, scale: float) -> np.ndarray:
        return 1 / (1 + np.exp(-(loudness - mid) / scale))

    (mid, scale), _ = curve_fit(logistic, rows["loudness"], rows["energy"], p0=[-10, 3])
    assert mid == pytest.approx(ENERGY_LOUDNESS_MID_DB, abs=0.2)
    assert scale == pytest.approx(ENERGY_LOUDNESS_SCALE_DB, abs=0.2)
    fitted = np.array([energy_from_loudness(v) for v in rows["loudness"]])
    r2 = 1 - np.mean((rows["energy"] - fitted) ** 2) / rows["energy"].var(ddof=0)
    assert r2 == pytest.approx(0.61, abs=0.02)


def test_plain_and_hq_versions_agree(clips: pd.DataFrame) -> None:
    """The same recording at 22.05 kHz mono and 44.1 kHz stereo gives the same features."""
    for stem in DURATIONS_S:
        plain, hq = clips.loc[f"{stem}.ogg"], clips.loc[f"{stem}.hq.ogg"]
        assert plain["track_id"] != hq["track_id"]
        assert (plain["key"], plain["mode"]) == (hq["key"], hq["mode"])
        assert plain["tempo"] == pytest.approx(hq["tempo"], rel=0.02)
        assert plain["loudness"] == pytest.approx(hq["loudness"], abs=0.5)
        assert plain["danceability"] == pytest.approx(hq["danceability"], abs=0.05)
        assert (plain["native_sample_rate"], plain["channels"]) == (22050, 1)
        assert (hq["native_sample_rate"], hq["channels"]) == (44100, 2)


def test_process_pool_gives_the_serial_results_and_reports_errors(
    clips: pd.DataFrame, tmp_path: Path
) -> None:
    """Two spawned workers on the two trumpet files and a bad one: same rows as in-process, same order."""
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    names = [f"{TRUMPET}.hq.ogg", f"{TRUMPET}.ogg"]
    files = [Path(clips.loc[n, "path"]) for n in names]
    pooled = extract_files([files[0], bad, files[1]], CONFIG, n_workers=2)
    assert pooled.workers == 2
    assert [(Path(e.path).name, e.reason.startswith("not a readable audio file")) for e in pooled.errors] == [
        ("bad.wav", True)
    ]
    serial = clips.loc[names, list(TRACK_COLUMNS)].reset_index(drop=True)
    pd.testing.assert_frame_equal(pooled.tracks, serial.astype(pooled.tracks.dtypes.to_dict()))


def test_column_sources_cover_the_schema() -> None:
    """Every non-identity column is documented: measured, estimated, proxy, missing or not from audio."""
    identity = {"track_id", "artists", "album_name", "track_name"}
    assert set(COLUMN_SOURCES) == set(TRACK_COLUMNS) - identity
    documented = (REPO / "docs" / "audio_features.md").read_text()
    for column in COLUMN_SOURCES:
        assert f"`{column}`" in documented, column


# --- stages and the flow ---
def test_extract_stage_writes_the_batch_and_reports_bad_files(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    folder = tmp_path / "incoming-audio"
    folder.mkdir()
    write(folder / "waltz.wav", metered_clicks(3, 96))
    write(folder / "silence.flac", np.zeros(3 * SR, dtype=np.float32))
    # -63 LUFS: decodes fine, but under the expectation suite's -60 dB floor for loudness.
    write(
        folder / "whisper.wav", (0.001 * np.sin(2 * np.pi * 997 * np.arange(3 * SR) / SR)).astype(np.float32)
    )
    (folder / "broken.ogg").write_bytes(b"OggS" + b"\0" * 100)
    (folder / "README.txt").write_text("not audio, not an error")
    paths = ProjectPaths.at(root)
    params = stages.params_for(paths)
    summary = audio_stages.extract_audio(paths, params, folder, workers=1)
    assert summary["batch"] == "audio-incoming-audio"
    assert (summary["files"], summary["files_ignored"], summary["tracks"]) == (4, 1, 2)
    reasons = {Path(e["path"]).name: e["reason"] for e in summary["errors"]}
    assert set(reasons) == {"broken.ogg", "whisper.wav"}
    assert "loudness" in reasons["whisper.wav"] and "scoring suite" in reasons["whisper.wav"]
    assert set(MISSING_COLUMNS) <= set(summary["nullable_columns"])
    assert {"key", "mode", "tempo", "loudness"} <= set(summary["nullable_columns"])  # from the silent file
    out = paths.audio_batch("audio-incoming-audio")
    tracks = pd.read_parquet(out / "tracks.parquet")
    assert sorted(tracks["track_name"]) == ["silence", "waltz"]
    assert tracks.set_index("track_name").loc["waltz", "time_signature"] == 3
    assert len(pd.read_parquet(out / "descriptors.parquet")) == 2
    assert {"columns.json", "errors.json", "validation.html", "extract.json"} <= {
        p.name for p in out.iterdir()
    }
    assert summary["audio_seconds_per_second_per_core"] > 0


@pytest.mark.slow
def test_score_audio_cli_prints_predictions_per_clip(
    trained_project: Path, clips_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_project(trained_project, tmp_path)
    folder = tmp_path / "my clips"
    folder.mkdir()
    for stem in DURATIONS_S:
        shutil.copy(clips_dir / f"{stem}.ogg", folder)
    (folder / "broken.wav").write_text("not audio")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    result = CliRunner().invoke(app, ["score-audio", str(folder), "--root", str(root), "-j", "1"])
    assert result.exit_code == 0, result.output
    for stem in DURATIONS_S:
        assert f"{stem}.ogg" in result.output
    assert "skipped broken.wav: not a readable audio file" in result.output

    paths = ProjectPaths.at(root)
    predictions = pd.read_parquet(paths.predictions("audio-my-clips"))
    assert len(predictions) == 3
    assert predictions["predicted_popularity"].between(0, 100).all()
    assert predictions["hit_probability"].between(0, 1).all()
    genres = set((REPO / "configs" / "genres.txt").read_text().split())
    assert set(predictions["predicted_genre"]) <= genres
    files = pd.read_csv(paths.audio_batch("audio-my-clips") / "files.csv")
    assert files["status"].value_counts().to_dict() == {"scored": 3, "error": 1}
    tracks = pd.read_parquet(paths.audio_batch("audio-my-clips") / "tracks.parquet")
    assert set(predictions["track_id"]) == set(tracks["track_id"])

"""Audio analogues of the dataset's audio columns, and extra descriptors, from one decoded mono signal.

How each column is estimated, its unit and whether it is a measurement, a proxy or missing is documented in
docs/audio_features.md and in `COLUMN_SOURCES` below (written beside every extracted batch). Nothing is made
up: a column without a defensible audio analogue is missing (NaN) and left to the models' imputation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.signal import lfilter

from components.params import AudioParams

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Krumhansl & Kessler (1982) probe-tone key profiles, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

# energy proxy: the dataset's own relation between loudness and energy, a logistic fitted by least squares on
# the 89,740 tracks of data/features/tracks.parquet (energy ~ 1 / (1 + exp(-(loudness - mid) / scale)),
# R^2 = 0.61). tests/test_audio.py refits it on the real data.
ENERGY_LOUDNESS_MID_DB = -11.0
ENERGY_LOUDNESS_SCALE_DB = 4.7

# Silence: below this peak level (-100 dBFS) the signal carries nothing to analyse.
_SILENCE_PEAK = 1e-5
# Key: a chroma vector this flat (max/mean) has no tonal centre (noise, unpitched percussion).
_MIN_CHROMA_CONTRAST = 1.05
# The dataset's fastest track is 243 BPM and the expectation suite allows up to 250 (librosa: 320).
_MAX_TEMPO_BPM = 240.0
# A beat "owns" the onsets within +-3 rhythm frames (+-35 ms at 22.05 kHz, hop 256).
_BEAT_RADIUS_FRAMES = 3

Source = Literal["measured", "estimated", "proxy", "missing", "not_audio"]


@dataclass(frozen=True)
class ColumnSource:
    source: Source
    how: str


COLUMN_SOURCES: dict[str, ColumnSource] = {
    "duration_ms": ColumnSource("measured", "decoded frames / native sample rate of the whole file, in ms"),
    "tempo": ColumnSource(
        "estimated",
        "BPM from the mean inter-beat interval of librosa's dynamic-programming beat tracker on a "
        "median-aggregated onset envelope; octave errors (x2, x1/2) are possible",
    ),
    "loudness": ColumnSource(
        "measured",
        "integrated loudness, ITU-R BS.1770-4 (K-weighting, 400 ms blocks, -70 LUFS absolute and -10 LU "
        "relative gates) of the mono downmix, in LUFS (= dB); not RMS",
    ),
    "key": ColumnSource(
        "estimated",
        "pitch class 0-11 of the best Krumhansl-Kessler profile correlation with the mean CQT chroma",
    ),
    "mode": ColumnSource("estimated", "1 major / 0 minor: the mode of that best-correlating profile"),
    "time_signature": ColumnSource(
        "estimated",
        "3 or 4 from the autocorrelation of two beat-level accent cues (level, harmonic change); "
        "else audio.time_signature_fallback (4) with time_signature_estimated=False (too few beats, "
        "no clear metre)",
    ),
    "energy": ColumnSource(
        "proxy",
        "the dataset's typical energy at the measured loudness: 1/(1+exp(-(LUFS+11.0)/4.7)), fitted on the "
        "dataset's loudness/energy pairs (R^2 0.61); not Spotify's model",
    ),
    "danceability": ColumnSource(
        "proxy",
        "mean of beat strength (share of onset energy within 35 ms of a beat, above chance) and pulse "
        "regularity "
        "(onset-envelope autocorrelation at the beat period); uncalibrated against Spotify's scale",
    ),
    "speechiness": ColumnSource("missing", "needs a speech detector; no defensible signal-level proxy"),
    "acousticness": ColumnSource("missing", "needs an acoustic/electronic classifier; no defensible proxy"),
    "instrumentalness": ColumnSource("missing", "needs a vocal detector; no defensible proxy"),
    "liveness": ColumnSource("missing", "needs an audience/venue detector; no defensible proxy"),
    "valence": ColumnSource("missing", "musical positiveness has no defensible signal-level proxy"),
    "explicit": ColumnSource("not_audio", "lyrics content is not analysed: False, as unknown (not measured)"),
}
MISSING_COLUMNS: tuple[str, ...] = tuple(c for c, s in COLUMN_SOURCES.items() if s.source == "missing")


# --- loudness (ITU-R BS.1770-4) ---
def k_weighting(sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two K-weighting biquads (high shelf, then high pass) of BS.1770 at any sample rate: the analogue
    parameters and bilinear forms of B. De Man (AES 2018), which give the standard's 48 kHz coefficients."""
    f0, gain_db, q = 1681.9744509555319, 3.99984385397, 0.7071752369554193
    k = math.tan(math.pi * f0 / sample_rate)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.499666774155
    a0 = 1 + k / q + k * k
    shelf_b = np.array([(vh + vb * k / q + k * k), 2 * (k * k - vh), (vh - vb * k / q + k * k)]) / a0
    shelf_a = np.array([a0, 2 * (k * k - 1), 1 - k / q + k * k]) / a0
    f0, q = 38.13547087613982, 0.5003270373253953
    k = math.tan(math.pi * f0 / sample_rate)
    a0 = 1 + k / q + k * k
    highpass_b = np.array([1.0, -2.0, 1.0])
    highpass_a = np.array([a0, 2 * (k * k - 1), 1 - k / q + k * k]) / a0
    return [(shelf_b, shelf_a), (highpass_b, highpass_a)]


def integrated_loudness(samples: np.ndarray, sample_rate: int) -> float:
    """BS.1770-4 gated integrated loudness of a mono signal in LUFS; NaN when every block is gated out
    (silence) or the signal is shorter than one 400 ms block."""
    filtered = samples.astype(np.float64)
    for b, a in k_weighting(sample_rate):
        filtered = lfilter(b, a, filtered)
    block, step = round(0.4 * sample_rate), round(0.1 * sample_rate)
    if len(filtered) < block:
        return math.nan
    power = np.cumsum(np.concatenate([[0.0], filtered**2]))
    starts = np.arange(0, len(filtered) - block + 1, step)
    z = (power[starts + block] - power[starts]) / block
    with np.errstate(divide="ignore"):
        levels = -0.691 + 10 * np.log10(z)
    kept = z[levels > -70.0]
    if kept.size == 0:
        return math.nan
    relative_gate = -0.691 + 10 * np.log10(kept.mean()) - 10.0
    with np.errstate(divide="ignore"):
        kept = kept[-0.691 + 10 * np.log10(kept) > relative_gate]
    return float(-0.691 + 10 * np.log10(kept.mean()))


def energy_from_loudness(loudness_lufs: float) -> float:
    if not math.isfinite(loudness_lufs):
        return math.nan
    return float(1 / (1 + math.exp(-(loudness_lufs - ENERGY_LOUDNESS_MID_DB) / ENERGY_LOUDNESS_SCALE_DB)))


# --- key ---
@dataclass(frozen=True)
class KeyEstimate:
    key: int
    mode: int
    correlation: float  # of the best profile
    margin: float  # best minus the best of the other mode / other tonic


def estimate_key(chroma_mean: np.ndarray) -> KeyEstimate | None:
    """Best of the 24 rotated Krumhansl-Kessler profiles by Pearson correlation; None for a flat chroma."""
    chroma_mean = np.asarray(chroma_mean, dtype=np.float64)
    if chroma_mean.mean() <= 0 or chroma_mean.max() / chroma_mean.mean() < _MIN_CHROMA_CONTRAST:
        return None
    scores = np.array(
        [
            [np.corrcoef(chroma_mean, np.roll(profile, tonic))[0, 1] for tonic in range(12)]
            for profile in (MINOR_PROFILE, MAJOR_PROFILE)  # row index = mode (0 minor, 1 major)
        ]
    )
    mode, key = np.unravel_index(np.argmax(scores), scores.shape)
    ordered = np.sort(scores.ravel())
    return KeyEstimate(int(key), int(mode), float(ordered[-1]), float(ordered[-1] - ordered[-2]))


# --- rhythm ---
def tempo_from_beats(beat_times: np.ndarray) -> float:
    """BPM from the mean inter-beat interval, ignoring gaps and doublings (intervals off the median by more
    than 30%): the mean over many beats resolves tempo finer than one analysis frame."""
    if len(beat_times) < 3:
        return math.nan
    intervals = np.diff(beat_times)
    median = np.median(intervals)
    regular = intervals[np.abs(intervals - median) <= 0.3 * median]
    return float(60.0 / regular.mean()) if regular.size else math.nan


def _periodicity(cue: np.ndarray) -> tuple[float, float] | None:
    """(quadruple, triple) periodicity of one beat-level cue: its autocorrelation averaged over lags 4 and 8,
    and over lags 3 and 6 beats. None for a constant cue."""
    x = np.asarray(cue, dtype=np.float64)
    x = x - x.mean()
    denominator = float(np.dot(x, x))
    if denominator <= 0:
        return None

    def acf(lag: int) -> float:
        # Normalised by the overlap so that long lags are not shrunk toward 0.
        return float(np.dot(x[:-lag], x[lag:]) / denominator * len(x) / (len(x) - lag))

    return (acf(4) + acf(8)) / 2, (acf(3) + acf(6)) / 2


def estimate_meter(
    cues: list[np.ndarray], *, min_beats: int, margin: float
) -> tuple[int | None, dict[str, float]]:
    """3 or 4 beats per bar from beat-level accent cues (one value per beat each): a triple metre repeats at
    lags of 3 and 6 beats, a quadruple (or duple) one at 4 and 8. The cues' periodicities are averaged (not
    the cues summed, so that a cue that says nothing, or the opposite, only dilutes the others). None when
    there are too few beats or neither periodicity is positive and ahead of the other by `margin`."""
    scores = {"meter_duple_score": math.nan, "meter_triple_score": math.nan}
    if not cues or len(cues[0]) < max(min_beats, 16):  # lag 8 needs pairs to average over
        return None, scores
    measured = [p for p in (_periodicity(cue) for cue in cues) if p is not None]
    if not measured:
        return None, scores
    duple = float(np.mean([p[0] for p in measured]))
    triple = float(np.mean([p[1] for p in measured]))
    scores = {"meter_duple_score": duple, "meter_triple_score": triple}
    # The winner must show a periodicity of its own (above `margin`), not merely be the less negative.
    if triple > max(duple, 0.0) + margin:
        return 3, scores
    if duple > max(triple, 0.0) + margin:
        return 4, scores
    return None, scores


def beat_onset_share(onset: np.ndarray, beats: np.ndarray, *, radius: int) -> float:
    """Share of the onset energy within `radius` frames of a beat, rescaled so that onsets placed at random
    (the share the windows cover) give 0 and onsets only on beats give 1."""
    near = np.zeros(len(onset), dtype=bool)
    for beat in beats:
        near[max(beat - radius, 0) : beat + radius + 1] = True
    coverage = near.mean()
    if coverage >= 1 or onset.sum() <= 0:
        return math.nan
    share = onset[near].sum() / onset.sum()
    return _clip01((share - coverage) / (1 - coverage))


def _clip01(value: float) -> float:
    return float(min(1.0, max(0.0, value)))


def _summaries(prefix: str, matrix: np.ndarray, names: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, row in zip(names, matrix, strict=True):
        out[f"{prefix}_{name}_mean"] = float(np.mean(row))
        out[f"{prefix}_{name}_std"] = float(np.std(row))
    return out


def analyse(samples: np.ndarray, config: AudioParams) -> tuple[dict[str, Any], dict[str, Any]]:
    """(dataset columns, descriptors) of a mono float signal at config.sample_rate.

    The dataset columns returned are the audio ones (not duration_ms, which comes from the whole file, nor
    the identity columns). Values not estimable from this signal are NaN / None, never invented."""
    import librosa

    sr, hop = config.sample_rate, config.hop_length
    y = np.asarray(samples, dtype=np.float32)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    mean_square = float(np.mean(np.square(y, dtype=np.float64))) if y.size else 0.0
    silent = peak < _SILENCE_PEAK
    descriptors: dict[str, Any] = {
        "silent": silent,
        "peak_dbfs": 20 * math.log10(peak) if not silent else math.nan,
        "rms_dbfs": 10 * math.log10(mean_square) if not silent and mean_square > 0 else math.nan,
    }
    loudness = math.nan if silent else integrated_loudness(y, sr)
    columns: dict[str, Any] = {c: math.nan for c in MISSING_COLUMNS}
    columns.update(loudness=loudness, energy=energy_from_loudness(loudness))

    # Spectral descriptors from one magnitude STFT.
    stft = np.abs(librosa.stft(y, n_fft=2048, hop_length=hop))
    power = stft**2
    mel = librosa.feature.melspectrogram(S=power, sr=sr)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), sr=sr, n_mfcc=config.n_mfcc)
    descriptors.update(_summaries("mfcc", mfcc, [str(i) for i in range(config.n_mfcc)]))
    contrast = librosa.feature.spectral_contrast(S=stft, sr=sr)
    descriptors.update(_summaries("contrast", contrast, [f"band{i}" for i in range(contrast.shape[0])]))
    for name, values in (
        ("spectral_centroid_hz", librosa.feature.spectral_centroid(S=stft, sr=sr)),
        ("spectral_bandwidth_hz", librosa.feature.spectral_bandwidth(S=stft, sr=sr)),
        ("spectral_rolloff_hz", librosa.feature.spectral_rolloff(S=stft, sr=sr)),
        ("spectral_flatness", librosa.feature.spectral_flatness(S=stft)),
        ("zero_crossing_rate", librosa.feature.zero_crossing_rate(y, hop_length=hop)),
    ):
        descriptors[f"{name}_mean"] = float(np.mean(values))

    # Key and mode from the CQT chroma, tuned to the recording by librosa (not in silence: nothing to tune).
    chroma = librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=hop, tuning=0.0 if silent else None)
    descriptors.update(_summaries("chroma", chroma, list(PITCH_CLASSES)))
    key = None if silent else estimate_key(chroma.mean(axis=1))
    columns["key"] = None if key is None else key.key
    columns["mode"] = None if key is None else key.mode
    descriptors["key_correlation"] = math.nan if key is None else key.correlation
    descriptors["key_margin"] = math.nan if key is None else key.margin

    # Rhythm: median aggregation across mel bands favours broadband (percussive) onsets over the pitch
    # changes of one band; the finer hop resolves tempo better (at 512 one frame is ~3 BPM at 90 BPM).
    rhop = config.rhythm_hop_length
    onset = librosa.onset.onset_strength(y=y, sr=sr, hop_length=rhop, aggregate=np.median)
    duration = len(y) / sr
    n_onsets = len(librosa.onset.onset_detect(onset_envelope=onset, sr=sr, hop_length=rhop))
    descriptors.update(
        onset_strength_mean=float(onset.mean()),
        onset_strength_std=float(onset.std()),
        onset_strength_max=float(onset.max()),
        onset_rate_per_s=n_onsets / duration if duration > 0 else math.nan,
    )
    beats = np.zeros(0, dtype=int)
    if not silent and onset.max() > 0:
        bpm = librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=rhop, max_tempo=_MAX_TEMPO_BPM)
        _, beats = librosa.beat.beat_track(onset_envelope=onset, sr=sr, hop_length=rhop, bpm=float(bpm[0]))
    beat_times = librosa.frames_to_time(beats, sr=sr, hop_length=rhop)
    tempo = tempo_from_beats(beat_times)
    columns["tempo"] = tempo
    descriptors["beat_count"] = len(beats)
    descriptors["beat_interval_cv"] = (
        float(np.std(np.diff(beat_times)) / np.mean(np.diff(beat_times))) if len(beats) >= 3 else math.nan
    )

    # danceability proxy: beat strength and pulse regularity.
    if math.isfinite(tempo) and onset.sum() > 0:
        beat_strength = beat_onset_share(onset, beats, radius=_BEAT_RADIUS_FRAMES)
        lag = round(60.0 / tempo * sr / rhop)
        ac = librosa.autocorrelate(onset - onset.mean(), max_size=lag + 2)
        window = ac[max(lag - 1, 1) : lag + 2]
        regularity = _clip01(float(window.max() / ac[0])) if ac[0] > 0 and window.size else 0.0
        descriptors.update(beat_strength=beat_strength, pulse_regularity=regularity)
        columns["danceability"] = (beat_strength + regularity) / 2
    else:
        descriptors.update(beat_strength=math.nan, pulse_regularity=math.nan)
        columns["danceability"] = math.nan

    # Time signature from two beat-level accent cues, the classic downbeat cues: the level at the beat
    # (downbeats are louder) and the harmonic change into it (chords change on the bar line).
    meter = None
    scores = {"meter_duple_score": math.nan, "meter_triple_score": math.nan}
    if len(beats) >= config.min_beats_for_meter:
        level = librosa.amplitude_to_db(librosa.feature.rms(y=y, hop_length=rhop)[0])
        beat_level = np.array([level[max(b - 1, 0) : b + 4].max() for b in beats])
        chroma_frames = np.clip(
            librosa.time_to_frames(beat_times, sr=sr, hop_length=hop), 0, chroma.shape[1] - 1
        )
        # One chroma vector per beat span; change[i] = 1 - cosine similarity entering beat i.
        spans = librosa.util.sync(chroma, chroma_frames, pad=False)
        unit = spans / (np.linalg.norm(spans, axis=0) + 1e-9)
        change = np.concatenate([[0.0], 1 - np.sum(unit[:, 1:] * unit[:, :-1], axis=0)])
        change = np.pad(change, (0, max(0, len(beats) - len(change))), mode="edge")[: len(beats)]
        meter, scores = estimate_meter(
            [beat_level, change], min_beats=config.min_beats_for_meter, margin=config.meter_margin
        )
    descriptors.update(scores)
    descriptors["time_signature_estimated"] = meter is not None
    columns["time_signature"] = meter if meter is not None else config.time_signature_fallback
    return columns, descriptors

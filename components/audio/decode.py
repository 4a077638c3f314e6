"""Decode one audio file into a mono float signal at the analysis sample rate.

libsndfile (through soundfile) reads wav, flac, ogg/vorbis and, from libsndfile 1.1, mp3; audioread is the
fallback for anything it cannot open (with ffmpeg or GStreamer installed it reads m4a, wma, ...). Every
failure is an `AudioDecodeError` whose message says what is wrong with the file, so that a batch can report
it per file and go on.

Truncation is checked explicitly, because decoders are lenient: libsndfile silently plays the readable part
of a truncated wav or ogg file. A file is truncated when its container says more than it holds (a RIFF data
chunk larger than the file, an Ogg stream whose last page lacks the end-of-stream flag) or when fewer frames
decode than the header declares.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Decoded frames may fall short of the declared count by encoder padding / delay (mp3: a few ms); more than
# this is a truncated or corrupt file.
_MISSING_TOLERANCE_S = 0.5
_MISSING_TOLERANCE_SHARE = 0.02
_BLOCK_FRAMES = 1 << 18


class AudioDecodeError(ValueError):
    """The file cannot be decoded as audio; the message is the per-file reason."""


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # mono float32 at `sample_rate`, at most max_seconds long
    sample_rate: int
    duration_s: float  # the whole file, not only the analysed part
    native_sample_rate: int
    channels: int
    decoder: str  # "soundfile" or "audioread"
    container: str  # e.g. "OGG/VORBIS"

    @property
    def analysed_s(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def truncated_analysis(self) -> bool:
        """Only the first max_seconds were analysed."""
        return self.analysed_s + 1.0 / self.sample_rate < self.duration_s


def check_container(path: Path) -> None:
    """Raise AudioDecodeError when a wav or ogg container declares more than the file holds."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(12)
        if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
            _check_riff(handle, size, big_endian=head[:4] == b"RIFX")
        elif head[:4] == b"OggS":
            _check_ogg(handle, size)


def _check_riff(handle, size: int, *, big_endian: bool) -> None:
    fmt = ">I" if big_endian else "<I"
    offset = 12
    while offset + 8 <= size:
        handle.seek(offset)
        header = handle.read(8)
        chunk_id, chunk_size = header[:4], struct.unpack(fmt, header[4:8])[0]
        if chunk_id == b"data":
            # 0 and 0xFFFFFFFF are what streaming writers leave when they never come back to fill the size.
            if chunk_size not in (0, 0xFFFFFFFF) and offset + 8 + chunk_size > size:
                held = size - offset - 8
                raise AudioDecodeError(
                    f"truncated wav: the data chunk declares {chunk_size:,} bytes but the file holds {held:,}"
                )
            return
        offset += 8 + chunk_size + (chunk_size & 1)  # chunks are word-aligned
    raise AudioDecodeError("truncated or malformed wav: no data chunk found")


def _check_ogg(handle, size: int) -> None:
    # Walk the pages by their declared lengths (RFC 3533); scanning for "OggS" could match inside a payload.
    offset, header_type = 0, 0
    while offset < size:
        handle.seek(offset)
        header = handle.read(27)
        if len(header) < 27:
            raise AudioDecodeError(f"truncated ogg: the page header at byte {offset:,} is cut short")
        if header[:4] != b"OggS":
            raise AudioDecodeError(f"corrupt ogg: no page header at byte {offset:,}")
        header_type, n_segments = header[5], header[26]
        lacing = handle.read(n_segments)
        end = offset + 27 + n_segments + sum(lacing)
        if len(lacing) < n_segments or end > size:
            raise AudioDecodeError(
                f"truncated ogg: the page at byte {offset:,} runs past the end of the file"
            )
        offset = end
    if not header_type & 0x04:
        raise AudioDecodeError("truncated ogg: the last page lacks the end-of-stream flag")


def _mono(block: np.ndarray) -> np.ndarray:
    return block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block.astype(np.float32, copy=False)


def _read_soundfile(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int, int, int, int, str]:
    """(mono samples, native rate, channels, decoded frames, declared frames, container); reads to the end to
    count frames but keeps only the first max_seconds."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as handle:
        rate, channels, declared = handle.samplerate, handle.channels, handle.frames
        container = f"{handle.format}/{handle.subtype}"
        # Not bounded by the declared length: an estimate (mp3) may fall short of what decodes.
        keep = math.inf if max_seconds is None else round(max_seconds * rate)
        kept: list[np.ndarray] = []
        decoded = 0
        try:
            while True:
                want = _BLOCK_FRAMES if decoded >= keep else int(min(_BLOCK_FRAMES, keep - decoded))
                block = handle.read(frames=want, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                if decoded < keep:
                    kept.append(_mono(block if keep == math.inf else block[: int(keep - decoded)]))
                decoded += len(block)
        except sf.LibsndfileError as exc:
            raise AudioDecodeError(
                f"corrupt {container} stream: decoding failed after {decoded / rate:.1f} s ({exc})"
            ) from exc
    samples = np.concatenate(kept) if kept else np.zeros(0, dtype=np.float32)
    return samples, rate, channels, decoded, declared, container


def _read_audioread(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int, int, int, int, str]:
    import audioread

    with audioread.audio_open(str(path)) as handle:
        rate, channels = int(handle.samplerate), int(handle.channels)
        declared = round(float(handle.duration or 0) * rate)
        keep = None if max_seconds is None else round(max_seconds * rate)
        kept: list[np.ndarray] = []
        decoded = 0
        for buffer in handle:  # 16-bit little-endian interleaved PCM
            block = np.frombuffer(buffer, dtype="<i2").astype(np.float32) / 32768.0
            block = block.reshape(-1, channels)
            if keep is None or decoded < keep:
                kept.append(_mono(block if keep is None else block[: keep - decoded]))
            decoded += len(block)
    samples = np.concatenate(kept) if kept else np.zeros(0, dtype=np.float32)
    return samples, rate, channels, decoded, declared, f"audioread/{type(handle).__name__}"


def decode_file(
    path: Path, sample_rate: int, *, max_seconds: float | None = None, min_seconds: float = 0.0
) -> DecodedAudio:
    """Decode `path` to mono float32 at `sample_rate` (first `max_seconds` only); raise AudioDecodeError with
    the reason when the file is missing, empty, truncated, corrupt, not audio or too short."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError("not a file" if path.exists() else "file not found")
    if path.stat().st_size == 0:
        raise AudioDecodeError("empty file (0 bytes)")
    check_container(path)
    decoder = "soundfile"
    try:
        samples, rate, channels, decoded, declared, container = _read_soundfile(path, max_seconds)
    except sf.LibsndfileError as sf_exc:
        # libsndfile cannot open it; audioread may (ffmpeg / GStreamer backends), else report both reasons.
        try:
            samples, rate, channels, decoded, declared, container = _read_audioread(path, max_seconds)
            decoder = "audioread"
        except Exception as ar_exc:
            ar_reason = str(ar_exc) or type(ar_exc).__name__
            if type(ar_exc).__name__ == "NoBackendError":
                ar_reason = "no installed backend decodes it"
            raise AudioDecodeError(
                f"not a readable audio file (libsndfile: {sf_exc.error_string}; audioread: {ar_reason})"
            ) from sf_exc
    if decoded == 0:
        raise AudioDecodeError(f"no audio samples in the {container} stream")
    missing = declared - decoded
    if declared > 0 and missing > max(_MISSING_TOLERANCE_S * rate, _MISSING_TOLERANCE_SHARE * declared):
        raise AudioDecodeError(
            f"truncated {container} stream: the header declares {declared / rate:.2f} s, "
            f"only {decoded / rate:.2f} s decode"
        )
    duration_s = decoded / rate
    if duration_s < min_seconds:
        raise AudioDecodeError(
            f"too short to analyse: {duration_s:.2f} s < audio.min_seconds {min_seconds} s"
        )
    if not np.isfinite(samples).all():
        raise AudioDecodeError("the decoded signal holds NaN or infinite samples")
    if rate != sample_rate:
        import librosa

        samples = librosa.resample(samples, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")
    return DecodedAudio(
        samples=np.ascontiguousarray(samples, dtype=np.float32),
        sample_rate=sample_rate,
        duration_s=duration_s,
        native_sample_rate=rate,
        channels=channels,
        decoder=decoder,
        container=container,
    )

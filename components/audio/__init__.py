"""Audio features for tracks that exist only as audio files (the dataset's features came from an API that is
closed to new users). See docs/audio_features.md for how each column is estimated.

    from components.audio import extract_files
    batch = extract_files(paths, params.audio, n_workers=2, progress=True)
    batch.tracks, batch.descriptors, batch.errors
"""

from components.audio.batch import (
    TRACK_COLUMNS,
    AudioBatch,
    FileError,
    content_track_id,
    extract_files,
    find_audio_files,
    is_audio_track_id,
)
from components.audio.decode import AudioDecodeError, DecodedAudio, decode_file
from components.audio.features import COLUMN_SOURCES, MISSING_COLUMNS, PITCH_CLASSES, analyse

__all__ = [
    "COLUMN_SOURCES",
    "MISSING_COLUMNS",
    "PITCH_CLASSES",
    "TRACK_COLUMNS",
    "AudioBatch",
    "AudioDecodeError",
    "DecodedAudio",
    "FileError",
    "analyse",
    "content_track_id",
    "decode_file",
    "extract_files",
    "find_audio_files",
    "is_audio_track_id",
]

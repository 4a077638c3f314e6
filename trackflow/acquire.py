"""Getting the raw dataset into the project: from a local copy (TRACKS_CSV) or by download."""

from __future__ import annotations

import gzip
import shutil
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from components.io import atomic_path, file_sha256

TRACKS_CSV_ENV = "TRACKS_CSV"


class DataAcquisitionError(RuntimeError):
    """The raw dataset could not be obtained; the message says what to do."""


@dataclass(frozen=True)
class AcquiredFile:
    path: Path
    source: str
    sha256: str
    size_bytes: int
    matches_expected: bool | None


def _copy_local(source: Path, destination: Path) -> None:
    if not source.is_file():
        raise DataAcquisitionError(f"{TRACKS_CSV_ENV}={source}: no such file")
    if source.suffixes[-2:] not in ([".csv", ".gz"], [".csv"]) and source.suffix not in (".gz", ".csv"):
        raise DataAcquisitionError(f"{TRACKS_CSV_ENV}={source}: expected a .csv or .csv.gz file")
    with atomic_path(destination, ".csv") as tmp:
        if source.suffix == ".gz":
            try:
                with gzip.open(source, "rb") as src, tmp.open("wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
            except (OSError, EOFError, zlib.error) as exc:
                raise DataAcquisitionError(
                    f"{TRACKS_CSV_ENV}={source}: the gzip file is corrupt or truncated ({exc})"
                ) from exc
        else:
            shutil.copyfile(source, tmp)


def _download(url: str, destination: Path, timeout_s: float) -> None:
    try:
        with (
            urllib.request.urlopen(url, timeout=timeout_s) as response,
            atomic_path(destination, ".csv") as tmp,
            tmp.open("wb") as dst,
        ):
            shutil.copyfileobj(response, dst, length=1 << 20)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DataAcquisitionError(
            f"could not download the dataset from {url} ({exc}). Offline? Point {TRACKS_CSV_ENV} at a local "
            f"copy of dataset.csv (.csv or .csv.gz), e.g. "
            f"`export {TRACKS_CSV_ENV}=../shared/data/spotify_tracks.csv.gz`, then run `make data` again."
        ) from exc


def acquire_dataset(
    destination: Path,
    *,
    local_source: Path | None,
    url: str,
    timeout_s: float = 120,
    expected_sha256: str | None = None,
) -> AcquiredFile:
    """Materialise the raw CSV (uncompressed) at `destination` from `local_source` or `url`."""
    if local_source is not None:
        _copy_local(local_source, destination)
        source = str(local_source)
    else:
        _download(url, destination, timeout_s)
        source = url
    digest = file_sha256(destination)
    return AcquiredFile(
        path=destination,
        source=source,
        sha256=digest,
        size_bytes=destination.stat().st_size,
        matches_expected=None if expected_sha256 is None else digest == expected_sha256,
    )

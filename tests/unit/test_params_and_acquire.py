from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import yaml

from components.io import file_sha256
from trackflow.acquire import DataAcquisitionError, acquire_dataset
from trackflow.config import ParamsError, load_params

REPO = Path(__file__).resolve().parents[2]


def test_repository_params_load() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.split.protocol == "artist"
    assert set(params.train.tasks) == {"popularity", "genre", "hit"}
    assert params.train.tuning == params.train.profiles["default"]
    assert set(params.registry.promotion_margin) == {"popularity", "genre", "hit"}
    assert params.validation.row_failure_tolerance > 0


def test_unknown_key_is_rejected_and_named(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["ablation"]["lightgbm"]["num_leafs"] = 31  # a typo must not be silently ignored
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=r"ablation\.lightgbm\.num_leafs"):
        load_params(tmp_path / "params.yaml")


def test_unknown_profile_is_named(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["train"]["profile"] = "huge"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match="huge"):
        load_params(tmp_path / "params.yaml")


def test_missing_params_file_says_where(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_local_gz_and_csv_copies_are_identical(tmp_path: Path) -> None:
    text = b",track_id\n0,abc\n"
    plain = tmp_path / "in.csv"
    plain.write_bytes(text)
    packed = tmp_path / "in.csv.gz"
    packed.write_bytes(gzip.compress(text))
    a = acquire_dataset(tmp_path / "a" / "dataset.csv", local_source=plain, url="unused")
    b = acquire_dataset(tmp_path / "b" / "dataset.csv", local_source=packed, url="unused")
    assert a.sha256 == b.sha256 == file_sha256(plain)
    assert (tmp_path / "b" / "dataset.csv").read_bytes() == text


def test_offline_without_tracks_csv_says_what_to_set(tmp_path: Path) -> None:
    # Port 9 on loopback refuses the connection: the same path as having no network.
    with pytest.raises(DataAcquisitionError, match="TRACKS_CSV") as info:
        acquire_dataset(
            tmp_path / "dataset.csv", local_source=None, url="http://127.0.0.1:9/dataset.csv", timeout_s=5
        )
    assert "export TRACKS_CSV=" in str(info.value)
    assert not (tmp_path / "dataset.csv").exists()  # nothing half-written


def test_missing_local_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataAcquisitionError, match="no such file"):
        acquire_dataset(tmp_path / "dataset.csv", local_source=tmp_path / "nope.csv.gz", url="unused")

"""The audio stages: extraction into data/audio/<batch>/ with bad files reported, and `trackflow score-audio`
on the shared clips with the trained project's champions."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from components.audio import (
    MISSING_COLUMNS,
)
from tests.builders import SR, metered_clicks, write
from tests.conftest import REPO, copy_project, make_project
from trackflow.cli import app
from trackflow.paths import ProjectPaths
from trackflow.stages import audio as audio_stage
from trackflow.stages.common import params_for

TRUMPET = "sorohanro_-_solo-trumpet-06"


BRAHMS = "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra)"


VIBE_ACE = "Kevin_MacLeod_-_Vibe_Ace"


# Lengths from ../shared/data/audio/SOURCE.md.
DURATIONS_S = {TRUMPET: 5.3, BRAHMS: 45.8, VIBE_ACE: 61.5}


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
    params = params_for(paths)
    summary = audio_stage.extract_audio(paths, params, folder, workers=1)
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

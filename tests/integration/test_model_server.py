"""The model server as people use it: uvicorn on a free 127.0.0.1 port, a real HTTP client, the champions of a
real (small) training run and discovery. Its answers are batch scoring's and the CLI's; an alias moved the
way the MLflow UI moves it is picked up without a restart and recorded on the version."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
from mlflow import MlflowClient

from components.schema import COLUMNS, GENRE
from components.split import split_frames
from tests.conftest import copy_project
from trackflow.paths import ProjectPaths
from trackflow.server import create_app
from trackflow.stages import scoring as scoring_stage
from trackflow.stages.common import params_for
from trackflow.stages.discovery.queries import find_similar, make_playlist
from trackflow.stages.register import register_task
from trackflow.tracking import promote_by_hand


@pytest.fixture(scope="module")
def project(discovered_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's copy: it registers versions, moves aliases and writes the prediction log."""
    return copy_project(discovered_project, tmp_path_factory.mktemp("server"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[tuple[httpx.Client, object]]:
    paths = ProjectPaths.at(project)
    app = create_app(paths, params_for(paths), poll=False)  # the test moves aliases and calls refresh
    port = _free_port()
    running = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running.started, "the server did not start"
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        yield client, app
    running.should_exit = True
    thread.join(timeout=30)


def _holdout_rows(project: Path, n: int) -> pd.DataFrame:
    paths = ProjectPaths.at(project)
    tracks = pd.read_parquet(paths.features)
    _, holdout = split_frames(tracks, pd.read_parquet(paths.splits), "artist")
    rows = holdout.head(n)[list(COLUMNS)].drop(columns=["popularity"]).reset_index(drop=True)
    return rows.assign(**{GENRE: rows[GENRE].str.split("|").str[0]})


def _records(rows: pd.DataFrame) -> list[dict]:
    return json.loads(rows.to_json(orient="records"))


def test_health_names_the_version_behind_every_alias(server: tuple) -> None:
    client, _ = server
    health = client.get("/health").json()
    assert set(health["models"]) == {"popularity", "genre", "hit", "similar-tracks"}
    assert all(m["alias"] == "champion" and m["version"] == "1" for m in health["models"].values())


def test_predict_answers_as_batch_scoring_does_and_logs_every_answer(server: tuple, project: Path) -> None:
    client, _ = server
    rows = _holdout_rows(project, 6)
    rows.loc[1, GENRE] = None  # the genre-free fallback answers
    rows.loc[2, GENRE] = "R&B"  # another spelling, normalised
    rows["catalog_id"] = [f"c{i}" for i in range(len(rows))]  # the caller's own column, passed back
    answer = client.post("/predict", json={"rows": _records(rows), "top_k": 4})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    predictions = pd.DataFrame(body["predictions"])
    assert body["model_versions"] == {"popularity": "1", "genre": "1", "hit": "1"}
    assert predictions["genre_input"].tolist() == ["given", "predicted", "given", "given", "given", "given"]
    assert predictions["catalog_id"].tolist() == rows["catalog_id"].tolist()
    for top in predictions["genre_top"]:
        probabilities = [g["probability"] for g in top]
        assert len(top) == 4 and probabilities == sorted(probabilities, reverse=True)
    assert [t[0]["genre"] for t in predictions["genre_top"]] == predictions["predicted_genre"].tolist()

    paths = ProjectPaths.at(project)
    scored = scoring_stage.score_frame(paths, params_for(paths), rows.drop(columns=["catalog_id"]), "served")
    batch = pd.read_parquet(scored["predictions_path"])
    for column in ("predicted_popularity", "hit_probability"):
        np.testing.assert_allclose(predictions[column], batch[column], rtol=1e-9)
    assert predictions["predicted_genre"].tolist() == batch["predicted_genre"].tolist()

    logged = [
        json.loads(line) for f in sorted((project / "data" / "served").glob("*.jsonl")) for line in f.open()
    ]
    mine = [r for r in logged if r["request_id"] == body["request_id"]]
    assert [r["inputs"]["catalog_id"] for r in mine] == rows["catalog_id"].tolist()
    assert all(len(r["inputs_sha256"]) == 64 and r["model_versions"] == body["model_versions"] for r in mine)
    assert mine[1]["outputs"]["genre_input"] == "predicted"


def test_reasons_are_opt_in_and_match_batch_scorings(server: tuple, project: Path) -> None:
    client, _ = server
    rows = _holdout_rows(project, 3)
    rows.loc[1, GENRE] = None
    plain = client.post("/predict", json={"rows": _records(rows)}).json()["predictions"]
    assert not any(key.endswith("_reasons") for key in plain[0])
    explained = client.post("/predict", json={"rows": _records(rows), "reasons": 3}).json()["predictions"]
    known = set(COLUMNS) | {"names (track, album, artists)"}
    for task in ("popularity", "hit", "genre"):
        for row in explained:
            reasons = row[f"{task}_reasons"]
            assert len(reasons) == 3 and {r["estimate"] for r in reasons} <= {
                "shap",
                "permutation",
                "shap+permutation",
            }
            assert all(set(r["column"].split("+")) <= known or r["column"] in known for r in reasons)
    # The answers themselves do not change, and batch scoring gives the same reasons when asked to.
    assert [r["predicted_popularity"] for r in explained] == [r["predicted_popularity"] for r in plain]
    paths = ProjectPaths.at(project)
    params = params_for(paths)
    params = params.model_copy(update={"score": params.score.model_copy(update={"reasons": 3})})
    scored = scoring_stage.score_frame(paths, params, rows, "explained")
    batch = pd.read_parquet(scored["predictions_path"])
    for task in ("popularity", "hit"):
        served = [[r["column"] for r in row[f"{task}_reasons"]] for row in explained]
        assert [[r["column"] for r in json.loads(v)] for v in batch[f"{task}_reasons"]] == served


def test_invocations_speaks_mlflows_scoring_protocol(server: tuple, project: Path) -> None:
    client, _ = server
    rows = _holdout_rows(project, 3)
    records = client.post("/invocations", json={"dataframe_records": _records(rows)})
    split = client.post(
        "/invocations",
        json={"dataframe_split": json.loads(rows.to_json(orient="split", index=False))},
    )
    assert records.status_code == split.status_code == 200
    by_records, by_split = (pd.DataFrame(r.json()["predictions"]) for r in (records, split))
    pd.testing.assert_frame_equal(by_records, by_split, rtol=1e-12)  # threaded ensembles sum in any order
    assert set(records.json()["predictions"][0]) == {
        "predicted_popularity",
        "predicted_genre",
        "hit_probability",
    }
    single = client.post("/invocations?model=popularity", json={"dataframe_records": _records(rows)}).json()
    expected = [r["predicted_popularity"] for r in records.json()["predictions"]]
    assert single["predictions"] == pytest.approx(expected, rel=1e-12)  # threaded ensembles: the last ulp
    refused = client.post("/invocations", json={"instances": [[1.0, 2.0]]})
    assert refused.status_code == 400 and refused.json()["error_code"] == "BAD_REQUEST"


def test_a_bad_request_is_refused_naming_the_field(server: tuple, project: Path) -> None:
    client, _ = server
    row = _records(_holdout_rows(project, 1))[0]
    missing = client.post("/predict", json={"rows": [{k: v for k, v in row.items() if k != "energy"}]})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "rows", 0, "energy"]
    wrong = client.post("/predict", json={"rows": [{**row, "tempo": "fast"}]})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"][-1] == "tempo"
    unknown = client.post("/predict", json={"rows": [{**row, GENRE: "polka step"}]})
    assert unknown.status_code == 422 and "'polka step' is not a known genre" in unknown.text
    colliding = client.post("/predict", json={"rows": [{**row, "hit_probability": 1}]})
    assert colliding.status_code == 422 and "hit_probability" in colliding.text
    huge = client.post("/predict", json={"rows": [row] * 20000})
    assert huge.status_code == 413 and "serve.max_body_bytes" in huge.text


def test_similar_and_playlist_answer_as_the_cli_does(server: tuple, project: Path) -> None:
    client, _ = server
    paths = ProjectPaths.at(project)
    params = params_for(paths)
    track = _holdout_rows(project, 1)["track_id"][0]
    served = client.post("/similar", json={"track_id": track, "k": 5}).json()
    cli = find_similar(paths, params, track, 5)
    assert served["neighbours"] == json.loads(json.dumps(cli["neighbours"]))
    assert served["model_version"] == "1"
    assert client.post("/similar", json={"track_id": "nope"}).status_code == 422
    targets = ["energy=high", "tempo=120:130"]
    playlist = client.post("/playlist", json={"targets": targets, "n": 6}).json()
    assert playlist["tracks"] == json.loads(
        json.dumps(make_playlist(paths, params, [], targets, 6)["tracks"])
    )


def test_an_alias_moved_in_the_ui_is_picked_up_and_recorded(server: tuple, project: Path) -> None:
    client, app = server
    paths = ProjectPaths.at(project)
    second = register_task(paths, params_for(paths), "popularity")  # v2: a challenger (a tie keeps v1)
    assert second["version"] == "2" and "champion" not in second["aliases"]
    registry = MlflowClient(f"sqlite:///{project / 'mlflow' / 'mlflow.db'}")
    registry.set_registered_model_alias("popularity", "champion", "2")  # what the UI's "Save aliases" does
    assert app.state.models.refresh() == ["popularity: champion v1 -> v2"]
    assert client.get("/health").json()["models"]["popularity"]["version"] == "2"
    assert (
        client.post("/predict", json={"rows": _records(_holdout_rows(project, 1))}).json()["model_versions"][
            "popularity"
        ]
        == "2"
    )
    tags = registry.get_model_version("popularity", "2").tags
    assert tags["promoted_via"] == "ui" and tags["previous_champion"] == "1" and tags["promoted_at"]

    promote_by_hand(registry, "popularity", "1", "tester", "back to v1")  # trackflow's own move
    assert app.state.models.refresh() == ["popularity: champion v2 -> v1"]
    assert registry.get_model_version("popularity", "1").tags["promoted_via"] == "cli"

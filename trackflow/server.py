"""The model server (`trackflow serve-models`): the champions over HTTP, answering as batch scoring does.

- `POST /predict`: rows in the dataset's columns (genre optional, columns of the caller's own passed back)
  -> predicted popularity, hit probability, the genre top-k with probabilities, the model versions.
- `POST /invocations`: MLflow's scoring protocol, as `mlflow models serve` has it (`dataframe_split`,
  `dataframe_records` in; `{"predictions": [...]}` out, one record per row; `?model=<task>` answers with that
  model's predictions alone, as a served single model would).
- `POST /similar`, `POST /playlist`: the `similar-tracks@champion` index's answers, as the CLI gives them.
- `GET /health`: the version behind every alias the server answers with.

The champions are loaded once; a thread asks the registry every `serve.poll_interval_s` where the aliases
point and swaps in a moved one without a restart. A move made outside trackflow (the MLflow UI) is recorded
on the new version when the server notices it: `promoted_via=ui`, when, and the previous version. Every
answer is appended to a prediction log (`serve.log_dir`, one JSON line per row: request id, the inputs and
their hash, the outputs, the versions, the time), so that served predictions can be labelled like scored
batches. A bad request gets a 422 naming the field; bodies above `serve.max_body_bytes` get a 413.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from components.discovery.space import DiscoveryInputError
from components.genres import GenreVocabulary, normalise_genre
from components.params import Params
from components.schema import GENRE
from components.scoring import OUTPUT_COLUMNS, Champion
from components.serving import (
    PlaylistRequest,
    PredictRequest,
    ProtocolError,
    SimilarRequest,
    TrackRow,
    answer_records,
    frame_from_invocation,
    inputs_hash,
    json_safe,
    records,
)
from components.tasks import TASK_SPECS, TASKS
from trackflow.config import load_suite
from trackflow.paths import ProjectPaths
from trackflow.stages.discovery.queries import find_similar, make_playlist
from trackflow.tracking import CHAMPION, PROMOTED_AT, PROMOTED_VIA, Tracker

log = logging.getLogger("trackflow.server")
SIMILAR = "similar-tracks"


class ServedModels:
    """The champions the server answers with: loaded once, swapped whole when an alias moves."""

    def __init__(self, tracker: Tracker, names: tuple[str, ...] = (*TASKS, SIMILAR)):
        self.tracker = tracker
        self.names = names
        self._lock = threading.Lock()
        self._served: dict[str, Champion] = {}
        self._seen_at: dict[str, pd.Timestamp] = {}  # when the server last saw each name's champion
        self.refresh()

    def snapshot(self) -> dict[str, Champion]:
        with self._lock:
            return dict(self._served)

    def refresh(self) -> list[str]:
        """Ask the registry where `champion` points; load what moved. Returns what changed, in words."""
        changes = []
        for name in self.names:
            version = self.tracker.champion(name)
            current = self._served.get(name)
            if version is None or (current is not None and current.version == str(version.version)):
                if version is not None:
                    self._seen_at[name] = pd.Timestamp.now("UTC")
                continue
            loaded = Champion(
                name,
                str(version.version),
                str(version.run_id),
                mlflow.pyfunc.load_model(f"models:/{name}/{version.version}"),
            )
            if current is not None:
                self._record_outside_move(name, version, current.version)
                changes.append(f"{name}: champion v{current.version} -> v{loaded.version}")
            with self._lock:
                self._served[name] = loaded
            self._seen_at[name] = pd.Timestamp.now("UTC")
        return changes

    def _record_outside_move(self, name: str, version: Any, previous: str) -> None:
        """A move trackflow made carries a `promoted_at` newer than the old champion's last sighting; any
        other was made outside it (the MLflow UI) and is recorded now, on the new version."""
        stamped = (version.tags or {}).get(PROMOTED_AT)
        seen = self._seen_at.get(name)
        if stamped and seen is not None and pd.Timestamp(stamped) >= seen:
            return
        client = self.tracker.client
        now = pd.Timestamp.now("UTC").isoformat()
        for key, value in {PROMOTED_VIA: "ui", PROMOTED_AT: now, "previous_champion": previous}.items():
            client.set_model_version_tag(name, str(version.version), key, value)
        log.warning(
            "%s: champion moved outside trackflow, v%s -> v%s; recorded", name, previous, version.version
        )


class PredictionLog:
    """One JSON line per answered row, in a file per day; appends are serialised across threads."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._lock = threading.Lock()

    def append(self, records: list[dict[str, Any]]) -> Path:
        now = pd.Timestamp.now("UTC")
        target = self.folder / f"predictions-{now:%Y-%m-%d}.jsonl"
        lines = "".join(json.dumps(json_safe(r), sort_keys=True) + "\n" for r in records)
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            with target.open("a", encoding="utf-8") as handle:
                handle.write(lines)
        return target


def _unprocessable(field: str, message: str) -> HTTPException:
    return HTTPException(
        422, detail=[{"loc": ["body", *field.split(".")], "msg": message, "type": "value_error"}]
    )


def _request_rows(rows: list[dict[str, Any]], vocabulary: GenreVocabulary) -> list[dict[str, Any]]:
    """Request rows with their genres in the dataset's spellings (components.genres, as batch scoring reads
    them); 422 for a genre that matches none. Row by row: a request holds few rows, and a pandas pass costs
    more than the models' answer to one row. The caller's rows stay as they came."""
    rows = [dict(row) for row in rows]
    for position, row in enumerate(rows):
        genre, note = normalise_genre(row.get(GENRE), vocabulary)
        if genre is None and note is not None:
            raise _unprocessable(f"rows.{position}.{GENRE}", note)
        row[GENRE] = genre
    return rows


def create_app(paths: ProjectPaths, params: Params, poll: bool = True) -> FastAPI:
    """The server's app; `poll=False` leaves the alias polling to the caller (tests call `refresh`)."""
    tracker = Tracker.for_project(paths, params)
    models = ServedModels(tracker)
    if not set(models.snapshot()) & set(TASKS):
        raise RuntimeError("no champion is registered: run training (`make run`) or promote a model first")
    vocabulary = GenreVocabulary.of(
        load_suite(paths.expectation_suite, for_scoring=True).input_value_sets[GENRE]
    )
    prediction_log = PredictionLog(paths.root / params.serve.log_dir)
    settings = params.serve
    stop = threading.Event()

    def poll_registry() -> None:
        while not stop.wait(settings.poll_interval_s):
            try:
                for change in models.refresh():
                    log.info("%s", change)
            except Exception as exc:  # the registry unreachable for a while: keep serving what is loaded
                log.error("polling the registry failed: %s", exc)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Iterator[None]:
        poller = threading.Thread(target=poll_registry, name="registry-poll", daemon=True) if poll else None
        if poller is not None:
            poller.start()
        yield
        stop.set()

    app = FastAPI(title="trackflow models", lifespan=lifespan)
    app.state.models = models
    app.state.prediction_log = prediction_log

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and int(declared) > settings.max_body_bytes:
            return JSONResponse(
                {"detail": f"{declared} bytes, over serve.max_body_bytes={settings.max_body_bytes}"},
                status_code=413,
            )
        body = await request.body()
        if len(body) > settings.max_body_bytes:
            return JSONResponse(
                {"detail": f"body is over serve.max_body_bytes={settings.max_body_bytes}"}, status_code=413
            )
        return await call_next(request)

    def answer(
        rows: list[dict[str, Any]], top_k: int, endpoint: str, reasons: int = 0
    ) -> tuple[list[dict[str, Any]], dict[str, str], str]:
        if len(rows) > settings.max_rows:
            raise _unprocessable("rows", f"{len(rows)} rows, over serve.max_rows={settings.max_rows}")
        columns = list(dict.fromkeys(column for row in rows for column in row))
        if collisions := [c for c in columns if c in OUTPUT_COLUMNS]:
            raise _unprocessable(collisions[0], "has the name of an output column; rename it")
        served = models.snapshot()
        champions = {task: champion for task, champion in served.items() if task in TASKS}
        known = set(TrackRow.model_fields)
        passthrough = [c for c in columns if c not in known]
        answers = json_safe(answer_records(rows, champions, top_k, passthrough, reasons))
        request_id = str(uuid.uuid4())
        versions = {t: c.version for t, c in champions.items()}
        answered_at = pd.Timestamp.now("UTC").isoformat()
        log_lines = [
            {
                "request_id": request_id,
                "endpoint": endpoint,
                "time": answered_at,
                "inputs_sha256": inputs_hash(row),
                "inputs": row,
                "outputs": {
                    k: v for k, v in out.items() if k not in passthrough and not k.endswith("_run_id")
                },
                "model_versions": versions,
            }
            for row, out in zip(rows, answers, strict=True)
        ]
        prediction_log.append(log_lines)
        return answers, versions, request_id

    @app.post("/predict")
    def predict(request: PredictRequest) -> JSONResponse:
        rows = _request_rows([row.model_dump() for row in request.rows], vocabulary)
        answers, versions, request_id = answer(
            rows, request.top_k or settings.top_k, "predict", request.reasons or 0
        )
        shown = [
            {k: v for k, v in row.items() if not k.endswith(("_model_version", "_run_id"))} for row in answers
        ]
        # Plain JSON values already: FastAPI's encoder pass would only walk them again.
        return JSONResponse({"request_id": request_id, "model_versions": versions, "predictions": shown})

    @app.post("/invocations")
    async def invocations(request: Request, model: str | None = None) -> JSONResponse:
        try:
            frame = frame_from_invocation(json.loads(await request.body()))
        except (ProtocolError, json.JSONDecodeError) as exc:
            return JSONResponse({"error_code": "BAD_REQUEST", "message": str(exc)}, status_code=400)
        missing = [c for c, f in TrackRow.model_fields.items() if f.is_required() and c not in frame.columns]
        if missing:
            return JSONResponse(
                {"error_code": "BAD_REQUEST", "message": f"missing input column(s) {missing}"},
                status_code=400,
            )
        if model is not None and model not in TASKS:
            return JSONResponse({"error_code": "BAD_REQUEST", "message": f"unknown model {model!r}"}, 400)
        rows = _request_rows(records(frame), vocabulary)
        answers, _, _ = answer(rows, settings.top_k, "invocations")
        if model is not None:
            column = TASK_SPECS[model].prediction_column
            return JSONResponse({"predictions": [row.get(column) for row in answers]})
        columns = [
            TASK_SPECS[t].prediction_column for t in TASKS if TASK_SPECS[t].prediction_column in answers[0]
        ]
        return JSONResponse({"predictions": [{c: row[c] for c in columns} for row in answers]})

    def similarity_index() -> Any:
        served = models.snapshot().get(SIMILAR)
        if served is None:
            raise HTTPException(503, detail=f"no {SIMILAR}@champion: run `make discovery` first")
        return served.model.unwrap_python_model().index

    @app.post("/similar")
    def similar(request: SimilarRequest) -> dict[str, Any]:
        try:
            result = find_similar(
                paths, params, request.track_id, request.k, request.genre_weight, index=similarity_index()
            )
        except (DiscoveryInputError, KeyError) as exc:
            raise _unprocessable("track_id", str(exc).strip("'\"")) from exc
        return json_safe({**result, "model_version": models.snapshot()[SIMILAR].version})

    @app.post("/playlist")
    def playlist(request: PlaylistRequest) -> dict[str, Any]:
        try:
            result = make_playlist(
                paths,
                params,
                request.seeds,
                request.targets,
                request.n,
                request.genre_weight,
                index=similarity_index(),
            )
        except (DiscoveryInputError, KeyError) as exc:
            raise _unprocessable("targets" if request.targets else "seeds", str(exc).strip("'\"")) from exc
        return json_safe({**result, "model_version": models.snapshot()[SIMILAR].version})

    @app.get("/health")
    def health() -> dict[str, Any]:
        served = models.snapshot()
        return {
            "status": "ok",
            "models": {
                name: {"alias": CHAMPION, "version": s.version, "run_id": s.run_id}
                for name, s in served.items()
            },
            "poll_interval_s": settings.poll_interval_s,
        }

    return app


def serve(paths: ProjectPaths, params: Params, host: str | None = None, port: int | None = None) -> None:
    """Run the server with uvicorn until interrupted (127.0.0.1 unless told otherwise)."""
    import uvicorn

    app = create_app(paths, params)
    uvicorn.run(app, host=host or params.serve.host, port=port or params.serve.port, log_level="info")

"""A real browser end to end: Debian's chromium driven by Playwright (its own browser download is not possible
here, so the system executable is used). The explorer page by page, as a person clicks through it; and a
promotion made in the MLflow UI, which the model server and batch scoring then follow."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import REPO, copy_project
from trackflow.explorer import PAGES, ROOT_ENV
from trackflow.paths import ProjectPaths
from trackflow.server import create_app
from trackflow.stages import scoring as scoring_stage
from trackflow.stages import simulate as simulate_stage
from trackflow.stages.common import params_for
from trackflow.stages.register import register_task

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# What a person sees on each page once the project is trained.
EXPECTED = {
    "Prediction": "hit probability",
    "Track map": "similar tracks of",
    "Genres": "Popularity per genre",
    "Artists": "The most similar artists",
    "Playlists": "one per line",
    "Registry": "Latest drift report",
}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine: `apt-get install -y chromium` (.ci/run does, as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # As root, chromium refuses its sandbox; the pages are our own, on 127.0.0.1.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited with {process.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def _started(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)


def test_the_explorer_in_a_real_browser(browser: object, discovered_project: Path, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, ROOT_ENV: str(discovered_project)}
    command = [sys.executable, "-m", "streamlit", "run", str(REPO / "trackflow" / "explorer.py")]
    command += [f"--server.port={port}", "--server.address=127.0.0.1", "--server.headless=true"]
    command += ["--browser.gatherUsageStats=false"]
    app = _started(command, env, tmp_path / "streamlit.log")
    try:
        _wait_for(f"http://127.0.0.1:{port}/_stcore/health", app)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
        for name in PAGES:
            page.get_by_test_id("stSidebar").get_by_text(name, exact=True).click()
            page.get_by_role("heading", name=name, exact=True).wait_for(timeout=120_000)
            page.get_by_text(EXPECTED[name], exact=False).first.wait_for(timeout=120_000)
            page.wait_for_timeout(500)  # let the page settle for the screenshot
            page.screenshot(path=str(tmp_path / f"{name.lower().replace(' ', '-')}.png"), full_page=True)
            assert page.get_by_test_id("stException").count() == 0, name
        # The registry page, last: its table of versions (drawn on a canvas, so counted, not read).
        assert page.get_by_test_id("stDataFrame").count() >= 1
        page.close()
    finally:
        app.terminate()
        app.wait(timeout=30)
    assert all((tmp_path / f"{n.lower().replace(' ', '-')}.png").stat().st_size > 10_000 for n in PAGES)


def test_a_promotion_in_the_mlflow_ui_is_what_the_server_and_scoring_use(
    browser: object, trained_project: Path, tmp_path: Path
) -> None:
    root = copy_project(trained_project, tmp_path)
    paths = ProjectPaths.at(root)
    params = params_for(paths)
    second = register_task(paths, params, "popularity")  # v2, a challenger: the gate kept v1 (a tie)
    assert second["version"] == "2" and "champion" not in second["aliases"]
    app = create_app(paths, params, poll=False)
    store = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    port = _free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    ui = _started(command, {**os.environ}, tmp_path / "mlflow.log")
    try:
        _wait_for(f"http://127.0.0.1:{port}/health", ui)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/#/models/popularity/versions/2", wait_until="load")
        page.get_by_text("Registered At").wait_for(timeout=60_000)
        page.wait_for_load_state("load")
        page.wait_for_timeout(3000)  # the page renders twice while its requests come back
        # Aliases: "Add" on a version without one, the pencil ("Edit aliases") beside `@challenger` here.
        page.locator('[title="Add aliases"], [title="Edit aliases"]').first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("combobox").fill("champion")
        page.keyboard.press("Enter")
        dialog.get_by_text("also being used on version 1").wait_for()
        dialog.get_by_role("button", name="Save aliases").click()
        page.get_by_text("@\u00a0champion").wait_for()
        page.screenshot(path=str(tmp_path / "promoted.png"))
        page.close()
    finally:
        ui.terminate()
        ui.wait(timeout=30)

    registry = MlflowClient(store)
    assert str(registry.get_model_version_by_alias("popularity", "champion").version) == "2"
    assert app.state.models.refresh() == ["popularity: champion v1 -> v2"]
    tags = registry.get_model_version("popularity", "2").tags
    assert tags["promoted_via"] == "ui" and tags["previous_champion"] == "1"
    batch = simulate_stage.simulate(paths, params, "none", rows=200)
    summary = scoring_stage.score_file(paths, params, Path(batch["path"]))
    assert set(pd.read_parquet(summary["predictions_path"])["popularity_model_version"]) == {"2"}

"""The discovery commands of `trackflow` (clusters, outliers, similar tracks, playlists:
trackflow/stages/discovery/), merged into the app of trackflow/cli.py."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from components.discovery import PARTS
from trackflow.cli_common import ROOT, guarded, run_flow, run_stage
from trackflow.parts import ThreadParts
from trackflow.paths import ProjectPaths
from trackflow.stages.common import params_for
from trackflow.stages.discovery import discover as discover_stage
from trackflow.stages.discovery import register as register_discovery_stage
from trackflow.stages.discovery.queries import find_similar, make_playlist

discovery_commands = typer.Typer()

DISCOVERY_PARTS = (*PARTS, "summary")


def _discovery_part(value: str | None) -> str | None:
    if value is not None and value not in DISCOVERY_PARTS:
        raise typer.BadParameter(f"{value!r} is not a part; choose one of {', '.join(DISCOVERY_PARTS)}")
    return value


@discovery_commands.command()
def discover(
    part: str = typer.Option(
        None, "--part", help=f"One part: {', '.join(DISCOVERY_PARTS)}.", callback=_discovery_part
    ),
    root: Path = ROOT,
) -> None:
    """Discovery stages (what dvc.yaml runs): one --part, or every part and then the summary."""

    run_stage(discover_stage.discover, root, part=part, parts=ThreadParts())


@discovery_commands.command("register-discovery")
def register_discovery(root: Path = ROOT) -> None:
    """Register clusters, outliers and similar-tracks: challenger always, champion when the gate passes."""

    run_stage(register_discovery_stage.register_discovery, root)


@discovery_commands.command("run-discovery")
def run_discovery(root: Path = ROOT) -> None:
    """The discovery flow with Prefect (prepares features and splits first when they are missing)."""
    from flows.discovery import discovery

    run_flow(lambda: discovery(root=str(root)))  # the flow prints its own summary


AS_JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")
GENRE_WEIGHT = typer.Option(
    None, "--genre-weight", min=0.0, help="Pull same-genre tracks closer (default: discovery.similar)."
)


@discovery_commands.command()
def similar(
    query: str = typer.Argument(..., help="A catalogue track_id, or an audio file (wav, flac, ogg, mp3)."),
    k: int = typer.Option(None, "-k", min=1, help="How many neighbours (default: discovery.similar.k)."),
    genre_weight: float = GENRE_WEIGHT,
    as_json: bool = AS_JSON,
    root: Path = ROOT,
) -> None:
    """The tracks nearest QUERY in the audio space, never QUERY itself or other releases of the same song."""

    paths = ProjectPaths.at(root)
    result = guarded(lambda: find_similar(paths, params_for(paths), query, k, genre_weight))
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    import pandas as pd

    described = result["query"]
    typer.echo(f"query: {described['track_name']} - {described.get('artists', described.get('path'))}")
    table = pd.DataFrame(result["neighbours"])[["rank", "track_name", "artists", "track_genre", "distance"]]
    typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}", max_colwidth=40))
    timing = result["timing_ms"]
    typer.secho(
        f"index load {timing['load']:.0f} ms, audio extraction {timing['extract']:.0f} ms, "
        f"query {timing['query']:.1f} ms",
        err=True,
        fg=typer.colors.BRIGHT_BLACK,
    )


@discovery_commands.command()
def playlist(
    seed: list[str] = typer.Option(None, "--seed", help="A seed track_id (repeat for several)."),
    target: list[str] = typer.Option(
        None, "--target", help="energy=0.8, tempo=120:130 or valence=high|low (repeat for several)."
    ),
    n: int = typer.Option(None, "-n", min=2, help="Playlist length (default: discovery.playlist.n)."),
    genre_weight: float = GENRE_WEIGHT,
    as_json: bool = AS_JSON,
    root: Path = ROOT,
) -> None:
    """A playlist from seed tracks or target preferences, ordered for smooth tempo and key transitions."""

    paths = ProjectPaths.at(root)
    result = guarded(
        lambda: make_playlist(paths, params_for(paths), list(seed or []), list(target or []), n, genre_weight)
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    import pandas as pd

    typer.echo(pd.DataFrame(result["tracks"]).to_string(index=False, max_colwidth=32))
    moves = result["transitions"]
    summary = (
        f"mean |tempo step| {moves['mean_abs_tempo_step']:.1f} BPM (random order "
        f"{moves['random_mean_abs_tempo_step']:.1f}), Camelot steps {moves['mean_key_steps']:.2f} "
        f"(random {moves['random_mean_key_steps']:.2f})"
    )
    if "adherence" in result:
        summary += f"; {result['adherence']['share_within_all']:.0%} meet every target"
    typer.echo(summary)
    if "warning" in result:
        typer.secho(result["warning"], fg=typer.colors.YELLOW, err=True)
    timing = result["timing_ms"]
    timing_line = f"index load {timing['load']:.0f} ms, playlist {timing['build']:.1f} ms"
    typer.secho(timing_line, err=True, fg=typer.colors.BRIGHT_BLACK)

"""The `trackflow` console command: process settings first, then the CLI (trackflow/cli.py), whose imports
load OpenMP."""

from __future__ import annotations

from trackflow.process import configure_process


def main() -> None:
    configure_process()
    from trackflow.cli import app  # after the settings, on purpose: importing it loads the ML libraries

    app()

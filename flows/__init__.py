"""Prefect flows: wiring only; every task runs a stage of trackflow/pipeline.py through trackflow.runner.

Importing this package is an entry point (Prefect workers import the flows by their file): it applies the
process settings before the stages' libraries load.
"""

from trackflow.process import configure_process

configure_process()

"""The benchmark suite: speed and quality of this code on this data, measured side by side, written to
BENCHMARKS.md. Separate from the tests (`make bench`, `python -m bench --help`); asserts nothing about time.

Every measured piece of work runs in a fresh child process (`python -m bench.child`) so that its peak memory
is its own; the parent only orchestrates, times and renders.
"""

"""A measured job in its own process: `python -m bench.child module:function args.json out.json`.

The function gets the JSON object in args.json as keyword arguments and returns a JSON-able dict, written to
out.json only when it succeeds; its parent reads the process's peak memory and CPU time from wait4().
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m bench.child module:function args.json out.json", file=sys.stderr)
        return 2
    target, args_path, out_path = argv
    module_name, _, function_name = target.partition(":")
    # The project's own progress at INFO; libraries' chatter (HTTP calls to the Prefect API, ...) left out, as
    # when `trackflow run` runs the flow.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("trackflow").setLevel(logging.INFO)
    function = getattr(importlib.import_module(module_name), function_name)
    args = json.loads(Path(args_path).read_text(encoding="utf-8"))
    result = function(**args)
    out = Path(out_path)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

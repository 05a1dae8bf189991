"""One worker process of ``flowscope tune --workers K``: ``python -m flowscope.tuning.worker
SPEC.json`` runs trials of the study until it has its total."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from flowscope.errors import FlowscopeError
    from flowscope.tuning.catalog_study import run_worker

    if len(argv) != 1:
        print("usage: python -m flowscope.tuning.worker SPEC.json", file=sys.stderr)
        return 2
    try:
        run_worker(json.loads(Path(argv[0]).read_text()))
    except FlowscopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

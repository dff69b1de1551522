"""Run every benchmark and print every ratio: the same as `difflab bench`, from this folder.

    python benchmarks/run_all.py --quick            # a few minutes
    python benchmarks/run_all.py                    # full settings (e2e: 30 min per side)
    python benchmarks/run_all.py --only fid,data --json --out results.json

See `difflab bench --help` and benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from difflab.cli.main import main

if __name__ == "__main__":
    here = str(Path(__file__).resolve().parent)
    raise SystemExit(main(["bench", "--benchmarks-dir", here, *sys.argv[1:]]))

"""How fast `esgar synth` writes a full-size synthetic FS2K (target: 2,104 pairs < 2 minutes).

    python bench/bench_synthetic.py [--pairs 2104] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from esgar.data.synthetic import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=2104)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate(Path(tmp) / "synth", pairs=args.pairs, seed=0, workers=args.workers)
        took = time.perf_counter() - start
    workers = args.workers or os.cpu_count()
    print(f"{args.pairs} pairs in {took:.1f} s ({args.pairs / took:.0f} pairs/s), "
          f"{workers} worker(s), {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}")


if __name__ == "__main__":
    main()

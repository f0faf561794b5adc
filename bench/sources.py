"""Source benchmarks (issue 9 §9): refresh concurrency, key presses with a hung source, start-up.

    python bench/sources.py refresh [--delay 0.2] [--repeat 5]
    python bench/sources.py keys    [--workdir DIR] [--spans 1000000] [--presses 150] [--rounds 2]
    python bench/sources.py startup [--workdir DIR] [--repeat 7]

Each part compares against a baseline measured in the same run and ends with one
`RESULT ...` line; the parts are described in bench/refresh_sources.py,
bench/keys_sources.py and bench/startup_sources.py, and in bench/README.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = ap.add_subparsers(dest="part", required=True)
    refresh = parts.add_parser("refresh", help="A: full refresh of six 200 ms sources vs the slowest alone")
    refresh.add_argument("--delay", type=float, default=0.2, help="seconds before every answer")
    refresh.add_argument("--repeat", type=int, default=5, help="measured rounds")
    args = ap.parse_args()
    if args.part == "refresh":
        from bench.refresh_sources import run

        return run(args.delay, args.repeat)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())

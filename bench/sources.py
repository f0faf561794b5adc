"""Source benchmarks (issue 9 §9): refresh concurrency, key presses with a hung source, start-up.

    python bench/sources.py refresh [--delay 0.2] [--repeat 5]
    python bench/sources.py keys    [--workdir DIR] [--spans 1000000] [--presses 100] [--rounds 6]
    python bench/sources.py startup [--workdir DIR] [--repeat 7] [--diagnose]

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
    keys = parts.add_parser("keys", help="B: key press p99 with six sources (one hung) vs none")
    startup = parts.add_parser("startup", help="C: start-up with six sources configured vs none")
    for part in (keys, startup):
        part.add_argument("--workdir", type=Path, default=Path("/work/bench-caches"))
        part.add_argument("--spans", type=int, default=1_000_000, help="spans in the cache (default 1M)")
    keys.add_argument("--presses", type=int, default=100, help="key presses per round and configuration")
    keys.add_argument("--rounds", type=int, default=6, help="rounds (each: none, five, six)")
    keys.add_argument("--hung", default="am-b", help="the source that never answers (default am-b)")
    keys.add_argument("--configs", default="none,five,six",
                      help="configurations alternated, from none, five, six, hung (default none,five,six)")
    startup.add_argument("--repeat", type=int, default=7, help="measured runs of each configuration")
    startup.add_argument("--diagnose", action="store_true",
                         help="also six sources configured with the hub never started")
    args = ap.parse_args()
    if args.part == "refresh":
        from bench.refresh_sources import run

        return run(args.delay, args.repeat)
    if args.part == "keys":
        from bench.keys_sources import run as keys_run

        return keys_run(args.workdir, args.spans, args.presses, args.rounds, args.hung,
                        tuple(args.configs.split(",")))
    from bench.startup_sources import run as startup_run

    return startup_run(args.workdir, args.spans, args.repeat, args.diagnose)


if __name__ == "__main__":
    raise SystemExit(main())

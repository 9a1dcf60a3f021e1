"""The `esgar` command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _noise_arg(text: str) -> dict[str, dict[int, float]]:
    """`earring:0=0.2,smile:1=0.1` -> {"earring": {0: 0.2}, "smile": {1: 0.1}}."""
    out: dict[str, dict[int, float]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            attr, rest = part.split(":")
            cls, rate = rest.split("=")
            out.setdefault(attr, {})[int(cls)] = float(rate)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad noise spec {part!r}: expected ATTRIBUTE:CLASS=RATE, e.g. earring:0=0.2"
            ) from None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="esgar", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="write a synthetic FS2K in the exact FS2K layout")
    synth.add_argument("out_dir", type=Path)
    synth.add_argument("--pairs", type=int, default=2104, help="photo/sketch pairs (default 2104)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--noise", type=_noise_arg, default={},
        help="label noise, ATTRIBUTE:CLASS=RATE[,...]; every flip is logged to label_noise.csv",
    )
    synth.add_argument(
        "--label-order", action="append", choices=["bisenet", "parsenet"],
        help="parsing label-map order(s) to write (default bisenet; repeat for both)",
    )
    synth.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")

    args = parser.parse_args(argv)
    if args.command == "synth":
        from esgar.data.synthetic import generate

        summary = generate(
            args.out_dir, pairs=args.pairs, seed=args.seed, noise=args.noise,
            label_orders=tuple(args.label_order or ("bisenet",)), workers=args.workers,
        )
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

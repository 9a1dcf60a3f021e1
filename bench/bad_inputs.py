#!/usr/bin/env python
"""How many bad inputs the test suite throws at each stage, by class; with `--run`, run them.

    python bench/bad_inputs.py          # count (collection only, seconds)
    python bench/bad_inputs.py --run    # and run them: every one must pass (none loses data)

Counts the tests marked `bad_input(stage=..., kind=...)`; a parametrized test counts once per
case. Prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KINDS = {
    "params": "a mistake in params.yaml (type, range, unknown key or name)",
    "data": "bad data: missing, corrupt or inconsistent files",
    "relabel": "human decisions: time zones, ties, class names, removed accounts, deleted "
               "tasks, snapshots edited by hand, malformed exports",
    "archive": "hostile archives: zip bombs, links, traversal",
    "service": "an unreachable, silent, dripping or endless service",
    "output": "outputs: foreign folders, stale, truncated or code-running checkpoints",
    "interrupt": "a run killed midway",
    "arguments": "a mistake on a command line (a flag's value, an output's file type)",
    "security": "hostile requests and text: credentials in URLs, formulas, unauthenticated, "
                "oversized, slow or malformed posts",
}


class Tally:
    """A pytest plugin that records each bad-input test's stage and kind, and its outcome."""

    def __init__(self) -> None:
        self.cases: dict[str, tuple[str, str]] = {}
        self.passed: set[str] = set()

    def pytest_collection_modifyitems(self, items) -> None:
        for item in items:
            mark = item.get_closest_marker("bad_input")
            if mark is not None:
                self.cases[item.nodeid] = (mark.kwargs["stage"], mark.kwargs["kind"])

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call" and report.passed:
            self.passed.add(report.nodeid)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="store_true", help="run the cases, not only count them")
    args = ap.parse_args()
    tally = Tally()
    mode = [] if args.run else ["--collect-only"]
    code = pytest.main([str(REPO / "tests"), "-m", "bad_input", "-q", "-p", "no:cacheprovider",
                        *mode], plugins=[tally])
    by_stage: dict[str, Counter] = defaultdict(Counter)
    for stage, kind in tally.cases.values():
        by_stage[stage][kind] += 1
    kinds = [k for k in KINDS if any(c[k] for c in by_stage.values())]
    print("\n| stage | " + " | ".join(kinds) + " | cases |")
    print("|---|" + "---|" * (len(kinds) + 1))
    for stage in ("pull", "download", "prepare", "masks", "train", "evaluate", "crossfit",
                  "select", "push", "flows", "webhook", "predict", "remote", "services",
                  "all"):
        if stage in by_stage:
            c = by_stage[stage]
            print(f"| `{stage}` | " + " | ".join(str(c[k] or "") for k in kinds)
                  + f" | {sum(c.values())} |")
    print(f"\n{len(tally.cases)} bad-input cases" + (
        f", {len(tally.passed)} passed" if args.run else " (collected; --run runs them)"))
    for k in kinds:
        print(f"- {k}: {KINDS[k]}")
    return int(code) if args.run else 0


if __name__ == "__main__":
    sys.exit(main())

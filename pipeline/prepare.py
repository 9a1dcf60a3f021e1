"""DVC stage `prepare`: FS2K-layout folder -> validated sample table with splits.

Outputs: the table (parquet), the full problem report (JSON), class counts per split as DVC
metrics, and a class-distribution plot.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from esgar.active.relabels import RelabelError, read_snapshot
from esgar.data.fs2k import FS2KError, read_fs2k
from esgar.data.plots import plot_class_distribution
from esgar.data.table import build_sample_table, class_counts
from esgar.io import write_json, write_with
from pipeline.common import dataset_kind, load_params, run_stage, stage_args


def main() -> None:
    args = stage_args(__doc__)
    p = load_params("prepare", args.params)
    root = Path(p["root"])
    source = dataset_kind(root.parent)
    print(f"prepare: dataset {source['dataset'].upper()} from {root}", file=sys.stderr)

    fs2k, report = read_fs2k(root)
    n_records = len(fs2k) + len(report.errors)
    dropped = len(report.errors) / max(n_records, 1)
    if report.problems:
        print(f"prepare: problems in {root}:\n{report.format()}", file=sys.stderr)
    if dropped > p["max_dropped_fraction"]:
        raise FS2KError(
            f"{root}: {len(report.errors)} of {n_records} records ({dropped:.1%}) are unusable, "
            f"more than prepare.max_dropped_fraction={p['max_dropped_fraction']}; fix the data "
            "or raise the limit")

    table, relabel_warnings = build_sample_table(
        fs2k, p["val_fraction"], p["seed"], read_snapshot(p["relabels"]))
    for w in relabel_warnings:
        print(f"prepare: warning: {w}", file=sys.stderr)

    out = Path(p["out"])
    counts = class_counts(table)
    write_with(out / "samples.parquet", lambda tmp: table.to_parquet(tmp, index=False))
    write_json(out / "report.json", {**report.to_dict(), "relabel_warnings": relabel_warnings})
    write_json(p["metrics"], {
        "dataset": source["dataset"],
        "samples": table["split"].value_counts().reindex(["train", "val", "test"]).to_dict(),
        "relabeled": int(sum((table[f"{a}_source"] == "relabel").sum() for a in counts["train"])),
        "problems": report.summary(),
        "class_counts": counts,
    })
    plot_class_distribution(counts, p["plot"],
                            title=f"class counts per split ({source['dataset']} FS2K)")
    n = table["split"].value_counts()
    print(f"prepare: {len(table)} samples (train {n.get('train', 0)}, val {n.get('val', 0)}, "
          f"test {n.get('test', 0)}), {len(report.errors)} dropped, "
          f"{len(report.warnings)} warning(s) -> {out}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, FS2KError, RelabelError, pd.errors.EmptyDataError)

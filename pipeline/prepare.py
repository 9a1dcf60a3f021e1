"""DVC stage `prepare`: the dataset's folder (`prepare.root`, read by `data.dataset`'s reader:
FS2K's layout, CelebA's, CelebAMask-HQ's or LFWA+'s) -> validated sample table with splits.

Outputs: the table (parquet), the full problem report (JSON), the sample counts per split as DVC
metrics (`prepare.metrics`), those with the class counts per split and the problems' summary in
`prepare.report`, and a class-distribution plot.
"""

from __future__ import annotations

import logging

from esgar import schema
from esgar.active.relabels import read_snapshot
from esgar.data.celeba import DatasetError
from esgar.data.datasets import DATASETS
from esgar.data.readers import read_dataset
from esgar.data.table import build_sample_table, counts_by_split
from esgar.io import write_json, write_with
from esgar.log import summarize
from esgar.schema import SPLITS
from esgar.visualize import plot_class_distribution
from pipeline.common import dataset_kind, must_exist, run_stage, stage_args
from pipeline.params.base import load
from pipeline.params.data import DatasetParam
from pipeline.params.prepare import PrepareParams

log = logging.getLogger("pipeline.prepare")


def main() -> None:
    args = stage_args(__doc__)
    params = load(args.params, prepare=PrepareParams, data=DatasetParam)
    p, dataset = params["prepare"], params["data"].dataset
    source = dataset_kind(p.root.parent)
    log.info("dataset %s (%s) from %s", dataset, source["dataset"].upper(), p.root)
    snapshot = read_snapshot(must_exist(p.relabels, "prepare.relabels"))

    samples, report = read_dataset(dataset, p.root)
    n_records = len(samples) + len(report.errors)
    dropped = len(report.errors) / max(n_records, 1)
    if report.problems:
        log.warning("problems in %s:\n%s", p.root, report.format())
    if dropped > p.max_dropped_fraction:
        raise DatasetError(
            f"{p.root}: {len(report.errors)} of {n_records} records ({dropped:.1%}) are "
            f"unusable, more than prepare.max_dropped_fraction={p.max_dropped_fraction}; fix "
            "the data or raise the limit")

    table, relabel_warnings = build_sample_table(samples, p.val_fraction, p.seed, snapshot)
    for w in summarize(relabel_warnings):  # every one in the report
        log.warning("%s", w)

    counts = counts_by_split(table)
    write_with(p.out / "samples.parquet", lambda tmp: table.to_parquet(tmp, index=False))
    write_json(p.out / "report.json", {**report.to_dict(), "relabel_warnings": relabel_warnings})
    n = table["split"].value_counts().reindex(list(SPLITS), fill_value=0)
    headline = {
        "dataset": source["dataset"],
        "samples": {s: int(c) for s, c in n.items()},
        "relabeled": int(sum((table[f"{a}_source"] == "relabel").sum()
                             for a in schema.ATTRIBUTE_NAMES)),
    }
    write_json(p.report, {**headline, "problems": report.summary(), "class_counts": counts})
    write_json(p.metrics, headline)
    kind = "" if source["dataset"] == dataset else f"{source['dataset']} "  # synthetic
    plot_class_distribution(counts, p.plot,
                            title=f"class counts per split ({kind}{DATASETS[dataset].folder})")
    log.info("%d samples (train %d, val %d, test %d), %d dropped, %d warning(s) -> %s",
             len(table), n["train"], n["val"], n["test"], len(report.errors),
             len(report.warnings), p.out)


if __name__ == "__main__":
    run_stage(main)

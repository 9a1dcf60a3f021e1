"""DVC stage `select`: which sketches annotators should check, within a budget.

From the out-of-sample probabilities of `crossfit`, per sample and attribute a label-issue score
(prior-corrected confident learning) and an uncertainty (`select.uncertainty`). `quota_share` of
the budget goes in turns over (attribute, class) strata so minority classes get their share of
the suspect labels, the rest to the most suspect, then to the least certain (see
`esgar.active.selection`). With `select.val_share` > 0 that share of the tasks goes to
validation sketches, ranked the same way, and the rest to the other splits. A sample x
attribute humans settled (decided, or could not tell, in the relabel snapshot) is never asked
again; a tie or a low-confidence decision may be.
Outputs: the manifest (`select.out/manifest.parquet`: one row per sketch x attribute in
question, with the task's rank, the reason, both scores, the model's guess and the current
label, as class names), the counts as DVC metrics (`select.metrics`), and those with the
questions per attribute and per class in `select.report`.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pandas as pd

from esgar import schema
from esgar.active.relabels import SETTLED, read_snapshot
from esgar.active.selection import select
from esgar.errors import ConfigError
from esgar.io import building_dir, read_parquet, write_json
from pipeline.common import must_exist, run_stage, stage_args
from pipeline.params.base import load
from pipeline.params.select import SelectParams

log = logging.getLogger("pipeline.select")
OWNER = "select"


def budget_count(budget: float, n: int) -> int:
    """`budget` as a number of tasks: a share of `n` when below 1, else a count."""
    if budget < 1:
        return int(round(budget * n))
    if not float(budget).is_integer():
        raise ConfigError(f"select.budget {budget}: a share is below 1, a count is whole")
    return int(budget)


def decided_pairs(snapshot: pd.DataFrame, sample_ids: pd.Series) -> dict[str, np.ndarray]:
    """{attribute: bool [N]}: the sample x attribute pairs humans settled (decided, or could not
    tell); ties and low-confidence decisions may be asked again."""
    settled = snapshot[snapshot["status"].isin(SETTLED)]
    done = set(zip(settled["sample_id"], settled["attribute"], strict=True))
    return {a: np.array([(s, a) in done for s in sample_ids]) for a in schema.ATTRIBUTE_NAMES}


def split_budget(splits: list[str], val_share: float) -> list[tuple[list[str], float | None]]:
    """Where the budget goes, as (splits, share of the tasks; None: what is left): with
    `val_share` > 0, that share to validation sketches first (the labels the promotion policy
    judges models on), the rest to the other splits; else all splits together, one ranking."""
    if val_share <= 0:
        return [(list(splits), None)]
    if "val" not in splits or len(splits) < 2:
        raise ConfigError(f"select.val_share {val_share}: a share of the budget for validation "
                          f"needs select.splits to hold val and another split, not {splits}")
    return [(["val"], val_share), ([s for s in splits if s != "val"], None)]


def manifest(rows: pd.DataFrame, tasks: list) -> pd.DataFrame:
    """One row per sample x attribute in question, class names spelled out."""
    out = []
    for rank, task in enumerate(tasks):
        for c in task:
            classes = schema.attribute(c.attribute).classes
            out.append({"task": rank, "sample_id": rows["sample_id"].iloc[c.sample],
                        "split": rows["split"].iloc[c.sample], "attribute": c.attribute,
                        "reason": c.reason, "score": c.score, "uncertainty": c.uncertainty,
                        "guess": classes[c.guess], "label": classes[c.label]})
    columns = ["task", "sample_id", "split", "attribute", "reason", "score", "uncertainty",
               "guess", "label"]
    return pd.DataFrame(out, columns=columns)


def main() -> None:
    args = stage_args(__doc__)
    p = load(args.params, select=SelectParams)["select"]
    parts = split_budget(p.splits, p.val_share)
    snapshot = read_snapshot(must_exist(p.relabels, "select.relabels"))
    probs = read_parquet(p.probs, "crossfit")
    rows = probs[probs["split"].isin(p.splits) & (probs["fold"] >= 0)].reset_index(drop=True)
    budget = budget_count(p.budget, len(rows))
    labels = {a: rows[a].to_numpy() for a in schema.ATTRIBUTE_NAMES}
    pred = {a: np.stack(rows[f"{a}_prob"]) for a in schema.ATTRIBUTE_NAMES}
    settled = decided_pairs(snapshot, rows["sample_id"])
    tasks = []
    for only, share in parts:
        # scored on every row (each class's threshold from all of them), picked among `only`
        closed = {a: settled[a] | ~rows["split"].isin(only).to_numpy()
                  for a in schema.ATTRIBUTE_NAMES}
        n = budget - len(tasks) if share is None else int(round(budget * share))
        tasks += select(labels, pred, n, closed, uncertainty_kind=p.uncertainty,
                        quota_share=p.quota_share)
    table = manifest(rows, tasks)
    with building_dir(p.out, OWNER) as tmp:
        table.to_parquet(tmp / "manifest.parquet", index=False)
    per_class = Counter(zip(table["attribute"], table["label"], strict=True))
    counts = {"tasks": len(tasks), "budget": budget, "questions": len(table),
              "suspect": int((table["reason"] == "suspect").sum())}
    write_json(p.report, {
        **counts,
        "per_attribute": {a: int((table["attribute"] == a).sum()) for a in schema.ATTRIBUTE_NAMES},
        "per_class": {f"{a}/{c}": n for (a, c), n in sorted(per_class.items())}})
    write_json(p.metrics, counts)
    log.info("%d tasks (budget %d of %d sketches), %d questions, %d suspect labels -> %s",
             len(tasks), budget, len(rows), len(table), (table["reason"] == "suspect").sum(),
             p.out)


if __name__ == "__main__":
    run_stage(main)

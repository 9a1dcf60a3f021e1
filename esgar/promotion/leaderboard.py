"""Registry versions (or runs) side by side: balanced metrics with their intervals, and which
one is champion and why.

    entries = gather(["esgar-fs2k@champion", "esgar-fs2k/3", "<run id>"], split="val")
    print(text_table(entries)); markdown(entries); plot(entries, "compare.png")

A reference is `NAME/VERSION`, `NAME@ALIAS`, `models:/NAME/VERSION`, `models:/NAME@ALIAS`, or an
MLflow run id (of the train or the evaluate stage). The numbers are the evaluate stage's, as
logged to MLflow: per attribute balanced accuracy, macro-F1 and minority-class recall (the
rarest class's), with their bootstrap intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from esgar import schema
from esgar.errors import EsgarError
from esgar.integrations import registry as reg
from esgar.visualize import new_figure, save_figure

__all__ = ["Entry", "gather", "markdown", "plot", "text_table"]

MEASURES = (("bacc", "balanced acc"), ("macro_f1", "macro-F1"),
            ("minority_recall", "minority-class recall"))


@dataclass
class Entry:
    """One column: `label` (e.g. "esgar-fs2k v3 (champion)"), `metrics` of one split
    ({"bacc/hair": .., "bacc/hair_ci_low": .., "mean_bacc": ..}), `decision` and `reason`
    (tags of the version; empty for a plain run), `aliases`, and the runs behind it."""

    label: str
    metrics: dict[str, float]
    decision: str = ""
    reason: str = ""
    aliases: list[str] = field(default_factory=list)
    train_run_id: str = ""
    evaluate_run_id: str = ""


def _split_metrics(all_metrics: dict[str, float], split: str) -> dict[str, float]:
    prefix = f"{split}/"
    return {k[len(prefix):]: v for k, v in all_metrics.items() if k.startswith(prefix)}


def _from_version(c, name: str, version: str, split: str) -> Entry:
    mv = reg.get_version(c, name, version)
    tags = dict(mv.tags or {})
    aliases = sorted(a for a, v in reg.aliases(c, name).items() if v == str(mv.version))
    train_run = tags.get("train_run_id") or mv.run_id or ""
    eval_run = tags.get("evaluate_run_id") or (reg.evaluate_run_of(c, train_run)
                                               if train_run else "")
    label = f"{name} v{mv.version}" + (f" ({', '.join(aliases)})" if aliases else "")
    # no evaluate run (registered by hand): the headline numbers its tags hold, if any
    metrics = (_split_metrics(reg.run_metrics(c, eval_run), split) if eval_run else
               {k[len(split) + 1:]: float(v) for k, v in tags.items()
                if k.startswith(f"{split}.")})
    return Entry(label, metrics,
                 tags.get("decision", ""), tags.get("decision.reason", ""), aliases, train_run,
                 eval_run)


def _from_run(c, run_id: str, split: str) -> Entry:
    try:
        run = c.get_run(run_id)
    except Exception:
        raise EsgarError(f"{run_id!r} is neither NAME/VERSION, NAME@ALIAS nor a run id in "
                         "the tracking store") from None
    stage = run.data.tags.get("stage", "")
    if stage == "train":
        eval_run, train_run = reg.evaluate_run_of(c, run_id), run_id
        if not eval_run:
            raise EsgarError(f"train run {run_id} has no finished evaluate run")
    elif stage == "evaluate":
        eval_run, train_run = run_id, run.data.tags.get("train_run_id", "")
    else:
        raise EsgarError(f"run {run_id} is not a train or evaluate run of the pipeline")
    head = run.data.tags.get("head", "?")
    label = f"run {run_id[:8]} ({head})"
    return Entry(label, _split_metrics(reg.run_metrics(c, eval_run), split),
                 train_run_id=train_run, evaluate_run_id=eval_run)


def gather(refs: Sequence[str], split: str = "val", c=None) -> list[Entry]:
    """One `Entry` per reference (see the module), read from the registry and tracking store
    (`c`: a client of `esgar.integrations.registry.client()`, made here when not given)."""
    if not refs:
        raise EsgarError("nothing to compare: name registry versions or runs")
    c = c or reg.client()
    out = []
    for ref in refs:
        found = reg.resolve_ref(c, ref)  # a RegistryError (an EsgarError) names the ref
        out.append(_from_version(c, *found, split) if found else _from_run(c, ref.strip(), split))
    if not any(e.metrics for e in out):
        raise EsgarError(f"none of {', '.join(refs)} has {split!r} metrics of an evaluate run")
    return out


def _cell(m: dict[str, float], key: str) -> str:
    if key not in m:
        return "-"
    lo, hi = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
    return f"{m[key]:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None \
        else f"{m[key]:.3f}"


def rows(entries: Sequence[Entry]) -> list[tuple[str, list[str]]]:
    """(metric label, one cell per entry): the three means, then each attribute's three."""
    out = [(f"mean {label}", [_cell(e.metrics, f"mean_{key}") for e in entries])
           for key, label in MEASURES]
    for a in schema.ATTRIBUTE_NAMES:
        for key, label in MEASURES:
            out.append((f"{a} {label}", [_cell(e.metrics, f"{key}/{a}") for e in entries]))
    return out


def markdown(entries: Sequence[Entry], split: str = "val") -> str:
    """A markdown table (95 % bootstrap intervals in brackets) and each version's decision."""
    head = f"| {split} | " + " | ".join(e.label for e in entries) + " |"
    lines = [head, "|" + "---|" * (len(entries) + 1)]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows(entries)]
    decided = [e for e in entries if e.decision]
    if decided:
        lines += ["", "| version | decision | reason |", "|---|---|---|"]
        lines += [f"| {e.label} | {e.decision} | {e.reason} |" for e in decided]
    return "\n".join(lines) + "\n"


def text_table(entries: Sequence[Entry], split: str = "val") -> str:
    """The same table for a terminal: fixed-width columns."""
    table = [[split, *(e.label for e in entries)], *([n, *c] for n, c in rows(entries))]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for e in entries:
        if e.decision:
            lines.append(f"{e.label}: {e.decision}: {e.reason}")
    return "\n".join(lines) + "\n"


def plot(entries: Sequence[Entry], path: str | Path, split: str = "val") -> Path:
    """Per attribute balanced accuracy of each entry with its interval, one bar group per
    attribute, written atomically as a PNG."""
    attrs = list(schema.ATTRIBUTE_NAMES) + ["mean"]
    fig = new_figure((max(8.0, 1.3 * len(attrs)), 4.2))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(entries), 1)
    x = np.arange(len(attrs))
    for i, e in enumerate(entries):
        keys = [f"bacc/{a}" for a in schema.ATTRIBUTE_NAMES] + ["mean_bacc"]
        val = np.array([e.metrics.get(k, np.nan) for k in keys])
        lo = np.array([e.metrics.get(f"{k}_ci_low", v) for k, v in zip(keys, val, strict=True)])
        hi = np.array([e.metrics.get(f"{k}_ci_high", v) for k, v in zip(keys, val, strict=True)])
        ax.bar(x + (i - (len(entries) - 1) / 2) * width, val, width, label=e.label,
               yerr=np.stack([val - lo, hi - val]), capsize=2)
    ax.set_xticks(x, attrs, rotation=20)
    ax.set_ylim(0, 1.05)
    ax.axhline(0.5, color="grey", lw=0.6, ls=":")
    ax.set_ylabel(f"{split} balanced accuracy (95 % interval)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)

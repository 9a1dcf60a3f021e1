"""What mask guidance is worth when the masks come from an imperfect parser.

Synthetic FS2K (as in bench_quality.py) with its exact label maps degraded by the masks stage's
own option (`masks.degrade`, esgar/masks/degrade.py) at several levels; at each level `esg`,
`ssp_ssg` and the masks-alone probe (a logistic regression on the token grids) are trained and
scored on the test split, per seed. `global` ignores the masks, so it is trained once per seed
and drawn flat. The masks are degraded for training and test alike, as a parser would be.

Calibration: the per-class F1 of the degraded maps against the exact ones (pixels pooled over
300 test maps, as face-parsing papers count) at a fine grid of levels, against published
per-class F1 of CNN face parsers on CelebAMask-HQ (bench/parser_f1_celebamask_hq.yaml); the
"realistic" level is the one with the smallest mean absolute difference over the classes both
have.

The backbone is mobilenetv3_small_100 from scratch, so the 27 trainings fit in about an hour on
2 cores (resnet18 at the same size: about three hours there).

    python bench/bench_robustness.py [--levels 0 1 2 4] [--seeds 0 1 2] [--epochs 8] [--backbone B]
        [--img-size 112] [--out bench/results/robustness.json] [--plot docs/images/robustness.png]
    python bench/bench_robustness.py --replot    # the PNG and table again from --out
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import build_data, model, probe, run_one, split_data  # noqa: E402

from esgar.data.table import load_table  # noqa: E402
from esgar.masks.build import imported_masks  # noqa: E402
from esgar.masks.degrade import Degradation, class_f1, degrade, sample_rng  # noqa: E402
from esgar.masks.labels import CANONICAL_CLASSES  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = Path(__file__).resolve().parent / "parser_f1_celebamask_hq.yaml"
HEADS = ("esg", "ssp_ssg")


def build_level(work: Path, level: float) -> tuple[str, dict]:
    """The masks stage run again with `masks.degrade.level`; returns its store and the
    per-region F1 it reports against the exact masks."""
    if level == 0:
        return "data/masks", {}
    tag = f"{level:g}".replace(".", "_")
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["masks"]["degrade"]["level"] = level
    params["masks"].update(out=f"data/masks_{tag}", metrics=f"metrics/masks_{tag}",
                           report=f"reports/masks_{tag}.json", plots=f"plots/masks_{tag}")
    (work / f"params_{tag}.yaml").write_text(yaml.safe_dump(params))
    subprocess.run([sys.executable, "-m", "pipeline.masks", "-q", "--params", f"params_{tag}.yaml"],
                   cwd=work, check=True)
    report = json.loads((work / f"reports/masks_{tag}.json").read_text())
    return f"data/masks_{tag}", report["degradation"]["region_f1"]


def calibration(masks: dict, table, grid: np.ndarray, n_maps: int = 300) -> dict:
    """Pooled per-class F1 of `n_maps` degraded test maps (seeded as the masks stage seeds
    them) at each level of `grid`, and the level closest to each published parser; `masks`:
    params.yaml's masks section."""
    imp, spec = masks["import"], dict(masks["degrade"])
    seed = spec.pop("seed")
    spec.pop("sheet_levels"), spec.pop("level")
    test = table[table.split == "test"].iloc[:n_maps]
    rows = [table.index.get_loc(k) for k in test.index]  # the row numbers the stage seeds by
    exact = [(rows[j], m) for j, m in imported_masks(test, imp["dir"], imp["format"],
                                                     imp["label_order"], [])]

    def at(level: float) -> np.ndarray:
        noisy = Degradation(**{**spec, "level": float(level)})
        return class_f1((m, degrade(m, noisy, sample_rng(seed, i))) for i, m in exact) * 100

    f1 = np.stack([at(level) for level in grid])
    # the classes the exact maps hold: a class they lack (hat) may appear once degraded (hair
    # swapped for hat), with an F1 of 0 that says nothing about the level
    present = set(np.unique(np.concatenate([np.unique(m) for _, m in exact]))) - {0}
    published = yaml.safe_load(PUBLISHED.read_text())
    fits = {}
    for name, row in published["parsers"].items():
        cols = [c for c in map(CANONICAL_CLASSES.index, row) if c in present]
        target = np.array([row[CANONICAL_CLASSES[c]] for c in cols])
        mae = np.abs(f1[:, cols] - target).mean(1)
        best = int(np.argmin(mae))
        fits[name] = {"level": float(grid[best]), "mae": float(mae[best]),
                      "classes": {CANONICAL_CLASSES[c]: [row[CANONICAL_CLASSES[c]],
                                                          round(float(f1[best, c]), 1)]
                                  for c in cols}}
    return {"source": published["source"], "grid": grid.tolist(), "fits": fits,
            "f1": {CANONICAL_CLASSES[c]: np.round(f1[:, c], 1).tolist()
                   for c in range(1, len(CANONICAL_CLASSES)) if np.isfinite(f1[0, c])}}


def run(args) -> dict:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        if not (work / "data/masks").is_dir():
            build_data(work)
        os.chdir(work)
        table = load_table("data/prepared/samples.parquet")
        print("calibrating ...", flush=True)
        cal = calibration(yaml.safe_load(Path("params.yaml").read_text())["masks"], table,
                          np.arange(0, 4.01, 0.25))
        for name, fit in cal["fits"].items():
            print(f"  closest to {name}: level {fit['level']:g} (mean |F1 diff| "
                  f"{fit['mae']:.1f} points)", flush=True)
        net = model("global", args)  # every head takes the same inputs
        results: dict = {"levels": {}, "global": []}
        data = split_data(net, table)
        for s in args.seeds:
            results["global"].append(run_one("global", s, data, args))
            print(f"global seed {s}: {results['global'][-1]['mean_bacc']:.4f}", flush=True)
        for level in args.levels:
            store, region_f1 = build_level(work, level)
            data = split_data(net, table, store)
            entry = {"region_f1": region_f1, "masks_alone": probe(net, table, store)}
            for head in HEADS:
                entry[head] = []
                for s in args.seeds:
                    r = run_one(head, s, data, args)
                    entry[head].append(r)
                    print(f"level {level:g} {head} seed {s}: mean bacc {r['mean_bacc']:.4f}, "
                          f"minority recall {r['minority_recall']:.4f} ({r['train_s']:.0f} s)",
                          flush=True)
            results["levels"][f"{level:g}"] = entry
    results.update(calibration=cal, minutes=(time.perf_counter() - t0) / 60, setting={
        "backbone": args.backbone, "img_size": args.img_size, "epochs": args.epochs,
        "seeds": args.seeds, "loss": "balanced_bce", "cpu": cpu_name(),
        "cores": os.cpu_count(), "torch": torch.__version__})
    return results


def cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
             if line.startswith("model name")] if info.exists() else []
    return names[0] if names else platform.processor() or platform.machine()


def stats(rs: list[dict], key: str) -> tuple[float, float]:
    v = np.array([r[key] for r in rs])
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def worth_it_up_to(res: dict) -> float | None:
    """The highest level up to which esg's mean balanced accuracy beats global's by more than
    the two seed spreads (standard deviations) together, at every level from exact on."""
    g, gs = stats(res["global"], "mean_bacc")
    last = None
    for level, entry in sorted(res["levels"].items(), key=lambda kv: float(kv[0])):
        e, es = stats(entry["esg"], "mean_bacc")
        if e - g <= es + gs:
            break
        last = float(level)
    return last


def realistic(res: dict) -> float:
    return res["calibration"]["fits"]["EAGRNet"]["level"]


def table_md(res: dict) -> str:
    def ms(rs: list[dict], k: str) -> str:
        m, s = stats(rs, k)
        return f"{m:.3f} ± {s:.3f}"

    rows = ["| level | region F1 (hair / earring / face / mouth) | esg | ssp_ssg | global | "
            "masks alone | esg minority recall | ssp_ssg minority recall | global minority "
            "recall |", "|---|---|---|---|---|---|---|---|---|"]
    for level, e in sorted(res["levels"].items(), key=lambda kv: float(kv[0])):
        f1 = e["region_f1"]
        regions = " / ".join(f"{f1[r]:.2f}" for r in ("hair", "earring", "face", "mouth")) \
            if f1 else "1 (exact)"
        rows.append(f"| {level} | {regions} | {ms(e['esg'], 'mean_bacc')} | "
                    f"{ms(e['ssp_ssg'], 'mean_bacc')} | {ms(res['global'], 'mean_bacc')} | "
                    f"{e['masks_alone']['mean_bacc']:.3f} | {ms(e['esg'], 'minority_recall')} | "
                    f"{ms(e['ssp_ssg'], 'minority_recall')} | "
                    f"{ms(res['global'], 'minority_recall')} |")
    return "\n".join(rows)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = sorted(res["levels"], key=float)
    x = np.array([float(v) for v in levels])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in ((axes[0], "mean_bacc", "mean balanced accuracy"),
                           (axes[1], "minority_recall", "minority-class recall")):
        for head, colour in (("esg", "C0"), ("ssp_ssg", "C1")):
            m, s = np.array([stats(res["levels"][v][head], key) for v in levels]).T
            ax.errorbar(x, m, yerr=s, color=colour, marker="o", capsize=3, label=head)
        g, gs = stats(res["global"], key)
        ax.axhline(g, color="C2", label="global (no masks)")
        ax.axhspan(g - gs, g + gs, color="C2", alpha=0.15)
        if key == "mean_bacc":
            ax.plot(x, [res["levels"][v]["masks_alone"]["mean_bacc"] for v in levels], "k--",
                    marker="s", label="masks alone")
        marks: dict[float, list[str]] = {}
        for name, fit in res["calibration"]["fits"].items():
            marks.setdefault(fit["level"], []).append(name)
        for level, names in marks.items():
            ax.axvline(level, color="grey", ls=":")
            ax.text(level, ax.get_ylim()[1], f" realistic\n ({', '.join(names)})", va="top",
                    fontsize=7, color="dimgrey")
        ax.set(xlabel="mask degradation level (0: exact)", title=title)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    st = res["setting"]
    fig.suptitle(f"Mask guidance under parser errors: synthetic FS2K test split, {st['backbone']} "
                 f"at {st['img_size']} px, {st['epochs']} epochs, seeds {st['seeds']} "
                 "(bars: ±1 sd)", fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(res: dict) -> None:
    print("\n" + table_md(res))
    up_to = worth_it_up_to(res)
    print(f"\nrealistic level (closest to EAGRNet on CelebAMask-HQ): {realistic(res):g}; "
          f"esg beats global beyond the seed spread up to level: {up_to}")
    for name, fit in res["calibration"]["fits"].items():
        print(f"\n{name} (published, ours at level {fit['level']:g}): "
              + ", ".join(f"{c} {p:.1f}/{o:.1f}" for c, (p, o) in fit["classes"].items()))
    st = res["setting"]
    print(f"\nwhole run {res['minutes']:.1f} min, {st['cores']} cores, {st['cpu']}, "
          f"torch {st['torch']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--levels", nargs="+", type=float, default=[0, 1, 2, 4])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--img-size", type=int, default=112)
    ap.add_argument("--backbone", default="mobilenetv3_small_100")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--work", help="a folder to build the data in and keep (default: temporary)")
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/robustness.json")
    ap.add_argument("--plot", type=Path, default=REPO / "docs/images/robustness.png")
    ap.add_argument("--replot", action="store_true", help="only redraw from --out")
    args = ap.parse_args()
    if args.replot:
        res = json.loads(args.out.read_text())
    else:
        res = run(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=1))
    plot(res, args.plot)
    report(res)


if __name__ == "__main__":
    main()

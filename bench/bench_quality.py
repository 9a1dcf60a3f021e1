"""Quality of the four heads on synthetic FS2K with FS2K's imbalance: esg, global, ssp_ssg, lsa.

Synthetic FS2K (2,104 pairs: FS2K's 1,058 training sketches, of which a stratified 15 % is the
validation split that picks the checkpoint, and its 1,046 test sketches, with FS2K's class counts)
and its exact masks; one CPU-sized backbone trained from scratch per head and seed; balanced
accuracy and minority-class recall on the test split, mean and spread over the seeds.

    python bench/bench_quality.py [--seeds 0 1 2] [--epochs 8] [--img-size 112] [--no-masks]
                                  [--precisions fp32 bf16]

`--precisions` trains and scores every head and seed in each precision (`train.precision`), to
compare them at otherwise equal settings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from benchlib import build

from esgar import schema
from esgar.data.dataset import SketchDataset
from esgar.data.table import load_table
from esgar.device import cpu_bf16_features, cpu_name, resolve_precision
from esgar.forward import batched_logits
from esgar.metrics import balanced_accuracy, evaluate, per_class_recall
from esgar.models.factory import create_model
from esgar.training import TrainConfig, make_loader, train

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
REGIONS = list(PARAMS["masks"]["regions"])
ATTRIBUTE_REGIONS = PARAMS["model"]["attribute_regions"]


def build_data(work: Path) -> Path:
    """Synthetic FS2K without label noise -> sample table -> mask store, through the
    pipeline's own stages."""
    build(work, 2104, ("download", "prepare", "masks"), noise={})
    return work


class WholeGridMasks(torch.utils.data.Dataset):
    """A dataset whose every region is the whole grid: the head's architecture without the
    masks' guidance (the `--no-masks` ablation)."""

    def __init__(self, ds: SketchDataset):
        self.ds, self.labels = ds, ds.labels

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.ds[i])
        item["grids"] = torch.ones_like(item["grids"])
        return item


def masks_alone(data: dict[str, SketchDataset]) -> dict:
    """How much the masks by themselves tell: a class-balanced logistic regression on the
    token grids the heads get (flattened [R*gh*gw], no augmentation), trained on train and
    scored on test (balanced accuracy per attribute). High where a region's presence or
    shape is the label."""
    from sklearn.linear_model import LogisticRegression

    def xy(ds: SketchDataset) -> tuple[np.ndarray, np.ndarray]:
        x = np.stack([ds[i]["grids"].flatten().numpy() for i in range(len(ds))])
        return x, ds.labels.numpy()

    (xtr, ytr), (xte, yte) = xy(data["train"]), xy(data["test"])
    out = {}
    for j, a in enumerate(schema.ATTRIBUTE_NAMES):
        clf = LogisticRegression(class_weight="balanced", max_iter=2000).fit(xtr, ytr[:, j])
        out[f"bacc/{a}"] = balanced_accuracy(yte[:, j], clf.predict(xte))
    out["mean_bacc"] = float(np.mean(list(out.values())))
    return out


def split_data(net: torch.nn.Module, table, store: str = "data/masks") -> dict:
    """{train, val, test: the dataset `net` takes from mask store `store`} (train augmented)."""
    return {s: SketchDataset.for_model(net, table[table.split == s], store, train=s == "train")
            for s in ("train", "val", "test")}


def probe(net: torch.nn.Module, table, store: str = "data/masks") -> dict:
    """`masks_alone` on the un-augmented train and test grids of `store`."""
    return masks_alone({s: SketchDataset.for_model(net, table[table.split == s], store,
                                                   train=False) for s in ("train", "test")})


def minority_recall(truth: np.ndarray, pred: np.ndarray) -> float:
    """Mean over attributes of the recall of each attribute's rarest training class."""
    recalls = []
    for j, a in enumerate(schema.ATTRIBUTES):
        rare = int(np.argmin(schema.FS2K_COUNTS["train"][a.name]))
        recalls.append(per_class_recall(truth[:, j], pred[:, j], a.num_classes)[rare])
    return float(np.mean(recalls))


def model(head: str, args) -> torch.nn.Module:
    return create_model(args.backbone, head, region_names=REGIONS,
                        attribute_regions=ATTRIBUTE_REGIONS, pretrained=False,
                        img_size=args.img_size)


def run_one(head: str, seed: int, data: dict, args, precision: str = "auto") -> dict:
    torch.manual_seed(seed)
    net = model(head, args)
    train_params = {k: v for k, v in PARAMS["train"].items() if k in TrainConfig.model_fields}
    cfg = TrainConfig(**{**train_params, "epochs": args.epochs, "lr": args.lr, "seed": seed,
                         "loss": "balanced_bce", "loss_kwargs": {}, "patience": args.epochs,
                         "device": "cpu", "precision": precision})
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = train(net, data["train"], data["val"], cfg, out, resume=False)
        took = time.perf_counter() - start
        net.load_state_dict(torch.load(Path(out) / "best.pt", weights_only=True))
    test = data["test"]
    cpu = torch.device("cpu")
    logits, index = batched_logits(net, make_loader(test, 64, False, 0, 0), cpu,
                                   resolve_precision(precision, cpu))
    truth = test.labels.numpy()[index]
    pred = np.stack([logits[a].argmax(1) for a in schema.ATTRIBUTE_NAMES], 1)
    m = evaluate(truth, pred, n_resamples=0)
    return {"mean_bacc": m["mean_bacc"], "minority_recall": minority_recall(truth, pred),
            "mean_macro_f1": m["mean_macro_f1"], "best_epoch": result.best_epoch,
            "train_s": took, "precision": result.precision["used"],
            **{f"bacc/{a}": m[f"bacc/{a}"] for a in schema.ATTRIBUTE_NAMES}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--heads", nargs="+", default=["esg", "global", "ssp_ssg", "lsa"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--img-size", type=int, default=112)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--precisions", nargs="+", default=["auto"],
                    choices=["auto", "fp32", "bf16"])
    ap.add_argument("--out", type=Path, help="also write every run's numbers here (JSON)")
    ap.add_argument("--no-masks", action="store_true",
                    help="ablation: every region is the whole grid (the heads' architecture "
                         "without the masks' guidance)")
    args = ap.parse_args()
    args.out = args.out.resolve() if args.out else None  # the run works in a temporary folder
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = build_data(Path(tmp))
        os.chdir(work)
        table = load_table("data/prepared/samples.parquet")
        net = model("global", args)  # every head takes the same inputs
        data, grids_only = split_data(net, table), probe(net, table)
        if args.no_masks:
            data = {s: WholeGridMasks(ds) for s, ds in data.items()}
        results: dict[str, list[dict]] = {}
        for head in args.heads:
            for precision in args.precisions:
                for seed in args.seeds:
                    r = run_one(head, seed, data, args, precision)
                    row = head if args.precisions == ["auto"] else f"{head}, {r['precision']}"
                    results.setdefault(row, []).append(r)
                    print(f"{row} seed {seed}: mean bacc {r['mean_bacc']:.4f}, minority recall "
                          f"{r['minority_recall']:.4f} ({r['train_s']:.0f} s)", flush=True)
    ablation = ", masks replaced by whole grids" if args.no_masks else ""
    print(f"\n{args.backbone} at {args.img_size}px from scratch, {args.epochs} epochs, "
          f"balanced_bce, seeds {args.seeds}{ablation}; test split of synthetic FS2K "
          "(1,046 sketches)\n")
    print("| head | mean balanced acc | minority-class recall | mean macro-F1 | train s | "
          + " | ".join(a.name for a in schema.ATTRIBUTES) + " |")
    print("|---|---|---|---|---|" + "---|" * len(schema.ATTRIBUTES))

    def ms(rs: list[dict], k: str) -> str:
        v = np.array([r[k] for r in rs])
        return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f}"

    for head, rs in results.items():
        print(f"| {head} | {ms(rs, 'mean_bacc')} | {ms(rs, 'minority_recall')} | "
              f"{ms(rs, 'mean_macro_f1')} | {np.mean([r['train_s'] for r in rs]):.0f} | "
              + " | ".join(f"{np.mean([r[f'bacc/{a.name}'] for r in rs]):.3f}"
                           for a in schema.ATTRIBUTES) + " |")
    print("| masks alone (logistic regression on the token grids) | "
          f"{grids_only['mean_bacc']:.3f} | | | | "
          + " | ".join(f"{grids_only[f'bacc/{a.name}']:.3f}" for a in schema.ATTRIBUTES) + " |")
    machine = {"cores": os.cpu_count(), "arch": platform.machine(), "cpu": cpu_name(),
               "bf16_instructions": cpu_bf16_features(), "torch": torch.__version__}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": {k: (v.name if isinstance(v, Path) else str(v))
                                               for k, v in vars(args).items()},
                                        "machine": machine, "runs": results}, indent=1))
    print(f"\nwhole run {(time.perf_counter() - t0) / 60:.1f} min, {os.cpu_count()} cores, "
          f"{platform.machine()}, {cpu_name()} (bf16 instructions: "
          f"{', '.join(cpu_bf16_features()) or 'none'}), torch {torch.__version__}")


if __name__ == "__main__":
    main()

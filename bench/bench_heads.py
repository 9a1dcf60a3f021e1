#!/usr/bin/env python
"""Training throughput of each head on one backbone: forward + backward (and + AdamW step).

    python bench/bench_heads.py [--backbone resnet18] [--img-size 128] [--batch 16]
                                [--warmup 3] [--iters 10] [--repeats 3] [--threads N]
                                [--coverage 0.5 | --masks data/masks] [--heads esg global ...]
                                [--device cpu]

Prints images/s per head, for forward + backward and for the whole step with AdamW (the best
of `repeats` rounds; a round times `iters` steps of every head in turn, after `warmup` steps
each), and each head's cost over `global`, in %: (t_head / t_global - 1) * 100.
Random images and labels; random binary region grids, or the real token grids of a mask store
(`--masks`); CPU unless --device says otherwise.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from esgar import schema
from esgar.masks.store import load_grids
from esgar.masks.store import region_names as store_regions
from esgar.models.factory import create_model
from esgar.models.heads import list_heads

PARAMS = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())


def batch_grids(args: argparse.Namespace, regions: list[str], grid: tuple[int, int]
                ) -> torch.Tensor:
    """Region grids [batch,R,gh,gw]: the first samples' stored token grids (`--masks`), or
    random cells on with probability `--coverage`."""
    if not args.masks:
        return (torch.rand(args.batch, len(regions), *grid) < args.coverage).float()
    _, grids = load_grids(args.masks, grid)
    return torch.from_numpy(grids[:args.batch].astype("float32"))


class Trainer:
    """One head's model, a fixed random batch and an AdamW step over it."""

    def __init__(self, head: str, args: argparse.Namespace, regions: list[str],
                 grids: torch.Tensor):
        torch.manual_seed(0)
        self.dev = torch.device(args.device)
        self.net = create_model(args.backbone, head, region_names=regions,
                                attribute_regions=PARAMS["model"]["attribute_regions"],
                                pretrained=False, img_size=args.img_size).to(self.dev).train()
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=1e-5)
        b = args.batch
        self.x = torch.randn(b, 3, args.img_size, args.img_size, device=self.dev)
        self.grids = grids.to(self.dev)
        self.labels = {a.name: torch.randint(0, a.num_classes, (b,), device=self.dev)
                       for a in schema.ATTRIBUTES}
        self.head_params = sum(p.numel() for p in self.net.head.parameters())

    def forward_backward(self) -> None:
        out = self.net(self.x, self.grids)
        loss = sum(F.cross_entropy(out[a], y) for a, y in self.labels.items())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()

    def _sync(self) -> None:
        if self.dev.type == "cuda":
            torch.cuda.synchronize()

    def time(self, iters: int) -> tuple[float, float]:
        """Seconds per step over `iters` steps: forward + backward, and the AdamW step."""
        fb = opt = 0.0
        for _ in range(iters):
            self._sync()
            t0 = time.perf_counter()
            self.forward_backward()
            self._sync()
            t1 = time.perf_counter()
            self.opt.step()
            self._sync()
            fb, opt = fb + t1 - t0, opt + time.perf_counter() - t1
        return fb / iters, opt / iters


def rel(t: float, ref: float | None) -> str:
    """Cost over the reference in %."""
    return f"{(t / ref - 1) * 100:+.1f} %" if ref else "-"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--heads", nargs="+", default=None, help="default: every registered head")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--coverage", type=float, default=0.5,
                    help="probability that a region grid cell is on (ESG skips masked-out tokens)")
    ap.add_argument("--masks", default=None,
                    help="a mask store (data/masks): use its token grids instead of random ones")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    heads = args.heads or list_heads()
    if "global" in heads:  # the reference first
        heads = ["global"] + [h for h in heads if h != "global"]
    print(f"backbone {args.backbone} @ {args.img_size}px, batch {args.batch}, "
          f"device {args.device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"best of {args.repeats} rounds x {args.iters} steps after {args.warmup} warm-up; "
          + (f"token grids of {args.masks}" if args.masks
             else f"region cells on with p={args.coverage}"))
    # the regions of the mask store, or those params.yaml's masks stage makes
    regions = store_regions(args.masks) if args.masks else list(PARAMS["masks"]["regions"])
    grid = create_model(args.backbone, "global", region_names=regions,
                        attribute_regions=PARAMS["model"]["attribute_regions"], pretrained=False,
                        img_size=args.img_size).grid_size
    grids = batch_grids(args, regions, grid)
    trainers = {h: Trainer(h, args, regions, grids) for h in heads}
    for tr in trainers.values():
        tr.time(args.warmup)
    # rounds interleave the heads, so a burst of load elsewhere hits them all alike
    fb = {h: float("inf") for h in heads}
    full = dict(fb)
    for _ in range(args.repeats):
        for h, tr in trainers.items():
            t_fb, t_opt = tr.time(args.iters)
            fb[h], full[h] = min(fb[h], t_fb), min(full[h], t_fb + t_opt)
    print(f"{'head':<9} {'head params':>12} | {'fwd+bwd ms':>10} {'img/s':>7} {'vs global':>9} | "
          f"{'+AdamW ms':>9} {'img/s':>7} {'vs global':>9}")
    for h in heads:
        print(f"{h:<9} {trainers[h].head_params:>12,} | {fb[h] * 1e3:>10.1f} "
              f"{args.batch / fb[h]:>7.1f} {rel(fb[h], fb.get('global')):>9} | "
              f"{full[h] * 1e3:>9.1f} {args.batch / full[h]:>7.1f} "
              f"{rel(full[h], full.get('global')):>9}")
    if "global" in heads and "esg" in heads:
        over = (fb["esg"] / fb["global"] - 1) * 100
        over_full = (full["esg"] / full["global"] - 1) * 100
        print(f"esg overhead vs global: forward+backward {over:+.1f} % (target < 15 %: "
              f"{'met' if over < 15 else 'NOT met'}); with the AdamW step {over_full:+.1f} %")


if __name__ == "__main__":
    main()

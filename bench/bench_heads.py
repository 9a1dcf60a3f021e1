#!/usr/bin/env python
"""Training throughput of each head on one backbone: forward + backward + AdamW step.

    python bench/bench_heads.py [--backbone resnet18] [--img-size 128] [--batch 16]
                                [--warmup 3] [--iters 10] [--repeats 3] [--threads N]

Prints images/s per head (the best of `repeats` rounds; a round times `iters` steps of every
head in turn, after `warmup` steps each) and each head's cost over `global`, in %: (t_head / t_global - 1) * 100.
Random images, random binary region grids, random labels; CPU unless --device says otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from esgar import schema  # noqa: E402
from esgar.models.factory import create_model  # noqa: E402
from esgar.models.heads import list_heads  # noqa: E402

REGIONS = ("hair", "earring", "face", "foreground", "mouth", "eyes", "brows", "nose", "ears",
           "neck")


class Trainer:
    """One head's model, a fixed random batch and an AdamW step over it."""

    def __init__(self, head: str, args: argparse.Namespace):
        torch.manual_seed(0)
        self.dev = torch.device(args.device)
        self.net = create_model(args.backbone, head, region_names=REGIONS, pretrained=False,
                                img_size=args.img_size).to(self.dev).train()
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=1e-5)
        gh, gw = self.net.grid_size
        b = args.batch
        self.x = torch.randn(b, 3, args.img_size, args.img_size, device=self.dev)
        self.grids = (torch.rand(b, len(REGIONS), gh, gw, device=self.dev) > 0.5).float()
        self.labels = {a.name: torch.randint(0, a.num_classes, (b,), device=self.dev)
                       for a in schema.ATTRIBUTES}
        self.head_params = sum(p.numel() for p in self.net.head.parameters())

    def step(self) -> None:
        out = self.net(self.x, self.grids)
        loss = sum(F.cross_entropy(out[a], y) for a, y in self.labels.items())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def time(self, iters: int) -> float:
        """Seconds per step over `iters` steps."""
        if self.dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(iters):
            self.step()
        if self.dev.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t) / iters


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
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    heads = args.heads or list_heads()
    if "global" in heads:  # the reference first
        heads = ["global"] + [h for h in heads if h != "global"]
    print(f"backbone {args.backbone} @ {args.img_size}px, batch {args.batch}, device {args.device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"best of {args.repeats} x {args.iters} steps (fwd+bwd+AdamW) after {args.warmup} warm-up")
    trainers = {h: Trainer(h, args) for h in heads}
    for tr in trainers.values():
        for _ in range(args.warmup):
            tr.step()
    # rounds interleave the heads, so a burst of load elsewhere hits them all alike
    times = {h: float("inf") for h in heads}
    for _ in range(args.repeats):
        for h, tr in trainers.items():
            times[h] = min(times[h], tr.time(args.iters))
    print(f"{'head':<10} {'head params':>12} {'ms/step':>9} {'images/s':>9} {'vs global':>10}")
    for h in heads:
        t = times[h]
        rel = f"{(t / times['global'] - 1) * 100:+.1f} %" if "global" in times else "-"
        print(f"{h:<10} {trainers[h].head_params:>12,} {t * 1e3:>9.1f} {args.batch / t:>9.1f} "
              f"{rel:>10}")
    if "global" in times and "esg" in times:
        over = (times["esg"] / times["global"] - 1) * 100
        print(f"esg overhead vs global: {over:+.1f} % (target < 15 %: "
              f"{'met' if over < 15 else 'NOT met'})")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Training-step time by precision: fp32 and bf16 autocast, each with and without channels_last,
and optionally `torch.compile`, for the heads and backbones given.

    python bench/bench_precision.py [--models resnet18@128 swin_tiny_patch4_window7_224@224]
                                    [--heads esg global] [--batch 32] [--warmup 2] [--iters 5]
                                    [--repeats 2] [--precisions fp32 bf16] [--compile]
                                    [--threads N]

A step is what `esgar.training.train_one_epoch` does: forward under the precision's autocast,
the loss in fp32, backward, AdamW. Random images, labels and region grids (cells on with
p=0.5). Prints the CPU, which bf16 instructions it has and what `precision: auto` chooses on it,
then per model, head and variant the best of `repeats` rounds (ms per step, images/s) and the
speed over fp32. With `--compile`, also the first compiled step (the compile cost) and the
steady step, and whether compiling pays over a 12-epoch run of the default train split (899
sketches).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time

import torch
import torch.nn.functional as F

from esgar import schema
from esgar.device import Precision, cpu_bf16_features, cpu_name, resolve_precision
from esgar.models.factory import create_model

ATTRIBUTE_REGIONS = {"hair": "hair", "hair_color": "hair", "gender": "foreground",
                     "earring": "earring", "smile": "face", "frontal_face": "foreground",
                     "style": "foreground"}
REGIONS = ["hair", "earring", "face", "foreground"]
TRAIN_SKETCHES, EPOCHS = 899, 12  # the default train split of FS2K (val carved out)


class Step:
    """One model in one precision (and memory format), a fixed random batch, an AdamW step."""

    def __init__(self, backbone: str, size: int, head: str, batch: int, precision: Precision,
                 compiled: bool = False):
        torch.manual_seed(0)
        self.precision = precision
        net = create_model(backbone, head, region_names=REGIONS,
                           attribute_regions=ATTRIBUTE_REGIONS, pretrained=False, img_size=size)
        self.net = precision.prepare(net.train())
        self.forward = torch.compile(self.net) if compiled else self.net
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=1e-5)
        self.x = precision.images(torch.randn(batch, 3, size, size))
        self.grids = (torch.rand(batch, len(REGIONS), *self.net.grid_size) < 0.5).float()
        self.labels = {a.name: torch.randint(0, a.num_classes, (batch,))
                       for a in schema.ATTRIBUTES}

    def __call__(self) -> float:
        """One training step; its seconds."""
        t0 = time.perf_counter()
        with self.precision.autocast():
            out = self.forward(self.x, self.grids)
        loss = sum(F.cross_entropy(out[a].float(), y) for a, y in self.labels.items())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return time.perf_counter() - t0


def variants(precisions: list[str], compile_too: bool) -> list[tuple[str, str, bool, bool]]:
    """(label, precision, channels_last, compiled), fp32 first (the reference)."""
    out = []
    for p in ["fp32"] + [p for p in precisions if p != "fp32"]:
        out += [(p, p, False, False), (f"{p} channels_last", p, True, False)]
        if compile_too:
            out.append((f"{p} channels_last compiled", p, True, True))
    return out


def precision_of(name: str, channels_last: bool) -> Precision:
    """`name` on the CPU with the memory format forced (the bench measures both)."""
    return dataclasses.replace(resolve_precision(name, torch.device("cpu")),
                               channels_last=channels_last)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet18@128"],
                    help="backbone@img_size, e.g. swin_tiny_patch4_window7_224@224")
    ap.add_argument("--heads", nargs="+", default=["esg", "global"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"],
                    choices=["fp32", "bf16"], help="fp32 is always measured (the reference)")
    ap.add_argument("--compile", action="store_true",
                    help="also time torch.compile of the channels_last model")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    features = cpu_bf16_features()
    auto = resolve_precision("auto", torch.device("cpu"))
    print(f"{cpu_name()} ({platform.machine()}), {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; bf16 instructions: {', '.join(features) or 'none'}; "
          f"precision auto -> {auto.used}")
    print(f"batch {args.batch}; best of {args.repeats} rounds x {args.iters} steps after "
          f"{args.warmup} warm-up")
    print(f"{'model':<34} {'head':<7} {'variant':<28} {'ms/step':>8} {'img/s':>7} "
          f"{'vs fp32':>8}")
    for spec in args.models:
        backbone, size = spec.rsplit("@", 1)
        for head in args.heads:
            steps = {}
            for label, name, cl, compiled in variants(args.precisions, args.compile):
                step = Step(backbone, int(size), head, args.batch, precision_of(name, cl),
                            compiled)
                first = step()  # a compiled model compiles here
                for _ in range(args.warmup - 1):
                    step()
                best = min(sum(step() for _ in range(args.iters)) / args.iters
                           for _ in range(args.repeats))
                steps[label] = best
                ref = steps["fp32"]
                print(f"{spec:<34} {head:<7} {label:<28} {best * 1e3:>8.0f} "
                      f"{args.batch / best:>7.1f} {ref / best:>7.2f}x", flush=True)
                if compiled:
                    plain = steps[label.removesuffix(" compiled")]
                    per_run = EPOCHS * -(-TRAIN_SKETCHES // args.batch)
                    gain = (plain - best) * per_run
                    print(f"{'':<34} {'':<7} {'  compile cost':<28} {first:>8.1f} s; over "
                          f"{EPOCHS} epochs saves {gain:.0f} s: "
                          f"{'pays' if gain > first else 'does not pay'}", flush=True)


if __name__ == "__main__":
    main()

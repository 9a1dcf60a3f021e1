"""Face-parsing throughput: the batched path of `esgar.masks.parsers` against facexlib's usual
one-image-at-a-time use, on CPU, with random-initialised weights (no download needed).

    python bench/bench_parsing.py [--images 32] [--batch 8] [--parser bisenet]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from esgar.masks.parsers import (
    WEIGHTS,
    load_parser,
    parse_batch,
    parse_one_reference,
    prepare_for_batches,
)


def random_weights(name: str, folder: Path) -> None:
    from facexlib.parsing import BiSeNet, ParseNet

    torch.manual_seed(0)
    net = BiSeNet(num_class=19) if name == "bisenet" else ParseNet(512, 512, parsing_ch=19)
    torch.save(net.state_dict(), folder / WEIGHTS[name][0])


def timed(fn, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn(warm=True)
    start = time.perf_counter()
    fn(warm=False)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--parser", default="bisenet", choices=sorted(WEIGHTS))
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    sizes = [(250, 250), (318, 223), (340, 475)]  # FS2K's three photo sizes (H, W)
    images = [rng.integers(0, 255, (*sizes[i % 3], 3), dtype=np.uint8) for i in range(args.images)]
    with tempfile.TemporaryDirectory() as tmp:
        random_weights(args.parser, Path(tmp))
        ref_model = load_parser(args.parser, tmp, "cpu")
        fast_model = prepare_for_batches(load_parser(args.parser, tmp, "cpu"))

    def reference(warm: bool) -> list[np.ndarray]:
        return [parse_one_reference(ref_model, args.parser, im)
                for im in images[:2 if warm else None]]

    def batched(warm: bool) -> list[np.ndarray]:
        todo = images[:args.batch] if warm else images
        out: list[np.ndarray] = []
        for i in range(0, len(todo), args.batch):
            out += parse_batch(fast_model, args.parser, todo[i:i + args.batch])
        return out

    t_ref, t_fast = timed(reference), timed(batched)
    agree = np.mean([np.mean(a == b)
                     for a, b in zip(reference(False), batched(False), strict=True)])
    precision = "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    print(f"| path | images/s |\n|---|---|\n"
          f"| facexlib, one image at a time (fp32) | {args.images / t_ref:.2f} |\n"
          f"| batched (batch {args.batch}, {precision}, channels_last) "
          f"| {args.images / t_fast:.2f} |\n"
          f"speed-up {t_ref / t_fast:.2f}x; pixels labelled the same: {agree:.2%}; "
          f"{args.parser}, {args.images} images, torch {torch.__version__}, "
          f"{os.cpu_count()} cores, {platform.machine()}")


if __name__ == "__main__":
    main()

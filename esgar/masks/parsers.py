"""Face parsing with facexlib (BiSeNet or ParseNet), batched, to canonical label maps.

Weights come from `weights_dir/<file>` when it is there; otherwise facexlib downloads them
into `weights_dir` (or its own folder). Both models take 512x512 RGB; BiSeNet is normalised
with ImageNet's mean and std, ParseNet with mean = std = 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.error import URLError

import cv2
import numpy as np
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from esgar.connectivity import probe_target, reachable, socket_timeout
from esgar.device import resolve_device, resolve_precision
from esgar.errors import ConfigError, EsgarError
from esgar.masks.labels import remap

__all__ = ["PARSERS", "ParserWeightsError", "load_parser", "parse_batch",
           "parse_one_reference", "prepare_for_batches"]

INPUT_SIZE = 512
WEIGHTS: dict[str, tuple[str, str]] = {
    "bisenet": ("parsing_bisenet.pth",
                "https://github.com/xinntao/facexlib/releases/download/v0.2.0/parsing_bisenet.pth"),
    "parsenet": ("parsing_parsenet.pth",
                 "https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth"),
}
DOWNLOAD_TIMEOUT_S = 30.0  # facexlib's download sets none: a silent host would hang it
PARSERS = tuple(WEIGHTS)
NORMALISE: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "bisenet": (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
    "parsenet": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


class ParserWeightsError(EsgarError):
    """The parser's weights are not on disk and cannot be downloaded."""


def _missing_weights(name: str, where: Path, url: str, why: str, point_to: str
                     ) -> ParserWeightsError:
    file = WEIGHTS[name][0]
    return ParserWeightsError(
        f"the {name} face parser needs its weights {file}, which are not at {where} and "
        f"could not be downloaded ({why}).\n"
        f"Download {url} on a machine with network, put it in a folder here and {point_to}.")


def load_parser(name: str, weights_dir: str | Path | None, device: str = "auto",
                point_to: str = "pass that folder as the parser's weights folder") -> nn.Module:
    """facexlib's parsing model `name`, in eval mode on `device`.

    Weights missing from `weights_dir` (or facexlib's own folder) are downloaded by facexlib,
    whose download has no timeout: the host is probed first, so an unreachable or silent one
    fails within seconds with a message saying where to put the file. `point_to` ends that
    message: how the caller's user names the weights folder (the masks stage's setting, the
    command line's option)."""
    if name not in WEIGHTS:
        raise ConfigError(f"unknown parser {name!r}; use one of {', '.join(WEIGHTS)}")
    from facexlib.parsing import init_parsing_model
    from facexlib.utils.misc import ROOT_DIR

    file, url = WEIGHTS[name]
    root = str(Path(weights_dir).resolve()) if weights_dir else None
    local = Path(root or Path(ROOT_DIR) / "facexlib" / "weights") / file
    if not local.is_file():
        reason = reachable(*probe_target(url))
        if reason:
            raise _missing_weights(name, local, url, reason, point_to)
    try:
        with socket_timeout(DOWNLOAD_TIMEOUT_S):
            return init_parsing_model(name, device=str(resolve_device(device)),
                                      model_rootpath=root)
    except (URLError, OSError, RuntimeError) as e:
        if isinstance(e, RuntimeError) and "state_dict" in str(e):
            raise ParserWeightsError(f"{Path(root or '.') / file}: not {name} weights ({e})"
                                     ) from None
        raise _missing_weights(name, local, url, f"{type(e).__name__}: {e}", point_to) from None


def _to_batch(images_bgr: Sequence[np.ndarray], name: str, device: torch.device) -> torch.Tensor:
    """HxWx3 uint8 BGR images -> float [B,3,512,512], normalised for parser `name`."""
    resized = np.stack([cv2.resize(im, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
                        for im in images_bgr])
    x = torch.from_numpy(resized[..., ::-1].copy()).to(device).permute(0, 3, 1, 2).float() / 255
    mean, std = (torch.tensor(v, device=device).view(1, 3, 1, 1) for v in NORMALISE[name])
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def parse_batch(model: nn.Module, name: str, images_bgr: Sequence[np.ndarray],
                precision: str = "auto") -> list[np.ndarray]:
    """Canonical label maps uint8 [H,W], one per image, each at its image's own size.

    precision: `bf16` (autocast; on CPUs with bf16 support this is where the speed comes from),
    `fp32`, or `auto` (bf16 where the device supports it: `esgar.device.resolve_precision`).
    """
    device = next(model.parameters()).device
    with resolve_precision(precision, device).autocast():
        logits = model(_to_batch(images_bgr, name, device))[0]
    labels = logits.argmax(1).to(torch.uint8).cpu().numpy()
    return [remap(cv2.resize(lab, (im.shape[1], im.shape[0]), interpolation=cv2.INTER_NEAREST),
                  name) for lab, im in zip(labels, images_bgr, strict=True)]


@torch.no_grad()
def parse_one_reference(model: nn.Module, name: str, image_bgr: np.ndarray) -> np.ndarray:
    """facexlib's usual one-image-at-a-time use (as in its face helpers), for the benchmark."""
    device = next(model.parameters()).device
    img = cv2.resize(image_bgr, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    x = torch.from_numpy(img[..., ::-1].astype(np.float32).transpose(2, 0, 1).copy()) / 255.0
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in NORMALISE[name])
    x = ((x - mean) / std).unsqueeze(0).to(device)
    out = model(x)[0].argmax(dim=1).squeeze().cpu().numpy().astype(np.uint8)
    out = cv2.resize(out, (image_bgr.shape[1], image_bgr.shape[0]),
                     interpolation=cv2.INTER_NEAREST)
    return remap(out, name)


def prepare_for_batches(model: nn.Module) -> nn.Module:
    """channels_last weights: oneDNN's fast convolution path on CPU, and tensor cores on GPU."""
    return model.to(memory_format=torch.channels_last)

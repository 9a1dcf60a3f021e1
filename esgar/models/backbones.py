"""timm backbones by name, always giving a feature grid [B,C,h,w].

timm's `forward_features` output differs by family and version: CNNs give NCHW, Swin on
timm >= 0.9 gives NHWC ([B,7,7,768] at 224), ViT-like models give tokens [B,P+N,C] with P
prefix (class / register) tokens. `Backbone` normalises all of them to NCHW.

Weights (`pretrained`): True = timm's weights from the Hugging Face hub (or its cache);
a path = a local file (a state_dict, a training checkpoint with a `state_dict` / `model` entry,
or .safetensors; keys of a whole `AttributeModel` are accepted too); False = random init.
When hub weights cannot be had, `create_backbone` raises `PretrainedWeightsError`: it never
falls back to random weights on its own.
"""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import timm
import torch
from torch import nn

from esgar.connectivity import probe_target, reachable
from esgar.errors import ConfigError, EsgarError

__all__ = ["Backbone", "PretrainedWeightsError", "check_backbone_name", "create_backbone",
           "load_local_weights"]

# key prefixes of checkpoints that wrap the backbone (ours: AttributeModel.backbone.model)
_WRAPPER_PREFIXES = ("backbone.model.", "model.", "module.")


class PretrainedWeightsError(EsgarError):
    """Pretrained weights were asked for and could not be loaded."""


class Backbone(nn.Module):
    """A timm model's `forward_features`, as a grid [B, num_features, h, w].

    `mean` and `std` are the input normalisation of the model's timm config (ImageNet's for
    most, others for e.g. CLIP-trained models): images are fed as (x / 255 - mean) / std.
    """

    def __init__(self, model: nn.Module, name: str, img_size: int):
        super().__init__()
        self.model = model
        self.name = name
        self.img_size = img_size
        data_config = timm.data.resolve_model_data_config(model)
        self.mean = tuple(float(v) for v in data_config["mean"])
        self.std = tuple(float(v) for v in data_config["std"])
        self.num_features = int(model.num_features)
        self.num_prefix_tokens = int(getattr(model, "num_prefix_tokens", 0) or 0)
        self.output_fmt = getattr(model, "output_fmt", None)
        self._grid_cache: dict[tuple[int, int], tuple[int, int]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_grid(self.model.forward_features(x), x.shape[-2:])

    def to_grid(self, y: torch.Tensor, input_hw: tuple[int, int]) -> torch.Tensor:
        c = self.num_features
        if y.dim() == 3:  # tokens [B, P+N, C]
            tokens = y[:, self.num_prefix_tokens:]
            h, w = self._token_grid(tokens.shape[1], input_hw)
            return tokens.transpose(1, 2).reshape(y.shape[0], c, h, w)
        if y.dim() != 4:
            raise ValueError(f"{self.name}: forward_features gave shape {tuple(y.shape)}, "
                             "expected a grid or a token sequence")
        if self.output_fmt == "NHWC" or (self.output_fmt is None and y.shape[-1] == c
                                         and y.shape[1] != c):
            y = y.permute(0, 3, 1, 2)
        return y.contiguous()

    def _token_grid(self, n: int, input_hw: tuple[int, int]) -> tuple[int, int]:
        patch = getattr(getattr(self.model, "patch_embed", None), "patch_size", None)
        if patch is not None:
            ph, pw = (patch, patch) if isinstance(patch, int) else patch
            h, w = math.ceil(input_hw[0] / ph), math.ceil(input_hw[1] / pw)
            if h * w == n:
                return h, w
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{self.name}: cannot lay {n} tokens out as a grid")
        return side, side

    def grid_size(self, img_size: int | tuple[int, int] | None = None) -> tuple[int, int]:
        """(h, w) of the grid for a square `img_size` (default: the size it was built for)."""
        hw = img_size if img_size is not None else self.img_size
        hw = (hw, hw) if isinstance(hw, int) else tuple(hw)
        if hw not in self._grid_cache:
            info = getattr(self.model, "feature_info", None)
            r = info[-1].get("reduction") if info else None
            if r and hw[0] % r == 0 and hw[1] % r == 0:
                self._grid_cache[hw] = (hw[0] // r, hw[1] // r)
            else:  # padding makes the reduction inexact: measure it
                self._grid_cache[hw] = tuple(self._probe(hw).shape[-2:])
        return self._grid_cache[hw]

    @torch.no_grad()
    def _probe(self, hw: tuple[int, int]) -> torch.Tensor:
        was_training = self.training
        self.eval()
        try:
            p = next(self.parameters())
            return self(torch.zeros(1, 3, *hw, device=p.device, dtype=p.dtype))
        finally:
            self.train(was_training)


def check_backbone_name(name: str) -> None:
    """ConfigError unless timm knows a model `name`; the message suggests close names."""
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else " (see timm.list_models())"
    raise ConfigError(f"unknown backbone {name!r}: timm has no such model{hint}")


def _timm_model(name: str, img_size: int | None, **kwargs) -> nn.Module:
    """timm.create_model with no classifier; `img_size` goes to the families that take one."""
    if img_size is not None:
        try:
            return timm.create_model(name, num_classes=0, img_size=img_size, **kwargs)
        except TypeError as e:
            if "img_size" not in str(e):
                raise
    return timm.create_model(name, num_classes=0, **kwargs)


def _default_img_size(model: nn.Module) -> int:
    size = (getattr(model, "pretrained_cfg", None) or {}).get("input_size", (3, 224, 224))
    return int(size[-1])


def load_local_weights(model: nn.Module, path: str | Path) -> None:
    """Load a local weights file into a timm model (classifier weights ignored).

    Missing backbone keys are an error; unexpected keys (a classifier, a head) are skipped.
    """
    from timm.models import load_state_dict

    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(f"pretrained weights file {path} does not exist")
    state = load_state_dict(str(path), use_ema=False)
    want = set(model.state_dict())
    if not want & set(state):
        for prefix in _WRAPPER_PREFIXES:
            stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if want & set(stripped):
                state = stripped
                break
    filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    if filter_fn is not None:
        try:
            state = filter_fn(state, model)
        except Exception:  # noqa: BLE001 - filters are written for timm's own checkpoints
            pass
    state = {k: v for k, v in state.items() if k in want}
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys:
        missing = result.missing_keys
        shown = ", ".join(missing[:8]) + (", ..." if len(missing) > 8 else "")
        raise PretrainedWeightsError(
            f"{path} does not hold weights for {type(model).__name__}: {len(missing)} "
            f"of {len(want)} tensors missing ({shown})")


HUB_URL = "https://huggingface.co"


@contextmanager
def _hub_offline_unless_reachable() -> Iterator[None]:
    """The Hugging Face hub asked only when it answers: an unreachable hub (an offline machine)
    puts huggingface_hub in offline mode for the block, so the cache is used and a missing
    file fails at once, instead of after its retries (about 50 s)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or reachable(*probe_target(HUB_URL)) is None:
        yield
        return
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def create_backbone(name: str, pretrained: bool | str | Path = False,
                    img_size: int | None = None) -> Backbone:
    """A timm backbone giving [B,C,h,w] grids; `pretrained`: True (hub), a path, or False.

    img_size: the input size (passed to families that need it, e.g. Swin/ViT); None: the
    model's default (224 for most).
    """
    check_backbone_name(name)
    if img_size is not None and (isinstance(img_size, bool) or not isinstance(img_size, int)
                                 or not 16 <= img_size <= 4096):
        raise ConfigError(f"img_size {img_size!r} is no image side (16 to 4096 pixels)")
    if pretrained is True:
        try:
            with _hub_offline_unless_reachable():
                model = _timm_model(name, img_size, pretrained=True)
        except Exception as e:  # noqa: BLE001 - hub clients raise many kinds; all are re-raised
            if isinstance(e, RuntimeError) and "No pretrained weights exist" in str(e):
                raise PretrainedWeightsError(
                    f"timm has no pretrained weights for {name!r}: set `pretrained: false` "
                    "or point `pretrained` at a local weights file") from e
            first_line = (str(e).strip().splitlines() or [""])[0]
            raise PretrainedWeightsError(
                f"could not get pretrained weights for {name!r} from the Hugging Face hub "
                f"({type(e).__name__}: {first_line}). Set `pretrained: false` to train from "
                "random weights on purpose, or set `pretrained` to the path of a local weights "
                "file (state_dict, checkpoint or .safetensors); hub weights already in the "
                "cache (HF_HOME) are used offline.") from e
    elif pretrained is False or pretrained is None:
        model = _timm_model(name, img_size, pretrained=False)
    elif isinstance(pretrained, (str, Path)):
        model = _timm_model(name, img_size, pretrained=False)
        load_local_weights(model, pretrained)
    else:
        raise TypeError(f"pretrained must be True, False or a path, got {pretrained!r}")
    return Backbone(model, name, img_size or _default_img_size(model))

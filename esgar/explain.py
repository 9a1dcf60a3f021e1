"""Evidence maps: where each attribute's branch looked, over the sketch, as in ESGAR's figure.

    maps, method = evidence_maps(net, images, grids, targets)   # {attribute: float [B,S,S]}
    full = to_sketch_frame(maps["hair"][0], height, width)        # float [H,W], 0 outside crop

Heads with attention (`esg`: the weight of each token in the branch's pooled descriptor; `lsa`:
its cross-attention) give their own maps; the others (`ssp_ssg`, `global`) get Grad-CAM
(pytorch-grad-cam) of the predicted class on the backbone's feature grid, which is also
available for every head with `method="gradcam"`. Maps are scaled to [0, 1] per sketch and
attribute: they show where, not how much.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from esgar import schema
from esgar.errors import ConfigError
from esgar.io import atomic_path
from esgar.visualize import new_figure, save_figure

__all__ = ["METHODS", "evidence_maps", "explain_dataset", "overlay", "to_sketch_frame",
           "write_evidence"]

METHODS = ("auto", "attention", "gradcam")


class _AttributeLogits(nn.Module):
    """images -> the logits of one attribute, the grids held fixed: what Grad-CAM calls."""

    def __init__(self, net: nn.Module, attribute: str, grids: torch.Tensor):
        super().__init__()
        self.net, self.attribute, self.grids = net, attribute, grids

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images, self.grids)[self.attribute]


def _unit(maps: np.ndarray) -> np.ndarray:
    """float [B,H,W] -> each map divided by its maximum (all-zero maps stay zero)."""
    top = maps.reshape(len(maps), -1).max(1).reshape(-1, 1, 1)
    return np.where(top > 0, maps / np.maximum(top, 1e-12), 0.0).astype(np.float32)


def _gradcam(net: nn.Module, images: torch.Tensor, grids: torch.Tensor,
             targets: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    out = {}
    for a, classes in targets.items():
        wrapper = _AttributeLogits(net, a, grids)
        with GradCAM(model=wrapper, target_layers=[net.backbone]) as cam:
            out[a] = cam(input_tensor=images,
                         targets=[ClassifierOutputTarget(int(c)) for c in classes])
    return out


def evidence_maps(net: nn.Module, images: torch.Tensor, grids: torch.Tensor,
                  targets: Mapping[str, np.ndarray], method: str = "auto"
                  ) -> tuple[dict[str, np.ndarray], str]:
    """{attribute: float [B,S,S] in [0,1]} for images [B,3,S,S] and grids [B,R,h,w]; targets:
    {attribute: class index [B]} Grad-CAM explains (the predicted ones, usually). method:
    `auto` (the head's attention if it has any, else Grad-CAM), `attention` or `gradcam`.
    Returns the maps and the method used."""
    if method not in METHODS:
        raise ConfigError(f"evidence method {method!r}: use one of {', '.join(METHODS)}")
    net.eval()
    size = tuple(images.shape[-2:])
    if method != "gradcam":
        with torch.no_grad():
            _, maps = net(images, grids, return_attention=True)
        if maps:
            up = {a: F.interpolate(m[:, None].float(), size=size, mode="bilinear",
                                   align_corners=False)[:, 0].cpu().numpy()
                  for a, m in maps.items()}
            return {a: _unit(m) for a, m in up.items()}, "attention"
        if method == "attention":
            raise ConfigError(f"the {net.config.get('head', '?')} head has no attention maps; "
                              "use gradcam")
    return {a: _unit(m) for a, m in _gradcam(net, images, grids, targets).items()}, "gradcam"


def _crop_box(height: int, width: int, size: int) -> tuple[int, int, int]:
    """(top, left, side) in sketch pixels of the square the model saw: the center crop of the
    short side resized to `size` (`esgar.data.dataset`)."""
    scale = size / min(height, width)
    nh, nw = max(size, round(height * scale)), max(size, round(width * scale))
    top, left = (nh - size) // 2, (nw - size) // 2
    return round(top / scale), round(left / scale), min(height, width)


def to_sketch_frame(evidence: np.ndarray, height: int, width: int) -> np.ndarray:
    """float [S,S] over the model's input crop -> float [height,width] over the whole sketch,
    zero where the model saw nothing."""
    top, left, side = _crop_box(height, width, evidence.shape[-1])
    out = np.zeros((height, width), np.float32)
    im = Image.fromarray(np.asarray(evidence, np.float32), mode="F")
    patch = np.asarray(im.resize((side, side), Image.Resampling.BILINEAR))
    out[top:top + side, left:left + side] = patch[:height - top, :width - left]
    return out


def overlay(sketch: np.ndarray, evidence: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8 [H,W,3] sketch and float [H,W] map in [0,1] -> uint8 [H,W,3] heat overlay."""
    heat = colormaps["jet"](np.clip(evidence, 0, 1))[..., :3] * 255
    mix = (1 - alpha) * sketch.astype(np.float32) + alpha * heat
    return np.clip(mix, 0, 255).round().astype(np.uint8)


def _panel_grid(panels: list[tuple[str, np.ndarray]], aspect: float, cols: int,
                width_in: float = 2.6, title_in: float = 0.3, top_in: float = 0.4):
    """A figure of titled images in rows of `cols`, laid out in inches: each image
    `width_in` wide and `aspect` (height / width) as tall, with a band of `title_in` above it
    for its own title, so no title falls on the row above; `top_in` for the figure's title."""
    rows = -(-len(panels) // cols)
    cell_h = width_in * aspect
    fig_w, fig_h = cols * width_in + (cols + 1) * 0.1, top_in + rows * (title_in + cell_h) + 0.1
    fig = new_figure((fig_w, fig_h), dpi=100)
    for k, (title, image) in enumerate(panels):
        r, c = divmod(k, cols)
        left = (0.1 + c * (width_in + 0.1)) / fig_w
        bottom = (fig_h - top_in - (r + 1) * (title_in + cell_h)) / fig_h
        ax = fig.add_axes((left, bottom, width_in / fig_w, cell_h / fig_h))
        ax.imshow(image)
        ax.set_title(title, fontsize=8, pad=3)
        ax.axis("off")
    return fig


def write_evidence(out_dir: str | Path, name: str, sketch: np.ndarray,
                   maps: Mapping[str, np.ndarray], probs: Mapping[str, np.ndarray],
                   method: str) -> Path:
    """For one sketch (uint8 [H,W,3]) and its maps {attribute: float [H,W]}: `<name>.png`, a
    grid of the sketch and one overlay per attribute titled with the predicted class, and
    `<name>/<attribute>.png` (each overlay at the sketch's size) and `<name>/maps.npz`."""
    out_dir = Path(out_dir)
    own = out_dir / name
    own.mkdir(parents=True, exist_ok=True)
    for a, m in maps.items():
        with atomic_path(own / f"{a}.png") as tmp:
            Image.fromarray(overlay(sketch, m)).save(tmp, format="png")
    with atomic_path(own / "maps.npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **{a: m.astype(np.float16) for a, m in maps.items()})
    attrs = list(maps)
    h, w = sketch.shape[:2]
    panels = [(name, sketch)] + [
        (f"{a}: {schema.attribute(a).classes[int(np.argmax(probs[a]))]} "
         f"({float(np.max(probs[a])):.2f})", overlay(sketch, maps[a])) for a in attrs]
    fig = _panel_grid(panels, h / w, cols=4)
    fig.suptitle(f"evidence per attribute ({'attention' if method == 'attention' else 'Grad-CAM'}"
                 f" of the predicted class)", fontsize=9, y=1 - 0.12 / fig.get_figheight())
    return save_figure(fig, out_dir / f"{name}.png")


def explain_dataset(net: nn.Module, ds: Dataset, probs: Mapping[str, np.ndarray],
                    out_dir: str | Path, batch_size: int = 16, method: str = "auto"
                    ) -> list[Path]:
    """Evidence maps of every item of `ds` (a `SketchDataset`; its table needs `name` and
    `sketch_path`), explaining the classes `probs` ({attribute: float [N,C]}, in `ds` order)
    predict; one `write_evidence` per sketch. Returns the grid PNGs."""
    device = next(net.parameters()).device
    written: list[Path] = []
    for batch in DataLoader(ds, batch_size=batch_size):
        index = np.asarray(batch["index"])
        targets = {a: p[index].argmax(1) for a, p in probs.items()}
        maps, used = evidence_maps(net, batch["image"].to(device), batch["grids"].to(device),
                                   targets, method)
        for b, i in enumerate(index):
            row = ds.table.iloc[int(i)]
            with Image.open(row["sketch_path"]) as im:
                sketch = np.array(im.convert("RGB"))
            h, w = sketch.shape[:2]
            full = {a: to_sketch_frame(m[b], h, w) for a, m in maps.items()}
            written.append(write_evidence(out_dir, row["name"], sketch, full,
                                          {a: p[int(i)] for a, p in probs.items()}, used))
    return written


"""Sketches, their region masks and labels as a torch Dataset, augmented jointly.

Geometry follows ESGAR: resize the short side to `img_size`, then a random crop of
`img_size` x `img_size` and a random horizontal flip for training, a center crop for
evaluation (the same scale in both, unlike the authors' release). Image and region masks go
through the same resize, crop and flip; the token grid the model needs is computed from the
augmented masks (pooling, not re-parsing).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from esgar import schema
from esgar.errors import ConfigError
from esgar.masks.grids import token_grid
from esgar.masks.importer import MaskError
from esgar.masks.store import load_region_masks, read_meta, region_names

__all__ = ["SketchDataset"]


def _resize_short_side(image: torch.Tensor, masks: torch.Tensor, size: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """image uint8 [3,H,W], masks bool [R,H,W] -> short side `size` (bilinear / nearest)."""
    h, w = image.shape[-2:]
    scale = size / min(h, w)
    new = (max(size, round(h * scale)), max(size, round(w * scale)))
    image = F.interpolate(image[None].float(), size=new, mode="bilinear", antialias=True,
                          align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
    masks = F.interpolate(masks[None].to(torch.uint8), size=new, mode="nearest")[0].bool()
    return image, masks


class SketchDataset(Dataset):
    """Items: `image` float [3,S,S] (normalised), `grids` float [R,gh,gw], `labels` long [A],
    `index` (row of `table`).

    table: the sample table rows to serve. mask_dir: the mask store (None: all-ones masks,
    for heads that use none). region_names: the store's regions to serve, in this order.
    mean, std: the model's input normalisation (`AttributeModel.mean` / `.std`, from the
    backbone's timm config). cache: keep decoded, resized images and masks in memory (fast
    epochs on CPU).
    """

    def __init__(self, table: pd.DataFrame, mask_dir: str | Path | None,
                 region_names: Sequence[str], img_size: int, grid: tuple[int, int],
                 train: bool, *, mean: Sequence[float], std: Sequence[float],
                 cache: bool = True, attributes: Sequence[str] | None = None):
        self.table = table.reset_index(drop=True)
        self.mask_dir = Path(mask_dir) if mask_dir is not None else None
        self.region_names = tuple(region_names)
        self.img_size, self.grid, self.train = img_size, tuple(grid), train
        # pooled by the rule the store's grids were made with (masks.grid_rule)
        self.grid_rule = read_meta(mask_dir)["grid_rule"] if mask_dir is not None else "soft"
        attributes = schema.ATTRIBUTE_NAMES if attributes is None else attributes
        self.labels = torch.tensor(self.table[list(attributes)].to_numpy(np.int64))
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = {} if cache else None
        self._region_index: list[int] | None = None
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    @classmethod
    def for_model(cls, net: Any, table: pd.DataFrame, mask_dir: str | Path | None, train: bool,
                  cache: bool = True) -> SketchDataset:
        """The dataset an `AttributeModel` takes: its regions, input size, grid and
        normalisation."""
        return cls(table, mask_dir, net.region_names, net.backbone.img_size, net.grid_size,
                   train, mean=net.mean, std=net.std, cache=cache, attributes=net.attributes)

    def __len__(self) -> int:
        return len(self.table)

    def _store_regions(self) -> list[int]:
        if self._region_index is None:
            have = region_names(self.mask_dir)
            missing = [r for r in self.region_names if r not in have]
            if missing:
                raise ConfigError(f"{self.mask_dir}: the mask store has no region(s) "
                                  f"{', '.join(missing)}; it has {', '.join(have)}")
            self._region_index = [have.index(r) for r in self.region_names]
        return self._region_index

    def _load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 image [3,h,w] and bool masks [R,h,w], short side already `img_size`."""
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        row = self.table.iloc[i]
        with Image.open(row["sketch_path"]) as im:
            rgb = np.array(im.convert("RGB"))  # writable: torch warns on read-only arrays
        image = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
        if self.mask_dir is None:
            masks = torch.ones((len(self.region_names), *image.shape[-2:]), dtype=torch.bool)
        else:
            all_masks = load_region_masks(self.mask_dir, row["sample_id"])
            if all_masks.shape[-2:] != tuple(image.shape[-2:]):
                raise MaskError(f"{self.mask_dir}: masks of {row['sample_id']} are "
                                 f"{all_masks.shape[-1]}x{all_masks.shape[-2]}, its sketch "
                                 f"{row['sketch_path']} is {image.shape[-1]}x{image.shape[-2]}")
            masks = torch.from_numpy(all_masks[self._store_regions()])
        item = _resize_short_side(image, masks, self.img_size)
        if self._cache is not None:
            self._cache[i] = item
        return item

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | int]:
        image, masks = self._load(i)
        h, w = image.shape[-2:]
        s = self.img_size
        if self.train:
            top = int(torch.randint(0, h - s + 1, ()))
            left = int(torch.randint(0, w - s + 1, ()))
            flip = bool(torch.rand(()) < 0.5)
        else:
            top, left, flip = (h - s) // 2, (w - s) // 2, False
        image = image[:, top:top + s, left:left + s]
        masks = masks[:, top:top + s, left:left + s]
        if flip:
            image, masks = image.flip(-1), masks.flip(-1)
        x = (image.float() / 255.0 - self.mean) / self.std
        grids = torch.as_tensor(token_grid(masks.float(), self.grid, rule=self.grid_rule))
        return {"image": x, "grids": grids.float(), "labels": self.labels[i], "index": i}

"""Joint augmentation (esgar/data/dataset.py): a sketch and its region masks are cropped and
flipped together, and the token grids come from the augmented masks.

The sketch carries a random binary pattern and its first region mask is exactly that pattern,
so any crop or flip that reaches one and not the other shows as misaligned pixels; the pattern
also tells which crop and flip the dataset drew, so the grids can be recomputed from scratch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from esgar.data.dataset import SketchDataset
from esgar.masks.grids import eval_crop, token_grid
from esgar.masks.store import write_meta, write_region_masks

SIZE, GRID = 32, (4, 4)
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _store(tmp_path, shapes: dict[str, tuple[int, int]]) -> tuple[pd.DataFrame, dict]:
    """One sketch per (sample id: (h, w)): black where a seeded random pattern is set. Regions:
    `mark` (the pattern), `left` (the left half of the sketch: flips move it), `all`."""
    rng = np.random.default_rng(7)
    store, rows, masks_of = tmp_path / "masks", [], {}
    for sample_id, (h, w) in shapes.items():
        pattern = rng.random((h, w)) < 0.3
        left = np.zeros((h, w), bool)
        left[:, : w // 2] = True
        masks = np.stack([pattern, left, np.ones((h, w), bool)])
        rgb = np.where(pattern, 0, 255).astype(np.uint8)
        path = tmp_path / f"{sample_id}.png"
        Image.fromarray(np.stack([rgb] * 3, -1)).save(path)
        write_region_masks(store, sample_id, masks)
        rows.append({"sample_id": sample_id, "sketch_path": str(path), "hair": 0})
        masks_of[sample_id] = masks
    write_meta(store, {"regions": [{"name": n} for n in ("mark", "left", "all")],
                       "grid_rule": "esgar"})
    return pd.DataFrame(rows), {"store": store, "masks": masks_of}


def _dataset(table, store, train: bool) -> SketchDataset:
    return SketchDataset(table, store, ("mark", "left", "all"), SIZE, GRID, train,
                         mean=MEAN, std=STD, attributes=("hair",))


def _dark(item: dict) -> np.ndarray:
    """bool [S,S]: the pixels of the served (normalised) image that are black."""
    rgb = item["image"] * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
    return (rgb.mean(0) < 0.5).numpy()


def _find_crop(source: np.ndarray, dark: np.ndarray) -> tuple[int, int, bool]:
    """The one (top, left, flip) that turns the source pattern into the served one."""
    h, w = source.shape
    found = [(t, x, f) for t in range(h - SIZE + 1) for x in range(w - SIZE + 1)
             for f in (False, True)
             if np.array_equal(_view(source, t, x, f), dark)]
    assert len(found) == 1, f"the served image is {len(found)} crops of the sketch, not one"
    return found[0]


def _view(a: np.ndarray, top: int, left: int, flip: bool) -> np.ndarray:
    out = a[..., top:top + SIZE, left:left + SIZE]
    return out[..., ::-1] if flip else out


# sketches whose short side is already SIZE (resizing is then the identity): a tall one
# crops vertically, a wide one horizontally; flips are horizontal for both
SHAPES = {"tall": (48, SIZE), "wide": (SIZE, 56)}


def test_training_crops_and_flips_the_sketch_and_its_masks_together(tmp_path):
    table, s = _store(tmp_path, SHAPES)
    ds = _dataset(table, s["store"], train=True)
    torch.manual_seed(0)
    drawn = {sid: set() for sid in SHAPES}
    for _ in range(40):
        for i, sid in enumerate(table["sample_id"]):
            item = ds[i]
            dark = _dark(item)
            source = s["masks"][sid]
            top, left, flip = _find_crop(source[0], dark)
            drawn[sid].add((top, left, flip))
            expected = np.ascontiguousarray(_view(source, top, left, flip))
            # grids of the served item = grids computed from scratch on the same crop of the
            # masks: the `mark` grid follows the image, the `left` grid follows the flip
            np.testing.assert_allclose(item["grids"].numpy(), token_grid(expected, GRID),
                                       atol=1e-6, err_msg=f"{sid}: top {top}, left {left}, "
                                                          f"flip {flip}")
    for sid, crops in drawn.items():
        assert {f for _, _, f in crops} == {False, True}, f"{sid}: never flipped, or always"
        assert len({(t, x) for t, x, _ in crops}) >= 5, f"{sid}: the crop hardly moves"


def test_a_flip_moves_the_left_region_to_the_right(tmp_path):
    """The masks, not only the image, are flipped: the `left` region's grid mirrors."""
    table, s = _store(tmp_path, {"square": (SIZE, SIZE)})
    ds = _dataset(table, s["store"], train=True)
    torch.manual_seed(0)
    sides = set()
    for _ in range(30):
        item = ds[0]
        _, _, flip = _find_crop(s["masks"]["square"][0], _dark(item))
        left_grid = item["grids"][1].numpy()
        covered = "right" if flip else "left"
        half = GRID[1] // 2
        assert (left_grid[:, half:] if flip else left_grid[:, :half]).min() == 1.0, covered
        assert (left_grid[:, :half] if flip else left_grid[:, half:]).max() == 0.0, covered
        sides.add(covered)
    assert sides == {"left", "right"}


@pytest.mark.parametrize("shape", [(96, 64), (64, 100), (SIZE, SIZE)])
def test_evaluation_serves_the_grids_the_mask_store_keeps(tmp_path, shape):
    """No augmentation at evaluation: resize and center crop, the same geometry as the store's
    grids (`eval_crop`), so a served item's grids equal the stored ones, resized or not."""
    table, s = _store(tmp_path, {"x": shape})
    ds = _dataset(table, s["store"], train=False)
    first, again = ds[0], ds[0]
    assert torch.equal(first["image"], again["image"])
    expected = token_grid(eval_crop(s["masks"]["x"], SIZE), GRID)
    np.testing.assert_allclose(first["grids"].numpy(), expected, atol=1e-6)

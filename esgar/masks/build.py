"""Building the mask store: label maps (parsed or imported) -> regions -> fallback -> grids.

    source = imported_masks(table, "data/fs2k/parsing/bisenet", "label_maps", "bisenet",
                            region_names, problems=problems)          # or parsed_masks(...)
    index = build_store("data/masks", table, source, regions, fallback, grids=[(7, 7)],
                        grid_rule="esgar", grid_image_size=224, meta={"source": "import"})

A source yields, per row of the sample table, a canonical label map uint8 [H,W], region masks
bool [R,H,W], or None (no mask: all regions empty). The store is built in a folder beside its
destination and swapped in whole (`esgar.io.building_dir`), so a failed run leaves the previous
store as it was. The format is documented in `esgar.masks.store`.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch import nn

from esgar.io import building_dir
from esgar.log import progress
from esgar.masks import store
from esgar.masks.grids import eval_crop, token_grid
from esgar.masks.importer import MaskError, MissingMaskError, read_label_map, read_region_folder
from esgar.masks.parsers import load_parser, parse_batch, prepare_for_batches
from esgar.masks.regions import apply_fallback, bits_to_masks, label_to_bits, region_lut

__all__ = ["IMPORT_FORMATS", "MASK_SOURCES", "MaskSource", "build_store", "imported_masks",
           "parsed_masks", "resolve_source"]

MASK_SOURCES = ("auto", "facexlib", "import")
IMPORT_FORMATS = ("label_maps", "region_folders")
OWNER = "masks"
MaskSource = Iterable[tuple[int, np.ndarray | None]]


def resolve_source(source: str, import_dir: str | Path) -> str:
    """`auto` -> `import` when `import_dir` exists (synthetic FS2K ships exact label maps
    there), else `facexlib`; other sources are returned as they are."""
    if source not in MASK_SOURCES:
        raise MaskError(f"mask source {source!r}: use one of {', '.join(MASK_SOURCES)}")
    if source == "auto":
        return "import" if Path(import_dir).is_dir() else "facexlib"
    return source


def _read_images(paths: Sequence[str]) -> list[np.ndarray]:
    images = []
    for path in paths:
        im = cv2.imread(path, cv2.IMREAD_COLOR)
        if im is None:
            raise MaskError(f"{path}: cannot read the image to parse")
        images.append(im)
    return images


_WORKER: dict[str, Any] = {}  # a parsing worker's parser, loaded once per process


def _start_worker(parser: str, weights_dir: str | None, device: str, precision: str,
                  threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER.update(model=prepare_for_batches(load_parser(parser, weights_dir, device)),
                   parser=parser, precision=precision)


def _parse_paths(paths: list[str]) -> list[np.ndarray]:
    return parse_batch(_WORKER["model"], _WORKER["parser"], _read_images(paths),
                       _WORKER["precision"])


def parsed_masks(table: pd.DataFrame, parser: str, weights_dir: str | Path | None,
                 device: str, batch_size: int, precision: str, parse_input: str = "photo",
                 model: nn.Module | None = None, point_to: str | None = None,
                 processes: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """(row, canonical label map uint8 [H,W]) per sample, parsed by facexlib in batches from
    the `<parse_input>_path` column (photo or sketch). `model`: the parser already loaded by
    `load_parser` (else it is loaded here from `weights_dir`; `point_to`: how the user names
    that folder, for the message when its weights are missing).

    processes: batches parsed at once, each worker process with its own parser and an equal
    share of this process's CPU threads; the label maps come back in row order as they are
    done (a few batches in flight, never the whole set), the same as one process parsing with
    that many threads. The weights are checked here before any worker starts."""
    if model is None:
        model = load_parser(parser, weights_dir or None, device,
                            **({"point_to": point_to} if point_to else {}))
    paths = table[f"{parse_input}_path"].astype(str).tolist()
    batches = [paths[s:s + batch_size] for s in range(0, len(paths), batch_size)]
    if processes > 1 and len(batches) > 1:
        threads = max(1, torch.get_num_threads() // processes)
        weights = None if not weights_dir else str(weights_dir)
        # spawn: a fork of a process that has run torch's thread pools can hang
        workers = min(processes, len(batches))
        with multiprocessing.get_context("spawn").Pool(
                workers, _start_worker, (parser, weights, device, precision, threads)) as pool:
            pending: deque = deque()  # (first row, its batch's labels to come), in row order
            for b, batch in enumerate(batches):
                pending.append((b * batch_size, pool.apply_async(_parse_paths, (batch,))))
                while len(pending) > 2 * workers or (b == len(batches) - 1 and pending):
                    start, labels = pending.popleft()
                    for k, label in enumerate(labels.get()):
                        yield start + k, label
        return
    model = prepare_for_batches(model)
    for b, batch in enumerate(batches):
        for k, label in enumerate(parse_batch(model, parser, _read_images(batch), precision)):
            yield b * batch_size + k, label


def imported_masks(table: pd.DataFrame, folder: str | Path, fmt: str, label_order: str,
                   region_names: Sequence[str], missing_sample: str = "error",
                   missing_region: str = "error", problems: list[str] | None = None
                   ) -> Iterator[tuple[int, np.ndarray | None]]:
    """(row, canonical label map [H,W] or bool masks [R,H,W]) per sample, read from `folder`.

    fmt: `label_maps` or `region_folders` (layouts in `esgar.masks.importer`).
    missing_sample: `error`, or `empty` (a sample without a mask file yields None and its
    problem is appended to `problems`). missing_region: see `read_region_folder`.
    """
    if fmt not in IMPORT_FORMATS:
        raise MaskError(f"mask import format {fmt!r}: use one of {', '.join(IMPORT_FORMATS)}")
    root = Path(folder)
    for i, row in enumerate(table.itertuples()):
        size = (int(row.width), int(row.height))
        try:
            if fmt == "label_maps":
                yield i, read_label_map(root / f"{row.image_name}.png", label_order, size)
            else:
                yield i, read_region_folder(root, row.image_name, region_names, size,
                                            missing_region)
        except MissingMaskError as e:
            if missing_sample != "empty":
                raise
            if problems is not None:
                problems.append(str(e))
            yield i, None


def _region_masks(got: np.ndarray | None, lut: np.ndarray, n: int, shape: tuple[int, int]
                  ) -> np.ndarray:
    if got is None:
        return np.zeros((n, *shape), bool)
    if got.ndim == 2:
        return bits_to_masks(label_to_bits(got, lut), n)
    return got


def build_store(out: str | Path, table: pd.DataFrame, source: MaskSource,
                regions: Mapping[str, Sequence[str]], fallback: Mapping[str, str],
                grids: Sequence[tuple[int, int]], grid_rule: str, grid_image_size: int,
                meta: Mapping[str, Any], desc: str | None = "masks") -> pd.DataFrame:
    """Write the mask store for `table` from `source` at `out` (replaced whole) and return its
    index: sample_id, split, path, `area_<region>` (share of pixels before fallback) and
    `fell_back_<region>`. `fallback`: region -> wider region filling it when empty ({}: none).
    `meta`: what made the masks (source, parser...), stored in meta.json with the regions,
    grids and fallbacks. `desc`: the progress bar's label (None: no bar)."""
    names = list(regions)
    lut = region_lut(regions)
    rows, grid_arrays = [], {tuple(g): [] for g in grids}
    with building_dir(out, OWNER) as tmp:
        for i, got in progress(source, total=len(table), desc=desc, unit="img",
                                 disable=desc is None):
            row = table.iloc[i]
            masks = _region_masks(got, lut, len(names), (int(row.height), int(row.width)))
            areas = masks.reshape(len(names), -1).mean(1)
            masks, fell = apply_fallback(masks, names, fallback)
            store.write_region_masks(tmp, row.sample_id, masks)
            crop = eval_crop(masks, grid_image_size)
            for g, arrays in grid_arrays.items():
                arrays.append(token_grid(crop, g, grid_rule))
            rows.append({"sample_id": row.sample_id, "split": row.split,
                         "path": store.region_png(out, row.sample_id).as_posix(),
                         **{f"area_{r}": float(a) for r, a in zip(names, areas, strict=True)},
                         **{f"fell_back_{r}": r in fell for r in names}})
        index = pd.DataFrame(rows)
        store.write_index(tmp, index)
        for g, arrays in grid_arrays.items():
            store.write_grids(tmp, g, np.stack(arrays))
        store.write_meta(tmp, {
            **meta, "regions": [{"name": r, "classes": list(c)} for r, c in regions.items()],
            "grids": [list(g) for g in grid_arrays], "grid_rule": grid_rule,
            "grid_image_size": grid_image_size, "fallback": dict(fallback),
            "samples": len(index)})
    return index

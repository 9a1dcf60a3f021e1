"""Each dataset's reader, layout check and synthetic stand-in, by name (`esgar.data.datasets`),
and the copy of a local folder into the pipeline's data folder: what the download and prepare
stages call."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from esgar.data import celeba, lfwa
from esgar.data import synthetic_faces as sf
from esgar.data.datasets import dataset_schema
from esgar.data.fs2k import read_fs2k

__all__ = ["check_layout", "place_copy", "read_dataset", "synthetic_dataset"]


def check_layout(dataset: str, root: str | Path) -> None:
    """DatasetError naming what `root` lacks to be `dataset`'s folder (before any copying)."""
    root = Path(root)
    if dataset == "celeba":
        celeba.find_celeba_files(root)
    elif dataset == "celebamask_hq":
        celeba.find_celebamask_hq_files(root, None)
        if not (root / celeba.HQ_MASK_FOLDER).is_dir():
            raise celeba.DatasetError(f"{root / celeba.HQ_MASK_FOLDER}: missing (the part "
                                      "masks, <k // 2000>/<%05d k>_<part>.png)")
    elif dataset == "lfwa":
        lfwa.find_lfwa_files(root)
    else:
        raise ValueError(f"{dataset}: not a licensed dataset")


def read_dataset(dataset: str, root: str | Path, progress: bool = True
                 ) -> tuple[pd.DataFrame, Any]:
    """(table, report) of the dataset folder `root` by `dataset`'s reader."""
    if dataset == "fs2k":
        return read_fs2k(root, progress=progress)
    read = {"celeba": celeba.read_celeba, "celebamask_hq": celeba.read_celebamask_hq,
            "lfwa": lfwa.read_lfwa}[dataset]
    return read(root, dataset_schema(dataset), progress=progress)


def synthetic_dataset(dataset: str, out_dir: str | Path, images: int, seed: int
                      ) -> dict[str, Any]:
    """Write `dataset`'s synthetic stand-in (one of `LICENSED`) into the new folder `out_dir`."""
    make = {"celeba": sf.generate_celeba, "celebamask_hq": sf.generate_celebamask_hq,
            "lfwa": sf.generate_lfwa}[dataset]
    return make(out_dir, images=images, seed=seed)


def place_copy(src: str | Path, dest: str | Path) -> int:
    """Copy the folder `src` to the new `dest`, hard-linking files where the file system allows
    (a dataset of 200,000 images costs no space twice); the number of files."""
    n = 0

    def link_or_copy(a: str, b: str) -> None:
        nonlocal n
        n += 1
        try:
            os.link(a, b)
        except OSError:  # another device, or links not allowed
            shutil.copy2(a, b)

    shutil.copytree(src, dest, copy_function=link_or_copy, symlinks=False)
    return n

"""The datasets the pipeline reads: the attribute schema each carries, the folder the download
stage places it in, how it is read, and its synthetic stand-in.

CelebAMask-HQ's images are CelebA's (CelebA-HQ), annotated with CelebA's 40 attributes, so the
two share a schema; LFWA carries the same 40 in its own release. CelebA, CelebAMask-HQ and LFWA
are licensed for research and are not downloaded here: the download stage takes a local copy
(a folder in the published layout), checks its layout, and says what is missing. Reading,
checking and making them: `esgar.data.readers` (apart, as every stage's params check imports
this module).
"""

from __future__ import annotations

from dataclasses import dataclass

from esgar.schema import Schema, load_schema

__all__ = ["DATASETS", "LICENSED", "Dataset", "dataset_schema"]


@dataclass(frozen=True)
class Dataset:
    name: str
    schema: str  # esgar/schemas/<schema>.yaml
    folder: str  # under data.out: FS2K/, CelebA/...
    get_it: str  # where a researcher obtains it ("" for FS2K: the download stage fetches it)


_ALL = (
    Dataset("fs2k", "fs2k", "FS2K", ""),
    Dataset("celeba", "celeba", "CelebA",
            "CelebA's site (mmlab.ie.cuhk.edu.hk/projects/CelebA.html): Img/img_align_celeba, "
            "Anno/list_attr_celeba.txt, Eval/list_eval_partition.txt"),
    Dataset("celebamask_hq", "celeba", "CelebAMask-HQ",
            "github.com/switchablenorms/CelebAMask-HQ (the CelebAMask-HQ folder), with CelebA's "
            "Eval/list_eval_partition.txt copied into it"),
    Dataset("lfwa", "lfwa", "LFWA",
            "the LFWA+ release linked from CelebA's site: lfw/, lfw_att_40.mat, "
            "indices_train_test.mat in one folder"),
)
DATASETS: dict[str, Dataset] = {d.name: d for d in _ALL}
LICENSED: tuple[str, ...] = tuple(d.name for d in _ALL if d.get_it)


def dataset_schema(dataset: str) -> Schema:
    """The schema of `dataset` (one of `DATASETS`); KeyError naming the known ones."""
    try:
        return load_schema(DATASETS[dataset].schema)
    except KeyError:
        raise KeyError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}") from None

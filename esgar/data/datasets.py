"""The datasets the pipeline reads, and the attribute schema each one carries.

CelebAMask-HQ's images are CelebA's (CelebA-HQ), annotated with CelebA's 40 attributes, so the
two share a schema; LFWA carries the same 40 in its own release.
"""

from __future__ import annotations

from esgar.schema import Schema, load_schema

__all__ = ["DATASETS", "dataset_schema"]

# dataset -> the schema it carries (esgar/schemas/<name>.yaml)
DATASETS: dict[str, str] = {"fs2k": "fs2k", "celeba": "celeba", "celebamask_hq": "celeba",
                            "lfwa": "lfwa"}


def dataset_schema(dataset: str) -> Schema:
    """The schema of `dataset` (one of `DATASETS`); KeyError naming the known ones."""
    try:
        return load_schema(DATASETS[dataset])
    except KeyError:
        raise KeyError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}") from None

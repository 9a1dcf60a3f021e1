"""The attribute schema: which attributes a dataset has, their classes, the face region each
attribute's branch sees, and which class is the minority.

A schema is data, not code: `esgar/schemas/<name>.yaml` describes FS2K (7 multi-class
attributes), CelebA and LFWA (40 binary ones), and a user's own file describes any other set
(`load_schema(path)`). One dataset is in use per process (a stage, a flow, a server): the
params file's `data.dataset` picks it when the params are loaded, a sample table or a model
that names another one is refused. `schema.ATTRIBUTES`, `ATTRIBUTE_NAMES`, `BY_NAME` and
`PAPER_ATTRIBUTES` are the schema in use (FS2K unless another was chosen); the functions of
the package read them, so passing a schema through every call is not needed.

The FS2K constants below (`COLOR_FIELDS`, `FS2K_COUNTS`...) are facts of FS2K, whatever
schema is in use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from esgar.errors import ConfigError

# also ATTRIBUTES, ATTRIBUTE_NAMES, BY_NAME, PAPER_ATTRIBUTES: the schema in use (__getattr__)
__all__ = ["Attribute", "COLOR_FIELDS", "FS2K", "FS2K_COUNTS", "FS2K_PAIRS", "SPLITS", "Schema",
           "active", "attribute", "known_datasets", "load_schema", "use", "using"]


@dataclass(frozen=True)
class Attribute:
    """An attribute and its class names in class-index order. `region` is the face region its
    branch sees by default (`model.attribute_regions` in params.yaml overrides it)."""

    name: str
    classes: tuple[str, ...]
    region: str = "foreground"

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class Schema:
    """A dataset's attributes. `splits`: the splits the dataset itself assigns (a `val` missing
    from them is carved out of `train`). `counts`: published class counts per split, where the
    dataset states them (the minority class is the smallest; else the training labels')."""

    name: str
    attributes: tuple[Attribute, ...]
    paper_attributes: tuple[str, ...]
    splits: tuple[str, ...] = ("train", "test")
    counts: Mapping[str, Mapping[str, tuple[int, ...]]] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    @property
    def by_name(self) -> dict[str, Attribute]:
        return {a.name: a for a in self.attributes}

    @property
    def regions(self) -> dict[str, str]:
        """attribute -> the region its branch sees by default."""
        return {a.name: a.region for a in self.attributes}

    def attribute(self, name: str) -> Attribute:
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"unknown attribute {name!r} of {self.name}; known: "
                           f"{', '.join(self.names)}") from None

    def minority(self, name: str, labels: Sequence[int] | np.ndarray | None = None) -> int:
        """The minority class of attribute `name`: the smallest of the published training
        counts, else of `labels` (class indices, e.g. the training labels)."""
        counts = self.counts.get("train", {}).get(name)
        if counts is None:
            if labels is None:
                raise ValueError(f"{self.name} publishes no class counts; give the labels to "
                                 f"find {name}'s minority class")
            counts = np.bincount(np.asarray(labels, np.int64),
                                 minlength=self.attribute(name).num_classes)
        return int(np.argmin(counts))

    def to_dict(self) -> dict[str, Any]:
        """The description as in a schema file (`from_dict` reads it back)."""
        out: dict[str, Any] = {
            "name": self.name, "paper_attributes": list(self.paper_attributes),
            "splits": list(self.splits),
            "attributes": {a.name: {"classes": list(a.classes), "region": a.region}
                           for a in self.attributes}}
        if self.counts:
            out["counts"] = {s: {a: list(c) for a, c in per.items()}
                             for s, per in self.counts.items()}
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str = "schema") -> Schema:
        """A schema from its description; ConfigError naming `where` and the problem."""
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected a mapping with name and attributes")
        unknown = sorted(set(d) - {"name", "paper_attributes", "splits", "attributes",
                                   "counts"})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
        name, attrs = d.get("name"), d.get("attributes")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: name missing")
        if not isinstance(attrs, dict) or not attrs:
            raise ConfigError(f"{where}: attributes missing (name: {{classes: [...], "
                              "region: ...}} each)")
        attributes = []
        for a, spec in attrs.items():
            classes = spec.get("classes") if isinstance(spec, dict) else None
            if (not isinstance(classes, list) or len(classes) < 2
                    or not all(isinstance(c, str) and c for c in classes)
                    or len(set(classes)) != len(classes)):
                raise ConfigError(f"{where}: attribute {a}: classes must be two or more "
                                  "distinct names (quote yes/no: YAML reads them as booleans)")
            region = spec.get("region", "foreground")
            if not isinstance(region, str):
                raise ConfigError(f"{where}: attribute {a}: region must be a region's name")
            attributes.append(Attribute(str(a), tuple(classes), region))
        names = [a.name for a in attributes]
        paper = d.get("paper_attributes", "all")
        paper = names if paper == "all" else paper
        if not isinstance(paper, list) or any(p not in names for p in paper):
            raise ConfigError(f"{where}: paper_attributes must be 'all' or attributes of the "
                              "schema")
        splits = d.get("splits", ["train", "test"])
        if (not isinstance(splits, list) or "train" not in splits or "test" not in splits
                or any(s not in SPLITS for s in splits)):
            raise ConfigError(f"{where}: splits must hold train and test (and may hold val)")
        counts = d.get("counts") or {}
        for s, per in counts.items():
            for a, c in (per or {}).items():
                k = attributes[names.index(a)].num_classes if a in names else None
                if k is None or not isinstance(c, list) or len(c) != k:
                    raise ConfigError(f"{where}: counts.{s}.{a}: one count per class of an "
                                      "attribute of the schema")
        return cls(name, tuple(attributes), tuple(paper), tuple(splits),
                   {s: {a: tuple(c) for a, c in per.items()} for s, per in counts.items()})


def known_datasets() -> tuple[str, ...]:
    """The datasets described in the package (`esgar/schemas/*.yaml`)."""
    return tuple(sorted(p.name.removesuffix(".yaml")
                        for p in resources.files("esgar").joinpath("schemas").iterdir()
                        if p.name.endswith(".yaml")))


def load_schema(name_or_path: str | Path) -> Schema:
    """A packaged schema by dataset name (`fs2k`, `celeba`, `lfwa`) or a schema file."""
    text, where = None, str(name_or_path)
    if str(name_or_path) in known_datasets():
        text = resources.files("esgar").joinpath("schemas", f"{name_or_path}.yaml").read_text(
            encoding="utf-8")
        where = f"the {name_or_path} schema"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such schema file, and not a known dataset "
                              f"({', '.join(known_datasets())})")
        text = path.read_text(encoding="utf-8")
    try:
        d = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({e})") from None
    return Schema.from_dict(d, where)


# The sample table's splits: val is carved out of the dataset's train split where the dataset
# has none; test is the dataset's own and never picks a model.
SPLITS: tuple[str, ...] = ("train", "val", "test")

FS2K: Schema = load_schema("fs2k")
_active: Schema = FS2K


def active() -> Schema:
    """The schema in use in this process."""
    return _active


def use(s: Schema) -> None:
    """Make `s` the schema in use in this process (a stage's or a server's dataset)."""
    global _active
    _active = s


@contextmanager
def using(s: Schema) -> Iterator[Schema]:
    """`s` in use inside the block, the previous one after."""
    before = _active
    use(s)
    try:
        yield s
    finally:
        use(before)


def __getattr__(name: str) -> Any:
    # the schema in use, read at each access (a name imported with `from` would be frozen)
    if name == "ATTRIBUTES":
        return _active.attributes
    if name == "ATTRIBUTE_NAMES":
        return _active.names
    if name == "BY_NAME":
        return _active.by_name
    if name == "PAPER_ATTRIBUTES":
        return _active.paper_attributes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def attribute(name: str) -> Attribute:
    """The attribute `name` of the schema in use."""
    return _active.attribute(name)


# ---- facts of FS2K, whatever schema is in use -----------------------------------------------

# Colour fields of an FS2K record: name -> number of channels. Values may be missing.
COLOR_FIELDS: dict[str, int] = {"skin_color": 2, "lip_color": 3, "eye_color": 3}

HAIR_COLOR_NO_HAIR = 3  # hair_color's "no-hair" class; consistent records pair it with hair == 1

# Class counts of FS2K from its README, in class-index order.
FS2K_COUNTS: dict[str, dict[str, tuple[int, ...]]] = {
    s: dict(per) for s, per in FS2K.counts.items()}
FS2K_PAIRS = {"train": 1058, "test": 1046}

"""params.yaml, checked before any work: one model per section, every problem in one message.

The section models live in `pipeline.params.<topic>` (`data`, `prepare`, `masks`, `model`,
`select`, `labelstudio`, `flows`), apart from the stage scripts, so the stages and the flows
import the same models and nothing imports a stage script. A stage reads the sections it
declares in dvc.yaml through `load(path, data=DataParams)`, so it imports only the names it
checks against. A key that is not known, a value of the wrong type or out of range, or a name
that is not one of its kind (heads, losses, timm backbones, regions, attributes...) stops the
stage with a `ConfigError` listing every such problem, one line each, before anything is read
or written. The values live in params.yaml only: the models have no defaults.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from esgar import schema
from esgar.data.datasets import dataset_schema
from esgar.errors import ConfigError

__all__ = ["Positive", "Section", "Share", "attribute_map", "load", "one_of",
           "with_default_regions"]


def one_of(*names: str):
    """A validator accepting exactly `names` (the known values of a setting)."""
    def check(value: str) -> str:
        if value not in names:
            raise ValueError(f"{value!r} is not one of {', '.join(names)}")
        return value
    return AfterValidator(check)


def attribute_map(value: dict[str, Any]) -> dict[str, Any]:
    """Validator: the keys of `value` are attributes of the schema in use."""
    unknown = [a for a in value if a not in schema.BY_NAME]
    if unknown:
        raise ValueError(f"unknown attribute(s) {', '.join(unknown)}; the attributes of "
                         f"{schema.active().name} are {', '.join(schema.ATTRIBUTE_NAMES)}")
    return value


def with_default_regions(value: Any) -> Any:
    """Validator (before): an attribute missing from an `attribute_regions` map sees the region
    its schema gives it, so a dataset's own table needs no listing in params.yaml."""
    if isinstance(value, dict):
        return {**schema.active().regions, **value}
    return value


def _use_dataset(raw: dict[str, Any]) -> str | None:
    """Put `data.dataset`'s schema in use (FS2K where the file names none), before any section
    is checked against it; a problem line, or None."""
    data = raw.get("data")
    name = data.get("dataset", "fs2k") if isinstance(data, dict) else "fs2k"
    try:
        schema.use(dataset_schema(str(name)))
    except KeyError as e:
        return f"data.dataset: {e.args[0]}"
    return None


class Section(BaseModel):
    """A params.yaml section: unknown keys are errors, values are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Positive = Annotated[int, Field(ge=1)]
Share = Annotated[float, Field(ge=0, le=1)]


# ---- loading and reporting -------------------------------------------------------------------

def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys a nested section at `loc` (below the model) accepts."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) or next(
            (f for f in model.model_fields.values() if f.alias == part), None)
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return [f.alias or name for name, f in model.model_fields.items()]


def _describe(section: str, model: type[BaseModel], err: Mapping[str, Any]) -> str:
    loc = tuple(err["loc"])
    where = ".".join([section, *map(str, loc)])
    if err["type"] == "extra_forbidden":
        known = _known_keys(model, loc)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{where}: unknown key; {hint}known keys: {', '.join(known)}"
    if err["type"] == "missing":
        return f"{where}: missing (every setting lives in params.yaml; see the README)"
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if err["type"].startswith("value_error") or isinstance(got, dict) else (
        f" (got {got!r})")
    return f"{where}: {msg}{shown}"


def load(path: str | Path, **sections: type[BaseModel]) -> dict[str, Any]:
    """{section: its validated model} for the sections of the params file `path`, each given as
    `name=Model` (e.g. `load("params.yaml", model=ModelParams, train=TrainParams)`).

    ConfigError (every problem of every section, one line each) for a missing or unreadable
    file, a missing section, or any invalid setting.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no params file (stages run from the repository root)"
                          ) from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected sections (data:, prepare:, ...), got "
                          f"{type(raw).__name__}")
    problems, out = [p for p in [_use_dataset(raw)] if p], {}
    for name, model in sections.items():
        if not isinstance(raw.get(name), dict):
            problems.append(f"{name}: section missing or not a mapping")
            continue
        try:
            out[name] = model.model_validate(raw[name])
        except ValidationError as e:
            problems += [_describe(name, model, err) for err in e.errors()]
        except ConfigError as e:  # raised by a name check inside a validator
            problems.append(f"{name}: {e}")
    if problems:
        head = f"{path}: " + ("1 problem" if len(problems) == 1 else f"{len(problems)} problems")
        raise ConfigError(head + ":\n" + "\n".join(f"  {p}" for p in problems))
    return out

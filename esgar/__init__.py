"""ESGAR: explicitly semantic guidance for face sketch attribute recognition.

    import esgar
    net = esgar.create_model("resnet18", "esg", region_names=..., attribute_regions=...,
                             pretrained=False, img_size=128)
    net, info = esgar.load_trained("models/esgar")

Names are imported on first use, so `import esgar` stays light (no torch until a model is
asked for).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("esgar")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_EXPORTS = {
    "ATTRIBUTES": "esgar.schema", "ATTRIBUTE_NAMES": "esgar.schema", "Attribute": "esgar.schema",
    "SPLITS": "esgar.schema", "attribute": "esgar.schema",
    "EsgarError": "esgar.errors", "ConfigError": "esgar.errors",
    "AttributeModel": "esgar.models.factory", "create_model": "esgar.models.factory",
    "load_trained": "esgar.models.factory", "save_trained": "esgar.models.factory",
    "list_heads": "esgar.models.heads",
    "TrainConfig": "esgar.training", "train": "esgar.training",
    "batched_logits": "esgar.forward", "probabilities": "esgar.forward",
    "evaluate": "esgar.metrics",
}
__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'esgar' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

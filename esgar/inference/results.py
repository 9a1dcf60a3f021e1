"""What predicting new sketches gives: class probabilities per sketch, or why it failed.

    result.frame()      # one row per sketch: `sketch`, `error`, `<attribute>`, `<a>.<class>`
    result.records()    # the same as JSON-able dicts
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from esgar import schema

__all__ = ["Prediction", "result_columns"]


def result_columns(attributes: Sequence[str]) -> list[str]:
    """The columns of `Prediction.frame` before `fell_back`."""
    cols = ["sketch", "error"]
    for a in attributes:
        cols += [a, *(f"{a}.{c}" for c in schema.attribute(a).classes)]
    return cols


@dataclass
class Prediction:
    """Class probabilities of the sketches that could be used and the problems of the others.

    rows: the collected table's usable rows (in input order); probs: {attribute: float [N,C]};
    fell_back: per row the regions filled from their fallback; failures: {path: problem}."""

    rows: pd.DataFrame
    probs: dict[str, np.ndarray]
    fell_back: list[list[str]]
    failures: dict[str, str] = field(default_factory=dict)

    def frame(self, order: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per sketch: `sketch`, `error` ("" when predicted), and per attribute `<a>`
        (the class name) and `<a>.<class>` (its probability; NaN for a failed sketch).
        `order`: sketch paths in the order wanted (default: predicted ones, then failures)."""
        out = {"sketch": list(self.rows["sketch_path"]), "error": [""] * len(self.rows)}
        for a, p in self.probs.items():
            classes = schema.attribute(a).classes
            out[a] = [classes[k] for k in p.argmax(1)]
            for j, c in enumerate(classes):
                out[f"{a}.{c}"] = p[:, j].astype(float)
        good = pd.DataFrame(out, columns=result_columns(list(self.probs)))
        bad = pd.DataFrame({"sketch": list(self.failures), "error": list(self.failures.values())})
        frame = pd.concat([good, bad], ignore_index=True) if len(bad) else good
        frame["fell_back"] = [",".join(f) for f in self.fell_back] + [""] * len(bad)
        if order is not None:
            frame = frame.set_index("sketch").loc[list(order)].reset_index()
        return frame

    def records(self) -> list[dict[str, Any]]:
        """JSON-able: per sketch {"sketch", "error"} or {"sketch", "attributes": {a: {"class",
        "probability", "probabilities": {class: p}}}, "fell_back": [regions]}."""
        out: list[dict[str, Any]] = []
        for i, path in enumerate(self.rows["sketch_path"]):
            attrs = {}
            for a, p in self.probs.items():
                classes = schema.attribute(a).classes
                k = int(p[i].argmax())
                attrs[a] = {"class": classes[k], "probability": round(float(p[i, k]), 6),
                            "probabilities": {c: round(float(v), 6)
                                              for c, v in zip(classes, p[i], strict=True)}}
            out.append({"sketch": path, "attributes": attrs, "fell_back": self.fell_back[i]})
        out += [{"sketch": path, "error": why} for path, why in self.failures.items()]
        return out

"""Simulated annotators, for benchmarks and tests of the relabeling loop: each knows the truth,
answers with an `accuracy`, and with a `laziness` takes the easy way.

    ann = SimulatedAnnotator("a@x", accuracy=0.85, laziness=0.3, seed=0)
    n = ann.work(next_task=lambda: ls.next_task(client, project),
                 submit=lambda task_id, result, seconds: ls.annotate(client, task_id, result,
                                                                     lead_time=seconds),
                 truth=lambda sample_id, attribute: "with_earring")

What a lazy moment looks like depends on the task: a question in doubt that starts pre-filled
is submitted as it was (Label Studio marks it `prediction`); one that starts empty gets its
first choice (the `1` key). Otherwise the answer is the truth with probability `accuracy`, else
another class at random. Attributes not in question are left as they started. Each answer
carries the mark the labelling view would give it (`manual`, `prediction`,
`prediction-changed`; verified in Chromium against Label Studio 1.23.2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from esgar import schema

__all__ = ["SimulatedAnnotator"]

IMAGE = "sketch"


@dataclass
class SimulatedAnnotator:
    email: str
    accuracy: float
    laziness: float
    seed: int = 0
    rng: np.random.Generator = field(init=False, repr=False)
    lazy: set[tuple[str, str]] = field(init=False, repr=False)  # (sample, attribute) answered so

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.lazy = set()

    def answer(self, data: Mapping[str, Any], truth: Callable[[str, str], str]
               ) -> tuple[list[dict[str, Any]], float]:
        """Label Studio's result (Choices items with their origin) and the seconds spent, for a
        task's `data` (as `esgar.active.tasks.build_tasks` makes it)."""
        started = data.get("prefilled") or {}
        questions = set(data.get("questions") or [])
        items, lazy_all = [], True
        for a in schema.ATTRIBUTES:
            begun = started.get(a.name)
            if a.name not in questions:
                value, origin = begun, "prediction"
            elif self.rng.random() < self.laziness:
                value, origin = (begun, "prediction") if begun is not None else \
                    (a.classes[0], "manual")
                self.lazy.add((data["sample_id"], a.name))
            else:
                lazy_all = False
                true = truth(data["sample_id"], a.name)
                if self.rng.random() < self.accuracy:
                    value = true
                else:
                    value = str(self.rng.choice([c for c in a.classes if c != true]))
                origin = "manual" if begun is None else \
                    "prediction" if value == begun else "prediction-changed"
            if value is None:
                continue
            items.append({"from_name": a.name, "to_name": IMAGE, "type": "choices",
                          "value": {"choices": [value]}, "origin": origin})
        seconds = float(self.rng.uniform(0.5, 1.5) if lazy_all else self.rng.uniform(4, 15))
        return items, round(seconds, 2)

    def work(self, next_task: Callable[[], Mapping[str, Any] | None],
             submit: Callable[[int, list[dict[str, Any]], float], Any],
             truth: Callable[[str, str], str], limit: int | None = None) -> int:
        """Answer the tasks `next_task` gives until there are none (or `limit`); how many."""
        done = 0
        while limit is None or done < limit:
            task = next_task()
            if task is None:
                break
            result, seconds = self.answer(task["data"], truth)
            submit(task["id"], result, seconds)
            done += 1
        return done

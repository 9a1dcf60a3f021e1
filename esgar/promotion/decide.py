"""Register a trained model and decide, by the policy, whether it becomes the champion.

    outcome = register_and_decide(name, train_run_id, table, "data/masks", policy,
                                  metrics=json.load(open("reports/evaluate.json")), tags=...)
    outcome.decision.reason, outcome.version, outcome.champion_before

Both the new version and the champion are downloaded from the registry and scored by the same
code on the current validation split (`esgar.scoring`), then `esgar.promotion.policy.decide`
applies the policy. The decision, its numbers and its reason become tags of the new version; the
`champion` alias moves to it when promoted, else it gets the `challenger` alias. A model that
is already registered (the run was registered before) is not decided twice.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from esgar.device import Precision
from esgar.errors import EsgarError
from esgar.integrations import registry as reg
from esgar.metrics import HEADLINE
from esgar.models.factory import load_trained
from esgar.promotion.policy import Comparison, Decision, Policy, decide, paired_bootstrap
from esgar.scoring import score_split

__all__ = ["Outcome", "describe", "headline_tags", "register_and_decide"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What happened: the version registered (`new` False: it already was, nothing decided),
    the champion before and after, the decision (None when nothing was decided)."""

    name: str
    version: str
    new: bool
    champion_before: str | None
    champion_after: str | None
    decision: Decision | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def comparison(self) -> Comparison | None:
        return self.decision.comparison if self.decision else None


def headline_tags(metrics: Mapping[str, Mapping[str, float]]) -> dict[str, str]:
    """Tags of the evaluate stage's report ({split: metrics}, `evaluate.report`): per split the
    headline means with their intervals and each attribute's balanced accuracy."""
    out = {}
    for split, m in metrics.items():
        for key, value in m.items():
            base = key.removesuffix("_ci_low").removesuffix("_ci_high")
            if base in HEADLINE or key.startswith("bacc/") and "_ci_" not in key:
                out[f"{split}.{key}"] = f"{value:.6f}"
    return out


def _score(c, name: str, version: str, table: pd.DataFrame, masks: str | Path,
           batch_size: int, device: torch.device, precision: Precision | None, work: Path):
    model_dir = reg.download_model_dir(c, name, version, work / f"v{version}")
    net, _ = load_trained(model_dir, device)
    if precision is not None:
        precision.prepare(net)
    return score_split(net, table, "val", masks, batch_size, device, precision)


def _paired(challenger, champion) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two scorings' truth and predictions on the same sketches in the same order."""
    if list(challenger.attributes) != list(champion.attributes):
        raise EsgarError(f"the champion predicts {', '.join(champion.attributes)}, the "
                         f"challenger {', '.join(challenger.attributes)}: not comparable")
    order = pd.Series(np.arange(len(champion.sample_ids)), index=champion.sample_ids)
    rows = order.reindex(challenger.sample_ids)
    if rows.isna().any():
        raise EsgarError("the two models were not scored on the same validation sketches")
    rows = rows.to_numpy(np.int64)
    return challenger.truth, challenger.pred, champion.pred[rows]


def register_and_decide(name: str, train_run_id: str, table: pd.DataFrame, masks: str | Path,
                        policy: Policy, metrics: Mapping[str, Mapping[str, float]],
                        tags: Mapping[str, str], batch_size: int = 32,
                        device: torch.device | None = None,
                        precision: Precision | None = None) -> Outcome:
    """Register run `train_run_id`'s model as a version of `name` (with `tags`, the headline
    `metrics` and the evaluate run), then decide against the champion on the current
    validation split of `table` with the mask store `masks`; both re-scored alike, on
    `device` in `precision` (None: fp32)."""
    device = device or torch.device("cpu")
    c = reg.client()
    all_tags = {**tags, **headline_tags(metrics), "train_run_id": train_run_id,
                "evaluate_run_id": reg.evaluate_run_of(c, train_run_id)}
    mv, new = reg.register(c, name, train_run_id, all_tags)
    version = str(mv.version)
    champ = reg.get_alias(c, name, reg.CHAMPION)
    before = str(champ.version) if champ else None
    if not new and "decision" in (mv.tags or {}):
        _log.info("%s version %s (run %s) was registered and decided before: %s", name,
                  version, train_run_id, mv.tags["decision"])
        return Outcome(name, version, False, before, before, None, dict(mv.tags))
    if champ is None:
        decision = decide(None, policy)
    elif before == version:
        return Outcome(name, version, new, before, before, None, all_tags)
    else:
        with tempfile.TemporaryDirectory(prefix="esgar-registry-") as tmp:
            try:
                new_scores = _score(c, name, version, table, masks, batch_size, device,
                                    precision, Path(tmp))
                old_scores = _score(c, name, before, table, masks, batch_size, device,
                                    precision, Path(tmp))
                truth, a, b = _paired(new_scores, old_scores)
            except EsgarError as e:
                decision = Decision(False, f"kept the champion: version {before} cannot be "
                                           f"re-scored on the current validation split ({e}); "
                                           "promote by hand if intended")
            else:
                decision = decide(paired_bootstrap(truth, a, b, new_scores.attributes,
                                                   policy.bootstrap, policy.seed,
                                                   policy.confidence), policy)
    decision_tags = {**decision.tags(), "decision.champion_before": before or "none",
                     "decision.policy": _policy_text(policy)}
    reg.set_tags(c, name, version, decision_tags)
    if decision.promote:
        reg.set_alias(c, name, reg.CHAMPION, version)
        if reg.aliases(c, name).get(reg.CHALLENGER) == version:
            reg.delete_alias(c, name, reg.CHALLENGER)
    else:
        reg.set_alias(c, name, reg.CHALLENGER, version)
    after = version if decision.promote else before
    _log.info("%s version %s: %s", name, version, decision.reason)
    return Outcome(name, version, new, before, after, decision, {**all_tags, **decision_tags})


def _policy_text(policy: Policy) -> str:
    return (f"confidence {policy.confidence}, min_gain {policy.min_gain}, max_attribute_drop "
            f"{policy.max_attribute_drop}, bootstrap {policy.bootstrap}, seed {policy.seed}")


def describe(outcome: Outcome) -> dict[str, Any]:
    """JSON-able summary of an outcome (for flow artifacts and logs)."""
    d = outcome.decision
    return {"model": outcome.name, "version": outcome.version, "new": outcome.new,
            "champion_before": outcome.champion_before, "champion_after": outcome.champion_after,
            "decision": d.outcome if d else "none", "reason": d.reason if d else ""}

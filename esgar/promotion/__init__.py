"""Promotion: whether a new model replaces the champion, and the versions side by side.

- `policy`: the policy as a pure function of two models' validation predictions (a paired
  bootstrap of the gain, then `decide`); no MLflow.
- `decide`: the policy applied to the registry: register a trained run's model, re-score the
  champion on the current validation split, decide, move the aliases.
- `leaderboard`: registry versions or runs side by side with their intervals (`esgar compare`).
"""

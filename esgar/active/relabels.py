"""Human relabels: the snapshot `pull` writes, and how it is applied on top of FS2K's labels.

The snapshot is a CSV, one row per sample x attribute decision:
`sample_id, attribute, label, previous, annotator, annotated_at, task_id, status` (and, from
`pull`, `confidence` and `votes`: the consensus's probability of the label and how many
annotators' answers it rests on). `status` is `decided` (applied), `low_confidence` (the
consensus is not sure enough), `tie` (annotators disagreed evenly) or `unsure` (an annotator
could not tell, or the image is bad): the last three are recorded and never applied; `select`
asks `low_confidence` and `tie` again (more answers may settle them), never `decided` or
`unsure`. A snapshot without the column holds decisions only.

Rules of `apply_relabels`:

- `label` and `previous` are a class index (`1`, also written `1.0`) or the attribute's class
  name exactly as `schema` spells it (`female`, `without_hair`); `previous` may be empty.
- `annotated_at` is an ISO 8601 time with a timezone (`2026-01-01T09:00:00Z`,
  `...T10:00:00+02:00`); decisions are ordered by that instant, never by text or file order.
- A row is skipped, with a warning naming it, when its sample or attribute is unknown, its time
  is empty, not ISO 8601 or has no timezone (ambiguous), or its label/previous is no class.
- Per sample x attribute the remaining decisions are replayed in time order, each setting the
  label. Decisions at the same instant that agree set it once; ones that disagree set nothing
  (the label stays as it was before them) and are warned about.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from esgar import schema
from esgar.errors import EsgarError

SNAPSHOT_COLUMNS: tuple[str, ...] = (
    "sample_id", "attribute", "label", "previous", "annotator", "annotated_at", "task_id",
)  # and `status`, optional
STATUSES: tuple[str, ...] = ("decided", "low_confidence", "tie", "unsure")
SETTLED: tuple[str, ...] = ("decided", "unsure")  # never asked again
SOURCE_ORIGINAL = "fs2k"
SOURCE_RELABEL = "relabel"

_INDEX_TEXT = re.compile(r"[0-9]+(?:\.0+)?")  # "1", "1.0": how a CSV writes a class index


class RelabelError(EsgarError, ValueError):
    """The snapshot file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class _Decision:
    label: int
    annotator: str
    at: pd.Timestamp  # UTC


def read_snapshot(path: str | Path) -> pd.DataFrame:
    """The snapshot at `path` as a DataFrame of strings (empty cells NaN); an absent file is an
    empty snapshot. Raises RelabelError for an unreadable CSV or missing columns."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=[*SNAPSHOT_COLUMNS, "status"])
    try:
        # All text: a column mixing indices and class names must not be half converted.
        snap = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise RelabelError(f"{path}: not a readable CSV ({e})") from None
    missing = [c for c in SNAPSHOT_COLUMNS if c not in snap.columns]
    if missing:
        raise RelabelError(f"{path}: missing column(s) {', '.join(missing)}; expected "
                           f"{', '.join(SNAPSHOT_COLUMNS)} (and status)")
    if "status" not in snap.columns:
        snap["status"] = "decided"
    snap["status"] = snap["status"].fillna("decided")
    bad = sorted(set(snap["status"]) - set(STATUSES))
    if bad:
        raise RelabelError(f"{path}: status {', '.join(map(repr, bad))} is not one of "
                           f"{', '.join(STATUSES)}")
    return snap


def _is_empty(value: Any) -> bool:
    if isinstance(value, str):
        return value == ""
    return value is None or bool(pd.isna(value))


def _text(value: Any) -> str:
    return "(empty)" if _is_empty(value) else str(value)


def _show(value: Any) -> str:
    """A cell as a warning quotes it."""
    return "(empty)" if _is_empty(value) else repr(str(value))


def _parse_time(value: Any) -> pd.Timestamp | str:
    """`value` (an ISO 8601 time with a timezone) as a UTC Timestamp, or why it is not one."""
    if _is_empty(value):
        return "is empty"
    try:
        t = pd.to_datetime(str(value), format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        t = pd.NaT
    if pd.isna(t):
        return f"{_show(value)} is not an ISO 8601 time"
    if t.tzinfo is None:
        return f"{_show(value)} has no timezone (ambiguous)"
    return t.tz_convert("UTC")


def _parse_class(attr: schema.Attribute, value: Any) -> int | None:
    """The class index `value` names for `attr` (an index, as number or text, or a class name),
    or None when it names none."""
    if isinstance(value, str):
        if value in attr.classes:
            return attr.classes.index(value)
        value = float(value) if _INDEX_TEXT.fullmatch(value) else None
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not number.is_integer() or not 0 <= number < attr.num_classes:
        return None
    return int(number)


def _valid_classes(attr: schema.Attribute) -> str:
    return f"indices 0..{attr.num_classes - 1} or names {', '.join(attr.classes)}"


def _check_row(rec: Any, known_samples: set[str]) -> _Decision | str:
    """A snapshot row as a usable decision, or the warning saying why it is skipped."""
    where = f"relabel of {rec.sample_id}/{rec.attribute} by {_text(rec.annotator)}"
    if rec.attribute not in schema.BY_NAME:
        return f"{where}: unknown attribute, skipped"
    if rec.sample_id not in known_samples:
        return f"{where}: no such sample in the table, skipped"
    at = _parse_time(rec.annotated_at)
    if isinstance(at, str):
        return f"{where}: annotated_at {at}, skipped"
    attr = schema.BY_NAME[rec.attribute]
    label = _parse_class(attr, rec.label)
    if label is None:
        return (f"{where}: label {_show(rec.label)} is not a class of {attr.name} "
                f"({_valid_classes(attr)}), skipped")
    if not _is_empty(rec.previous) and _parse_class(attr, rec.previous) is None:
        return (f"{where}: previous {_show(rec.previous)} is not a class of {attr.name} "
                f"({_valid_classes(attr)}), skipped")
    return _Decision(label, _text(rec.annotator), at)


def _resolve(sample_id: str, attribute: str, decisions: list[_Decision]
             ) -> tuple[int | None, list[str]]:
    """Replay one sample x attribute's decisions in time order: the label they leave (None: no
    decision applied) and a warning per instant whose decisions disagree."""
    by_time: dict[pd.Timestamp, list[_Decision]] = defaultdict(list)
    for d in decisions:
        by_time[d.at].append(d)
    label, warnings = None, []
    for at in sorted(by_time):
        labels = {d.label for d in by_time[at]}
        if len(labels) == 1:
            label = labels.pop()
            continue
        who = ", ".join(f"{d.label} by {d.annotator}"
                        for d in sorted(by_time[at], key=lambda d: (d.label, d.annotator)))
        warnings.append(f"relabels of {sample_id}/{attribute} at {at.isoformat()} disagree "
                        f"({who}); none applied, the label stays as it was")
    return label, warnings


def apply_relabels(table: pd.DataFrame, snapshot: pd.DataFrame
                   ) -> tuple[pd.DataFrame, list[str]]:
    """Set each attribute's current label from the human decisions (rules: module docstring).

    `table` holds `sample_id` and `<attr>_orig` columns (FS2K's labels); `snapshot` has
    `SNAPSHOT_COLUMNS`. Returns a new table whose `<attr>` and `<attr>_source` (`fs2k` or
    `relabel`) reflect the snapshot, and a list of warnings: one per skipped row (in file order),
    then one per disagreeing tie.
    """
    out = table.copy()
    for name in schema.ATTRIBUTE_NAMES:
        out[name] = out[f"{name}_orig"]
        out[f"{name}_source"] = SOURCE_ORIGINAL
    row_of = pd.Series(out.index, index=out["sample_id"])
    known = set(row_of.index)
    warnings: list[str] = []
    decisions: dict[tuple[str, str], list[_Decision]] = defaultdict(list)
    for rec in snapshot.itertuples(index=False):
        status = getattr(rec, "status", "decided")
        if not _is_empty(status) and status != "decided":
            continue  # recorded (a tie, an unsure answer), never applied
        checked = _check_row(rec, known)
        if isinstance(checked, str):
            warnings.append(checked)
        else:
            decisions[(rec.sample_id, rec.attribute)].append(checked)
    for (sample_id, attribute), group in sorted(decisions.items()):
        label, tie_warnings = _resolve(sample_id, attribute, group)
        warnings += tie_warnings
        if label is not None:
            i = row_of[sample_id]
            out.at[i, attribute] = label
            out.at[i, f"{attribute}_source"] = SOURCE_RELABEL
    return out, warnings

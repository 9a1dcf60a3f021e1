"""Human relabels: the snapshot `pull` writes, and how it is applied on top of FS2K's labels.

The snapshot is a CSV, sorted, one row per sample x attribute decision:
`sample_id, attribute, label, previous, annotator, annotated_at, task_id`
(`label` and `previous` are class indices; `annotated_at` ISO 8601). When one sample x
attribute was decided more than once, the latest decision wins.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from esgar import schema

SNAPSHOT_COLUMNS: tuple[str, ...] = (
    "sample_id", "attribute", "label", "previous", "annotator", "annotated_at", "task_id",
)
SOURCE_ORIGINAL = "fs2k"
SOURCE_RELABEL = "relabel"


class RelabelError(ValueError):
    """The snapshot file cannot be used; the message names the file and the problem."""


def read_snapshot(path: str | Path) -> pd.DataFrame:
    """The snapshot as a DataFrame; an absent file is an empty snapshot."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=list(SNAPSHOT_COLUMNS))
    try:
        snap = pd.read_csv(path, dtype={"sample_id": str, "attribute": str, "annotator": str,
                                        "task_id": str})
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise RelabelError(f"{path}: not a readable CSV ({e})") from None
    missing = [c for c in SNAPSHOT_COLUMNS if c not in snap.columns]
    if missing:
        raise RelabelError(f"{path}: missing column(s) {', '.join(missing)}; expected "
                           f"{', '.join(SNAPSHOT_COLUMNS)}")
    return snap


def apply_relabels(table: pd.DataFrame, snapshot: pd.DataFrame
                   ) -> tuple[pd.DataFrame, list[str]]:
    """Set each attribute's current label from the latest human decision.

    `table` holds `<attr>_orig` columns (FS2K's labels). Returns a new table whose `<attr>` and
    `<attr>_source` reflect the snapshot, and a list of warnings for rows that were skipped
    (unknown sample or attribute, label out of range).
    """
    out = table.copy()
    for name in schema.ATTRIBUTE_NAMES:
        out[name] = out[f"{name}_orig"]
        out[f"{name}_source"] = SOURCE_ORIGINAL
    if snapshot.empty:
        return out, []
    warnings: list[str] = []
    latest = (snapshot.sort_values("annotated_at", kind="stable")
              .drop_duplicates(["sample_id", "attribute"], keep="last"))
    row_of = pd.Series(out.index, index=out["sample_id"])
    for rec in latest.itertuples(index=False):
        where = f"relabel of {rec.sample_id}/{rec.attribute} by {rec.annotator}"
        if rec.attribute not in schema.BY_NAME:
            warnings.append(f"{where}: unknown attribute, skipped")
            continue
        if rec.sample_id not in row_of.index:
            warnings.append(f"{where}: no such sample in the table, skipped")
            continue
        k = schema.BY_NAME[rec.attribute].num_classes
        if pd.isna(rec.label) or not float(rec.label).is_integer() or not 0 <= rec.label < k:
            warnings.append(f"{where}: label {rec.label!r} is not in 0..{k - 1}, skipped")
            continue
        i = row_of[rec.sample_id]
        out.at[i, rec.attribute] = int(rec.label)
        out.at[i, f"{rec.attribute}_source"] = SOURCE_RELABEL
    return out, warnings

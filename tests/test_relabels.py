"""Human relabels: the snapshot file and the rules that put its decisions on FS2K's labels."""

from __future__ import annotations

import pandas as pd
import pytest

from esgar import schema
from esgar.active.relabels import SNAPSHOT_COLUMNS, RelabelError, apply_relabels, read_snapshot
from esgar.data.table import build_sample_table

S0, S1 = "photo1_image0000", "photo1_image0001"


def fs2k_table(n: int = 3) -> pd.DataFrame:
    """A table as `apply_relabels` gets it: FS2K's labels (all class 0) in `<attr>_orig`."""
    table = pd.DataFrame({"sample_id": [f"photo1_image{i:04d}" for i in range(n)]})
    for name in schema.ATTRIBUTE_NAMES:
        table[f"{name}_orig"] = 0
    return table


def snapshot_file(tmp_path, rows: list[tuple[str, ...]]) -> pd.DataFrame:
    """Write `rows` (sample_id, attribute, label, previous, annotator, annotated_at, task_id) as
    the snapshot CSV and read it back as the prepare stage does."""
    path = tmp_path / "snapshot.csv"
    path.write_text("\n".join(",".join(r) for r in [SNAPSHOT_COLUMNS, *rows]) + "\n")
    return read_snapshot(path)


def relabel(tmp_path, rows: list[tuple[str, ...]]) -> tuple[pd.DataFrame, list[str]]:
    out, warnings = apply_relabels(fs2k_table(), snapshot_file(tmp_path, rows))
    return out.set_index("sample_id"), warnings


def test_latest_decision_by_instant_wins_and_originals_are_kept(tmp_path):
    out, warnings = relabel(tmp_path, [
        (S0, "smile", "1", "0", "ann1", "2026-01-01T10:00:00Z", "1"),
        (S0, "smile", "0", "1", "ann2", "2026-01-02T10:00:00Z", "2"),  # latest: back again
        (S0, "earring", "1", "0", "ann1", "2026-01-01T10:00:00Z", "1"),
    ])
    assert warnings == []
    row = out.loc[S0]
    assert (row.smile, row.smile_orig, row.smile_source) == (0, 0, "relabel")
    assert (row.earring, row.earring_orig, row.earring_source) == (1, 0, "relabel")
    assert (row.gender, row.gender_source) == (0, "fs2k")
    assert (out.loc[S1, "smile"], out.loc[S1, "smile_source"]) == (0, "fs2k")


@pytest.mark.bad_input(stage="prepare", kind="relabel")
def test_times_compare_as_instants_not_as_text(tmp_path):
    # 10:00+02:00 is 08:00 UTC: earlier than 09:00Z although it sorts after it as text
    rows = [(S0, "gender", "1", "0", "early", "2026-01-01T10:00:00+02:00", "1"),
            (S0, "gender", "0", "1", "late", "2026-01-01T09:00:00Z", "2")]
    for order in (rows, rows[::-1]):
        out, warnings = relabel(tmp_path, order)
        assert warnings == []
        assert (out.loc[S0, "gender"], out.loc[S0, "gender_source"]) == (0, "relabel")


@pytest.mark.bad_input(stage="prepare", kind="relabel")
@pytest.mark.parametrize("bad, why", [
    ("", "annotated_at is empty"),
    ("garbage", "annotated_at 'garbage' is not an ISO 8601 time"),
    ("2026-02-30T10:00:00Z", "annotated_at '2026-02-30T10:00:00Z' is not an ISO 8601 time"),
    ("2026-01-01T10:00:00", "annotated_at '2026-01-01T10:00:00' has no timezone"),
    ("2026-01-01", "annotated_at '2026-01-01' has no timezone"),
])
def test_a_time_that_is_empty_unparseable_or_naive_is_refused(tmp_path, bad, why):
    out, warnings = relabel(tmp_path, [
        (S0, "hair", "1", "0", "ann1", "2026-01-01T09:00:00Z", "1"),
        (S0, "hair", "0", "1", "ann2", bad, "2"),  # would be the latest if it counted
    ])
    assert out.loc[S0, "hair"] == 1  # the refused row hides nothing
    assert len(warnings) == 1
    for part in (f"{S0}/hair by ann2", why, "skipped"):
        assert part in warnings[0]


@pytest.mark.bad_input(stage="prepare", kind="relabel")
def test_an_agreeing_tie_is_applied_once(tmp_path):
    out, warnings = relabel(tmp_path, [
        (S0, "gender", "1", "0", "ann1", "2026-01-01T10:00:00Z", "1"),
        (S0, "gender", "female", "male", "ann2", "2026-01-01T12:00:00+02:00", "2"),
    ])
    assert warnings == []
    assert (out.loc[S0, "gender"], out.loc[S0, "gender_source"]) == (1, "relabel")


@pytest.mark.bad_input(stage="prepare", kind="relabel")
def test_a_disagreeing_tie_applies_nothing_and_is_warned(tmp_path):
    tie = [(S0, "style", "1", "0", "ann1", "2026-01-02T10:00:00Z", "2"),
           (S0, "style", "2", "0", "ann2", "2026-01-02T10:00:00Z", "3")]
    for order in (tie, tie[::-1]):
        out, warnings = relabel(tmp_path, order)
        assert (out.loc[S0, "style"], out.loc[S0, "style_source"]) == (0, "fs2k")
        assert len(warnings) == 1
        for part in (S0, "style", "disagree", "1 by ann1", "2 by ann2", "none applied"):
            assert part in warnings[0]
    # an earlier decision stands: the label stays as it was before the tie
    out, warnings = relabel(tmp_path, [(S0, "style", "2", "0", "ann3", "2026-01-01T00:00Z", "1"),
                                       *tie])
    assert (out.loc[S0, "style"], out.loc[S0, "style_source"]) == (2, "relabel")
    assert len(warnings) == 1


def test_labels_may_be_class_indices_or_class_names(tmp_path):
    at = "2026-01-01T10:00:00Z"
    out, warnings = relabel(tmp_path, [
        (S0, "gender", "female", "male", "a", at, "1"),
        (S0, "hair", "without_hair", "0", "a", at, "1"),
        (S0, "hair_color", "golden", "brown", "a", at, "1"),
        (S0, "style", "2.0", "0", "a", at, "1"),
        (S1, "smile", "1", "", "a", at, "1"),  # `previous` may be empty
    ])
    assert warnings == []
    assert tuple(out.loc[S0, ["gender", "hair", "hair_color", "style"]]) == (1, 1, 4, 2)
    assert out.loc[S1, "smile"] == 1


@pytest.mark.bad_input(stage="prepare", kind="relabel")
@pytest.mark.parametrize("column, value", [
    ("label", "Female"), ("label", "woman"), ("label", "2"), ("label", "-1"), ("label", "0.5"),
    ("label", ""), ("previous", "woman"),
])
def test_a_label_that_is_no_class_is_refused(tmp_path, column, value):
    row = {"label": "1", "previous": "0"} | {column: value}
    out, warnings = relabel(tmp_path, [
        (S0, "gender", row["label"], row["previous"], "ann1", "2026-01-01T10:00:00Z", "1")])
    assert (out.loc[S0, "gender"], out.loc[S0, "gender_source"]) == (0, "fs2k")
    assert len(warnings) == 1
    for part in (S0, "gender", "ann1", column, "indices 0..1", "names male, female", "skipped"):
        assert part in warnings[0]


@pytest.mark.bad_input(stage="prepare", kind="relabel")
def test_unknown_samples_and_attributes_are_skipped(tmp_path):
    at = "2026-01-01T10:00:00Z"
    out, warnings = relabel(tmp_path, [("photo9_image9999", "smile", "1", "0", "a", at, "1"),
                                       (S0, "mood", "1", "0", "a", at, "1"),
                                       (S0, "smile", "1", "0", "a", at, "1")])
    assert out.loc[S0, "smile"] == 1
    assert len(warnings) == 2
    assert "photo9_image9999/smile" in warnings[0] and "no such sample" in warnings[0]
    assert f"{S0}/mood" in warnings[1] and "unknown attribute" in warnings[1]


def test_the_sample_table_carries_relabels(tmp_path):
    fs2k = fs2k_table(10).rename(columns=lambda c: c.removesuffix("_orig"))
    fs2k["fs2k_split"] = ["train"] * 8 + ["test"] * 2
    snap = snapshot_file(tmp_path, [(S1, "earring", "1", "0", "a", "2026-01-01T10:00:00Z", "1")])
    table, warnings = build_sample_table(fs2k, 0.25, 0, snap)
    row = table.set_index("sample_id").loc[S1]
    assert warnings == []
    assert (row.earring, row.earring_orig, row.earring_source) == (1, 0, "relabel")


@pytest.mark.bad_input(stage="prepare", kind="relabel")
def test_snapshot_file_errors(tmp_path):
    absent = read_snapshot(tmp_path / "absent.csv")
    assert absent.empty and "status" in absent.columns  # select reads it before any pull
    out, warnings = apply_relabels(fs2k_table(), read_snapshot(tmp_path / "absent.csv"))
    assert warnings == [] and (out["hair_source"] == "fs2k").all()
    bad = tmp_path / "snap.csv"
    bad.write_text("sample_id,label\nx,1\n")
    with pytest.raises(RelabelError, match="snap.csv: missing column"):
        read_snapshot(bad)
    for content in (b"\xff\xfe\x00garbage", b"", b'sample_id,attribute\n"unclosed,x\n'):
        bad.write_bytes(content)
        with pytest.raises(RelabelError, match="snap.csv: not a readable CSV"):
            read_snapshot(bad)


def test_ties_and_unsure_answers_are_recorded_not_applied(tmp_path):
    path = tmp_path / "snapshot.csv"
    header = ",".join([*SNAPSHOT_COLUMNS, "status"])
    path.write_text(f"{header}\n"
                    f"{S0},gender,,male,a+b,2026-01-01T09:00:00Z,1,tie\n"
                    f"{S1},gender,female,male,a,2026-01-01T09:00:00Z,2,unsure\n"
                    f"{S1},smile,1,0,a,2026-01-01T09:00:00Z,2,low_confidence\n"
                    f"{S1},hair,1,0,a,2026-01-01T09:00:00Z,2,decided\n")
    out, warnings = apply_relabels(fs2k_table(), read_snapshot(path))
    out = out.set_index("sample_id")
    assert warnings == []
    assert out.loc[S0, "gender"] == 0 and out.loc[S1, "gender"] == 0
    assert out.loc[S1, "smile"] == 0 and out.loc[S1, "smile_source"] == "fs2k"  # not sure enough
    assert out.loc[S1, "hair"] == 1 and out.loc[S1, "hair_source"] == "relabel"


@pytest.mark.bad_input(stage="prepare", kind="relabel")
def test_a_status_that_is_no_snapshot_status_is_refused(tmp_path):
    path = tmp_path / "snapshot.csv"
    header = ",".join([*SNAPSHOT_COLUMNS, "status"])
    path.write_text(f"{header}\n{S0},gender,1,0,a,2026-01-01T09:00:00Z,1,maybe\n")
    with pytest.raises(RelabelError, match="status 'maybe' is not one of decided, "
                                           "low_confidence, tie, unsure"):
        read_snapshot(path)

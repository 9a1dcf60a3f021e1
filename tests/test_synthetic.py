"""The synthetic FS2K generator: layout, determinism, class counts, exact label maps, noise."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from esgar import cli, schema
from esgar.data import layout
from esgar.data.fs2k import read_fs2k
from esgar.data.synthetic import apply_noise, assign_labels, generate, quota
from esgar.errors import OutputError
from esgar.masks.labels import BISENET_CLASSES, PARSENET_CLASSES


def digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "out"
    generate(out, pairs=60, seed=5, workers=2, progress=False,
             label_orders=("bisenet", "parsenet"))
    return out


def test_layout_reads_as_fs2k_without_problems(synth):
    table, report = read_fs2k(synth / "FS2K", progress=False)
    assert report.problems == []
    assert len(table) == 60
    assert set(table.loc[table.fs2k_split == "test", "subset"]) <= {"photo1", "photo3"}
    assert set(table["subset"]) == {"photo1", "photo2", "photo3"}
    sizes = {"photo1": (250, 250), "photo2": (223, 318), "photo3": (475, 340)}
    for row in table.itertuples():
        assert (row.width, row.height) == sizes[row.subset]
        assert row.sketch_path.endswith(".png") == (row.subset == "photo2")
    rec = json.loads((synth / "FS2K/anno_train.json").read_text())[0]
    assert list(rec) == ["image_name", "skin_color", "lip_color", "eye_color",
                         *schema.ATTRIBUTE_NAMES]


def test_counts_follow_priors_and_hair_is_consistent(synth):
    table, _ = read_fs2k(synth / "FS2K", progress=False)
    n = {s: int((table.fs2k_split == s).sum()) for s in ("train", "test")}
    for split in ("train", "test"):
        part = table[table.fs2k_split == split]
        for a in schema.ATTRIBUTES:
            got = np.bincount(part[a.name], minlength=a.num_classes)
            want = np.array(schema.FS2K_COUNTS[split][a.name]) / sum(
                schema.FS2K_COUNTS[split][a.name]) * n[split]
            assert np.all(np.abs(got - want) <= 1.0 + 1e-9), (split, a.name, got, want)
    assert ((table.hair == 1) == (table.hair_color == schema.HAIR_COLOR_NO_HAIR)).all()


def test_full_size_counts_equal_fs2k():
    assert quota(2104, [1058, 1046]).tolist() == [1058, 1046]
    for split, per_attr in schema.FS2K_COUNTS.items():
        for counts in per_attr.values():
            assert quota(schema.FS2K_PAIRS[split], counts).tolist() == list(counts)


def test_label_maps_are_exact_and_agree_across_orders(synth):
    table, _ = read_fs2k(synth / "FS2K", progress=False)
    b_names, p_names = np.array(BISENET_CLASSES), np.array(PARSENET_CLASSES)
    for row in table.itertuples():
        b = np.asarray(Image.open(synth / "parsing/bisenet" / f"{row.image_name}.png"))
        p = np.asarray(Image.open(synth / "parsing/parsenet" / f"{row.image_name}.png"))
        assert b.shape == (row.height, row.width) and b.max() < 19
        assert (b_names[b] == p_names[p]).all()
        present = set(b_names[np.unique(b)])
        assert ("hair" in present) == (row.hair == 0), row.image_name
        assert ("ear_r" in present) == (row.earring == 0), row.image_name
        assert {"skin", "nose", "u_lip"} <= present


def test_attributes_are_visible_in_their_region(synth):
    """Earrings change the sketch at the earring pixels; hair colours differ in tone."""
    table, _ = read_fs2k(synth / "FS2K", progress=False)
    tones: dict[int, list[float]] = {}
    for row in table[(table.hair == 0) & (table["style"] == 0)].itertuples():
        sketch = np.asarray(Image.open(row.sketch_path).convert("L"), dtype=float)
        label = np.asarray(Image.open(synth / "parsing/bisenet" / f"{row.image_name}.png"))
        tones.setdefault(row.hair_color, []).append(sketch[label == 17].mean())
    means = {c: np.mean(v) for c, v in tones.items()}
    assert means[1] < means[0] < means[4], means  # black darker than brown darker than golden


def test_deterministic_and_independent_of_workers(tmp_path):
    kw = dict(pairs=24, progress=False, noise={"smile": {0: 0.2}})
    generate(tmp_path / "a", seed=1, workers=1, **kw)
    generate(tmp_path / "b", seed=1, workers=2, **kw)
    generate(tmp_path / "c", seed=2, workers=2, **kw)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_noise_log_is_the_ground_truth_of_flips(tmp_path):
    generate(tmp_path / "clean", pairs=80, seed=4, workers=2, progress=False)
    noise = {"earring": {0: 0.5}, "hair": {1: 1.0}}
    generate(tmp_path / "noisy", pairs=80, seed=4, workers=2, progress=False, noise=noise)
    assert digest(tmp_path / "clean/FS2K/photo") == digest(tmp_path / "noisy/FS2K/photo")
    clean, _ = read_fs2k(tmp_path / "clean/FS2K", progress=False)
    noisy, _ = read_fs2k(tmp_path / "noisy/FS2K", progress=False)
    log = pd.read_csv(tmp_path / "noisy/label_noise.csv")
    diffs = []
    for a in schema.ATTRIBUTE_NAMES:
        changed = clean[a] != noisy[a]
        diffs += [(n, a, t, v) for n, t, v in zip(clean.image_name[changed], clean[a][changed],
                                                  noisy[a][changed], strict=True)]
    assert sorted(diffs) == sorted(zip(log.image_name, log.attribute, log.true_label,
                                       log.noisy_label, strict=True))
    for split in ("train", "test"):
        part = clean[clean.fs2k_split == split]
        flipped = log[(log.split == split) & (log.attribute == "earring")]
        assert len(flipped) == round(0.5 * (part.earring == 0).sum())
        assert (log[(log.split == split) & (log.attribute == "hair")].shape[0]
                == (part.hair == 1).sum())
    assert ((noisy.hair == 1) == (noisy.hair_color == 3)).all()
    clean_log = pd.read_csv(tmp_path / "clean/label_noise.csv")
    assert clean_log.empty and list(clean_log.columns) == list(log.columns)


def test_confusion_rows_flip_to_the_classes_they_name():
    rng = np.random.default_rng(0)
    labels = assign_labels(600, {a: schema.FS2K_COUNTS["train"][a] for a in schema.ATTRIBUTE_NAMES},
                           rng)
    red = int((labels["hair_color"] == 2).sum())
    noise = {"hair_color": {2: {0: 0.5, 1: 0.25}}, "earring": {1: {0: 0.4}}}
    noisy, flips = apply_noise(labels, noise, np.random.default_rng(1))
    got = pd.Series([(a, t, v) for _, a, t, v in flips]).value_counts().to_dict()
    assert got == {("hair_color", 2, 0): quota(red, [0.5, 0.25, 0.25])[0],
                   ("hair_color", 2, 1): quota(red, [0.5, 0.25, 0.25])[1],
                   ("earring", 1, 0): round(0.4 * (labels["earring"] == 1).sum())}
    for i, a, t, v in flips:
        assert labels[a][i] == t and noisy[a][i] == v

    # a confused hair takes its colour along, as uniform flips do
    noisy, flips = apply_noise(labels, {"hair": {0: {1: 0.2}}}, np.random.default_rng(2))
    assert sum(a == "hair" for _, a, _, _ in flips) == round(0.2 * (labels["hair"] == 0).sum())
    assert ((noisy["hair"] == 1) == (noisy["hair_color"] == 3)).all()


def test_cli_and_missing_colours(tmp_path, capsys):
    assert cli.main(["synth", str(tmp_path / "s"), "--pairs", "30", "--seed", "2", "--workers", "1",
                "--noise", "style:2=0.5,hair_color:0>1=0.5"]) == 0
    summary = json.loads((tmp_path / "s/synthetic.json").read_text())
    assert json.loads(capsys.readouterr().out)["pairs"] == 30
    assert summary["pairs"] == 30
    assert summary["noise"] == {"style": {"2": 0.5}, "hair_color": {"0": {"1": 0.5}}}
    log = pd.read_csv(tmp_path / "s/label_noise.csv")
    brown = log[log.attribute == "hair_color"]
    assert len(brown) > 0 and (brown.true_label == 0).all() and (brown.noisy_label == 1).all()
    assert (tmp_path / "s/FS2K/anno_train.json").is_file()


def test_missing_colour_forms(tmp_path):
    generate(tmp_path / "m", pairs=30, seed=0, workers=1, progress=False, missing_color_rate=1.0)
    text = (tmp_path / "m/FS2K/anno_train.json").read_text()
    assert "NaN" in text and '"nan"' in text and "[]" in text
    _, report = read_fs2k(tmp_path / "m/FS2K", progress=False)
    assert report.problems == [] and report.missing_colors["lip_color"] == 30


@pytest.mark.parametrize("kwargs, message", [
    ({"pairs": 5}, "pairs must be at least"),
    ({"noise": {"mood": {0: 0.1}}}, "unknown attribute"),
    ({"noise": {"smile": {2: 0.1}}}, r"class must be in 0\.\.1"),
    ({"noise": {"smile": {0: 1.5}}}, r"noise.smile.0: rate\(s\) \[1.5\] not in \[0, 1\]"),
    ({"noise": {"hair_color": {2: {0: 0.3, 5: 0.1}}}}, r"noisy classes must be other classes"),
    ({"noise": {"hair_color": {2: {2: 0.3}}}}, r"noisy classes must be other classes"),
    ({"noise": {"hair_color": {2: {0: 0.7, 1: 0.4}}}}, r"add up to 1\.1, over 1"),
    ({"noise": {"hair_color": {0: {3: 0.2}}}}, r"hair_color 3 \(no hair\) follows hair"),
    ({"priors": {"smile": {"train": [1, 2, 3]}}}, "must be 2 non-negative"),
    ({"label_orders": ("segnext",)}, "unknown label order"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises((ValueError, KeyError), match=message):
        generate(tmp_path / "x", **{"pairs": 30, "progress": False, **kwargs})


def test_refuses_to_overwrite(tmp_path):
    generate(tmp_path / "o", pairs=20, workers=1, progress=False)
    with pytest.raises(OutputError, match="not empty"):
        generate(tmp_path / "o", pairs=20, workers=1, progress=False)
    assert layout.find_image(tmp_path / "o/FS2K", "photo/photo1/image0001") is not None


def test_cli_writes_atomically_and_never_over_foreign_data(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert cli.main(["-q", "synth", str(mine), "--pairs", "20", "--workers", "1"]) == 1
    assert "replaces only a folder it wrote" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    out = tmp_path / "out"
    assert cli.main(["-q", "synth", str(out), "--pairs", "20", "--workers", "1"]) == 0
    assert cli.main(["-q", "synth", str(out), "--pairs", "21", "--workers", "1"]) == 0  # its own
    assert json.loads((out / "synthetic.json").read_text())["pairs"] == 21
    assert cli.main(["-q", "synth", str(tmp_path / "x"), "--pairs", "5"]) == 1
    assert "pairs must be at least 20" in capsys.readouterr().err


@pytest.mark.slow
def test_full_size_synthetic_passes_prepare_with_fs2k_counts(tmp_path):
    """The acceptance check: 2,104 pairs, zero problems, counts within 2 of the priors."""
    from esgar.active.relabels import read_snapshot
    from esgar.data.table import build_sample_table

    generate(tmp_path / "full", pairs=2104, seed=0, progress=False)
    fs2k, report = read_fs2k(tmp_path / "full/FS2K", progress=False)
    assert report.problems == [] and len(fs2k) == 2104
    table, _ = build_sample_table(fs2k, 0.15, 0, read_snapshot(tmp_path / "none.csv"))
    for fs2k_split, splits in (("train", ["train", "val"]), ("test", ["test"])):
        part = table[table["split"].isin(splits)]
        for a in schema.ATTRIBUTES:
            got = np.bincount(part[a.name], minlength=a.num_classes)
            assert np.abs(got - schema.FS2K_COUNTS[fs2k_split][a.name]).max() <= 2, a.name

"""The mask-degradation model: each mode changes a map the documented way, the same for the
same seed, and level 0 changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from esgar.masks import degrade as dg
from esgar.masks.labels import CANONICAL_CLASSES

C = {name: i for i, name in enumerate(CANONICAL_CLASSES)}


def face() -> np.ndarray:
    """A 128x128 canonical map: skin disc, hair cap, eyes, brows, mouth, lips, ears, an
    earring, neck and cloth."""
    lab = np.zeros((128, 128), np.uint8)
    yy, xx = np.mgrid[0:128, 0:128]
    lab[(yy - 64) ** 2 + (xx - 64) ** 2 < 40 ** 2] = C["skin"]
    lab[(yy < 45) & ((yy - 64) ** 2 + (xx - 64) ** 2 < 46 ** 2)] = C["hair"]
    lab[100:128, 50:78] = C["neck"]
    lab[118:128, 30:98] = C["cloth"]
    lab[55:60, 45:55], lab[55:60, 73:83] = C["l_eye"], C["r_eye"]
    lab[49:52, 44:56], lab[49:52, 72:84] = C["l_brow"], C["r_brow"]
    lab[80:84, 55:73], lab[84:88, 55:73] = C["u_lip"], C["l_lip"]
    lab[60:75, 20:25], lab[60:75, 103:108] = C["l_ear"], C["r_ear"]
    lab[76:80, 21:24] = C["ear_r"]
    return lab


def area(lab: np.ndarray, name: str) -> int:
    return int((lab == C[name]).sum())


def test_level_zero_is_the_identity():
    lab = face()
    spec = dg.Degradation(level=0, jitter_px=9, small_miss=1)
    assert np.array_equal(dg.degrade(lab, spec, np.random.default_rng(0)), lab)


def test_same_seed_same_map_other_seed_other_map():
    lab, spec = face(), dg.Degradation(level=3)
    a = dg.degrade(lab, spec, dg.sample_rng(7, 12))
    assert np.array_equal(a, dg.degrade(lab, spec, dg.sample_rng(7, 12)))
    assert not np.array_equal(a, dg.degrade(lab, spec, dg.sample_rng(8, 12)))
    assert not np.array_equal(a, lab)


def test_erosion_shrinks_and_dilation_grows_every_class():
    lab = face()
    shrunk, grown = dg.morph(lab, -2), dg.morph(lab, 2)
    for name in ("skin", "hair", "neck", "l_eye", "u_lip"):
        assert area(shrunk, name) < area(lab, name), name
    assert area(grown, "background") < area(lab, "background")
    assert area(grown, "hair") > area(lab, "hair")
    assert np.array_equal(grown[lab != 0], lab[lab != 0])  # only the background is taken


def test_miss_rate_one_empties_every_small_part_and_zero_keeps_them():
    lab = face()
    gone = dg.miss_classes(lab, dg.SMALL, 1.0, np.random.default_rng(0))
    assert all(area(gone, n) == 0 for n in ("ear_r", "l_eye", "r_eye", "u_lip", "l_brow"))
    assert gone[57, 50] == C["skin"]  # an eye is filled by the skin around it
    assert np.array_equal(dg.miss_classes(lab, dg.SMALL, 0.0, np.random.default_rng(0)), lab)


def test_hair_bleeds_into_background_and_neck_only():
    lab = face()
    out = dg.hair_bleed(lab, 3)
    assert area(out, "hair") > area(lab, "hair")
    changed = out != lab
    assert set(np.unique(lab[changed])) <= {C["background"], C["neck"]}
    assert set(np.unique(out[changed])) == {C["hair"]}


def test_jitter_moves_boundaries_by_a_few_pixels():
    lab = face()
    out = dg.jitter(lab, 3.0, np.random.default_rng(1))
    changed = out != lab
    assert 0 < changed.mean() < 0.2  # boundaries move; the face stays a face
    dist = np.abs(np.argwhere(out == C["skin"]).mean(0) - np.argwhere(lab == C["skin"]).mean(0))
    assert (dist < 3.5).all()


def test_swap_rate_one_swaps_neighbouring_pairs():
    lab = face()
    out = dg.swap_pairs(lab, 1.0, np.random.default_rng(0))
    assert out[57, 50] == C["r_eye"] and out[57, 78] == C["l_eye"]
    assert out[82, 60] == C["l_lip"] and area(out, "hat") == area(lab, "hair")


def test_a_whole_region_missed_at_rate_one():
    lab = face()
    out = dg.miss_classes(lab, (C["neck"],), 1.0, np.random.default_rng(0))
    assert area(out, "neck") == 0


def test_negative_settings_are_refused():
    with pytest.raises(ValueError, match="swap"):
        dg.Degradation(level=1, swap=-0.1)


def test_fractional_radii_round_up_at_their_fraction():
    rng = np.random.default_rng(0)
    draws = np.array([dg.stochastic_round(1.25, rng) for _ in range(4000)])
    assert set(np.unique(draws)) == {1, 2}
    assert abs(draws.mean() - 1.25) < 0.03
    assert dg.stochastic_round(2.0, rng) == 2 and dg.stochastic_round(0.0, rng) == 0


def test_higher_levels_lower_every_class_f1():
    lab = face()

    def f1(level: float) -> np.ndarray:
        spec = dg.Degradation(level=level)
        return dg.class_f1((lab, dg.degrade(lab, spec, dg.sample_rng(0, i))) for i in range(12))

    low, high = f1(1), f1(4)
    present = [C[n] for n in ("skin", "hair", "neck", "l_eye", "u_lip", "l_ear")]
    assert (high[present] < low[present]).all() and (low[present] < 1).all()


def test_pooled_class_f1_is_scikit_learns_on_the_pooled_pixels():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    maps = [(face(), dg.degrade(face(), dg.Degradation(level=2), rng)) for _ in range(3)]
    ours = dg.class_f1(maps)
    exact = np.concatenate([e.ravel() for e, _ in maps])
    noisy = np.concatenate([n.ravel() for _, n in maps])
    present = np.union1d(exact, noisy)
    ref = f1_score(exact, noisy, labels=present, average=None)
    assert np.allclose(ours[present], ref)
    assert np.isnan(ours[np.setdiff1d(np.arange(len(CANONICAL_CLASSES)), present)]).all()

"""Region masks: label orders, token grids, import, parsing, bad inputs, quality."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from esgar.masks import store
from esgar.masks.build import parsed_masks
from esgar.masks.grids import token_grid
from esgar.masks.importer import MaskError, read_label_map, read_region_folder
from esgar.masks.labels import BISENET_CLASSES, PARSENET_CLASSES, lookup, remap
from esgar.masks.parsers import ParserWeightsError, load_parser, parse_batch, parse_one_reference
from esgar.masks.quality import quality_report
from esgar.masks.regions import (
    apply_fallback,
    bits_to_masks,
    label_to_bits,
    masks_to_bits,
    region_lut,
)
from tests.helpers import repo_params, write_random_weights

REGIONS = repo_params("masks")["regions"]  # the project's regions
NAMES = list(REGIONS)


def drawn_label_map(h: int = 40, w: int = 30) -> np.ndarray:
    """A canonical (bisenet-order) map with a band of every class."""
    return (np.arange(h * w).reshape(h, w) // (h * w // 19 + 1)).astype(np.uint8)


def test_both_parser_orders_give_the_same_regions(tmp_path):
    canon = drawn_label_map()
    names = np.array(BISENET_CLASSES)[canon]
    as_parsenet = np.vectorize(PARSENET_CLASSES.index)(names).astype(np.uint8)
    lut = region_lut(REGIONS)
    for order, arr in (("bisenet", canon), ("parsenet", as_parsenet)):
        Image.fromarray(arr).save(tmp_path / f"{order}.png")
        got = read_label_map(tmp_path / f"{order}.png", order, (30, 40))
        assert np.array_equal(bits_to_masks(label_to_bits(got, lut), len(NAMES)),
                              bits_to_masks(label_to_bits(canon, lut), len(NAMES)))
    assert np.array_equal(remap(remap(canon, "bisenet", "parsenet"), "parsenet"), canon)
    assert lookup("parsenet", "bisenet")[13] == BISENET_CLASSES.index("hair")


def test_regions_are_unions_of_classes():
    canon = drawn_label_map()
    masks = bits_to_masks(label_to_bits(canon, region_lut(REGIONS)), len(NAMES))
    for i, (name, classes) in enumerate(REGIONS.items()):
        want = np.isin(canon, [BISENET_CLASSES.index(c) for c in classes])
        assert np.array_equal(masks[i], want), name
    assert np.array_equal(bits_to_masks(masks_to_bits(masks), len(NAMES)), masks)
    with pytest.raises(ValueError, match="region 'x': unknown class"):
        region_lut({"x": ["tail"]})


def test_fallback_follows_chains():
    masks = np.zeros((3, 4, 4), bool)
    masks[2, 1, 1] = True  # only "face" is drawn
    filled, fell = apply_fallback(masks, ["earring", "ears", "face"],
                                  {"earring": "ears", "ears": "face"})
    assert fell == ["earring", "ears"]
    assert np.array_equal(filled[0], masks[2]) and np.array_equal(filled[1], masks[2])
    kept, fell = apply_fallback(masks, ["earring", "ears", "face"], {})
    assert fell == [] and not kept[0].any()


def test_token_grid_rules():
    m = np.zeros((1, 224, 224), bool)
    m[0, :4, :32] = True        # cell (0,0): 128 of 1024 pixels = 12.5 % -> 1
    m[0, 32:33, 32:52] = True   # cell (1,1): 20 pixels = 1.95 % -> kept as 0.0195
    g = token_grid(m, (7, 7), "esgar")
    assert g.shape == (1, 7, 7) and g.dtype == np.float32
    assert g[0, 0, 0] == 1.0
    assert g[0, 1, 1] == pytest.approx(20 / 1024)
    assert g.sum() == pytest.approx(1 + 20 / 1024)
    soft = token_grid(m, (7, 7), "soft")
    assert soft[0, 0, 0] == pytest.approx(0.125)
    odd = token_grid(np.ones((2, 3, 100, 90), bool), (7, 7))
    assert odd.shape == (2, 3, 7, 7) and np.all(odd == 1)
    batch = torch.from_numpy(np.stack([m, ~m])).float()
    assert torch.allclose(token_grid(batch, (7, 7)), torch.from_numpy(
        np.stack([token_grid(m, (7, 7)), token_grid(~m, (7, 7))])))
    with pytest.raises(ValueError, match="unknown grid rule"):
        token_grid(m, (7, 7), "hard")


def test_import_round_trip_from_generator(tmp_path):
    from esgar.data.fs2k import read_fs2k
    from esgar.data.synthetic import generate

    generate(tmp_path / "s", pairs=20, seed=2, workers=1, progress=False,
             label_orders=("parsenet",))
    table, _ = read_fs2k(tmp_path / "s/FS2K", progress=False)
    lut = region_lut(REGIONS)
    for row in table.itertuples():
        raw = np.asarray(Image.open(tmp_path / "s/parsing/parsenet" / f"{row.image_name}.png"))
        drawn = remap(raw, "parsenet")
        got = read_label_map(tmp_path / "s/parsing/parsenet" / f"{row.image_name}.png",
                             "parsenet", (row.width, row.height))
        masks = bits_to_masks(label_to_bits(got, lut), len(NAMES))
        assert np.array_equal(masks[NAMES.index("hair")], drawn == BISENET_CLASSES.index("hair"))
        assert masks[NAMES.index("earring")].any() == (row.earring == 0)
        # the same masks written as per-region folders import back identically
        for i, name in enumerate(NAMES):
            p = tmp_path / "seg" / f"seg_{name}" / f"{row.image_name}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(masks[i].astype(np.uint8) * 255).save(p)
        again = read_region_folder(tmp_path / "seg", row.image_name, NAMES,
                                   (row.width, row.height))
        assert np.array_equal(again, masks)


@pytest.mark.bad_input(stage="masks", kind="data")
def test_bad_mask_files(tmp_path):
    Image.fromarray(np.zeros((40, 30), np.uint8)).save(tmp_path / "ok.png")
    with pytest.raises(MaskError, match="missing.png: no mask file"):
        read_label_map(tmp_path / "missing.png", "bisenet", (30, 40))
    with pytest.raises(MaskError, match=r"ok.png: mask is 30x40 but the sketch is 50x40"):
        read_label_map(tmp_path / "ok.png", "bisenet", (50, 40))
    Image.fromarray(np.full((40, 30), 19, np.uint8)).save(tmp_path / "big.png")
    with pytest.raises(MaskError, match="big.png: class index 19"):
        read_label_map(tmp_path / "big.png", "parsenet", (30, 40))
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(MaskError, match="corrupt.png: unreadable PNG"):
        read_label_map(tmp_path / "corrupt.png", "bisenet", (30, 40))
    Image.new("RGB", (30, 40)).save(tmp_path / "rgb.png")
    with pytest.raises(MaskError, match="rgb.png: expected a single-channel image"):
        read_label_map(tmp_path / "rgb.png", "bisenet", (30, 40))
    with pytest.raises(MaskError, match="seg_hair: no folder for region 'hair'"):
        read_region_folder(tmp_path, "photo1/image0001", ["hair"], (30, 40))
    assert not read_region_folder(tmp_path, "photo1/image0001", ["hair"], (30, 40),
                                  missing_region="empty").any()


@pytest.mark.parametrize("name", ["bisenet", "parsenet"])
def test_parser_loads_local_weights_and_batches_like_one_at_a_time(tmp_path, name):
    write_random_weights(tmp_path, name)
    model = load_parser(name, tmp_path, "cpu")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (60, 50, 3), dtype=np.uint8),
              rng.integers(0, 255, (40, 70, 3), dtype=np.uint8)]
    batch = parse_batch(model, name, images, precision="fp32")
    assert [b.shape for b in batch] == [(60, 50), (40, 70)]
    for im, b in zip(images, batch, strict=True):
        assert np.array_equal(b, parse_one_reference(model, name, im))
        assert b.max() < 19


@pytest.mark.bad_input(stage="masks", kind="data")
def test_parser_without_weights_offline_names_the_file(tmp_path, monkeypatch):
    from urllib.error import URLError

    import facexlib.utils.misc as misc

    def offline(url, dst, hash_prefix=None, progress=True):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(misc, "download_url_to_file", offline)
    with pytest.raises(ParserWeightsError) as err:
        load_parser("parsenet", tmp_path / "weights", "cpu", point_to="set THE_SETTING")
    msg = str(err.value)
    assert "parsing_parsenet.pth" in msg and msg.endswith("set THE_SETTING.")
    assert "releases/download/v0.2.2/parsing_parsenet.pth" in msg


@pytest.mark.bad_input(stage="masks", kind="service")
def test_parser_weights_from_a_silent_host_fail_within_the_timeout(tmp_path, monkeypatch,
                                                                    silent_url):
    """A host that accepts the connection and never answers: facexlib's download has no
    timeout of its own, so the parser bounds it."""
    import socket
    import time

    import esgar.masks.parsers as parsers

    for var in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(var, silent_url)
    monkeypatch.setenv("no_proxy", "")
    monkeypatch.setattr(parsers, "DOWNLOAD_TIMEOUT_S", 1.0)
    start = time.monotonic()
    with pytest.raises(ParserWeightsError, match="could not be downloaded .*timed out"):
        load_parser("bisenet", tmp_path / "weights", "cpu")
    assert time.monotonic() - start < 10
    assert socket.getdefaulttimeout() is None  # restored


def test_store_round_trip_and_quality(tmp_path):
    masks = np.zeros((3, 10, 20), bool)
    masks[0, :5] = True
    masks[2, 0, 0] = True
    path = store.write_region_masks(tmp_path, "photo1_image0001", masks)
    store.write_meta(tmp_path, {"regions": [{"name": n, "classes": []} for n in "abc"]})
    assert np.array_equal(store.load_region_masks(tmp_path, "photo1_image0001"), masks)
    assert Image.open(path).size == (20, 10)
    index = pd.DataFrame({
        "sample_id": ["s1", "s2", "s3", "s4"], "split": ["train", "train", "val", "val"],
        "area_a": [0.5, 0.0, 0.0, 0.2], "area_b": [0.0005, 0.3, 0.1, 0.1],
        "fell_back_a": [False, True, True, False], "fell_back_b": [False] * 4})
    q = quality_report(index, ["a", "b"], tiny=0.001)
    assert q["train"]["a"] == {"empty": 0.5, "tiny": 0.0, "fell_back": 0.5, "mean_area": 0.25}
    assert q["train"]["b"]["tiny"] == 0.5 and q["val"]["a"]["empty"] == 0.5


def _photo_table(folder: Path, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    paths = []
    for i in range(n):
        path = folder / f"photo{i}.jpg"
        cv2.imwrite(str(path), rng.integers(0, 255, (64 + 8 * i, 60, 3), dtype=np.uint8))
        paths.append(str(path))
    return pd.DataFrame({"photo_path": paths})


def test_parsing_in_two_processes_gives_one_process_label_maps(tmp_path):
    """The masks stage's `processes`: 7 photos in batches of 2 through 2 worker processes of one
    thread each, against one process on one thread: the same label maps, in row order."""
    write_random_weights(tmp_path, "bisenet")
    table = _photo_table(tmp_path, 7)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = list(parsed_masks(table, "bisenet", tmp_path, "cpu", 2, "fp32"))
        torch.set_num_threads(2)
        parallel = list(parsed_masks(table, "bisenet", tmp_path, "cpu", 2, "fp32",
                                     processes=2))
    finally:
        torch.set_num_threads(threads)
    assert [i for i, _ in parallel] == [i for i, _ in serial] == list(range(7))
    for (_, a), (_, b) in zip(serial, parallel, strict=True):
        assert np.array_equal(a, b)


@pytest.mark.bad_input(stage="masks", kind="data")
def test_an_unreadable_photo_in_a_parsing_worker_is_named(tmp_path):
    write_random_weights(tmp_path, "bisenet")
    table = _photo_table(tmp_path, 5)
    Path(table["photo_path"].iloc[3]).write_bytes(b"not a jpeg")
    with pytest.raises(MaskError, match=r"photo3.jpg: cannot read the image to parse"):
        list(parsed_masks(table, "bisenet", tmp_path, "cpu", 2, "fp32", processes=2))

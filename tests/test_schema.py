"""The attribute schema is data: FS2K's and CelebA's descriptions, a user's own file, the one in
use chosen by params.yaml's `data.dataset`, and a table or a model of another dataset."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from esgar import schema
from esgar.data.table import TableError, build_sample_table, load_table
from esgar.errors import ConfigError
from esgar.models.factory import create_model, load_trained, model_schema, save_trained
from esgar.schema import Schema, load_schema
from pipeline.params.base import load
from pipeline.params.model import ModelParams
from tests.helpers import ATTRIBUTE_REGIONS

REPO = Path(__file__).resolve().parents[1]
REGIONS = ("hair", "earring", "face", "foreground", "mouth", "eyes", "brows", "nose", "ears",
           "neck")


def test_the_packaged_schemas():
    fs2k, celeba, lfwa = (load_schema(n) for n in ("fs2k", "celeba", "lfwa"))
    assert fs2k == schema.FS2K and fs2k.names[:2] == ("hair", "hair_color")
    assert fs2k.paper_attributes == tuple(n for n in fs2k.names if n != "hair_color")
    assert [fs2k.minority(a) for a in ("hair", "earring", "style")] == [1, 0, 2]
    assert len(celeba.attributes) == 40 and celeba.names[0] == "5_o_Clock_Shadow"
    assert {a.classes for a in celeba.attributes} == {("absent", "present")}
    assert celeba.splits == ("train", "val", "test") and lfwa.splits == ("train", "test")
    assert celeba.paper_attributes == celeba.names and lfwa.names == celeba.names
    assert set(celeba.regions.values()) <= set(REGIONS)  # every region a mask store makes
    assert celeba.minority("Bald", [0, 0, 0, 1]) == 1
    with pytest.raises(ValueError, match="publishes no class counts"):
        celeba.minority("Bald")
    assert Schema.from_dict(celeba.to_dict()) == celeba


def test_the_schema_in_use_follows_params_yaml(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["dataset"] = "celeba"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"model.attribute_regions: unknown attribute\(s\) "
                       r"earring, .*, hair, .* the attributes of celeba are 5_o_Clock_Shadow"):
        load(path, model=ModelParams)
    params["model"]["attribute_regions"] = {"Smiling": "mouth"}
    path.write_text(yaml.safe_dump(params))
    mp = load(path, model=ModelParams)["model"]
    assert len(schema.ATTRIBUTES) == 40 and schema.active().name == "celeba"
    assert mp.attribute_regions["Smiling"] == "mouth"  # given
    assert mp.attribute_regions["Bald"] == "hair"  # the schema's
    params["data"]["dataset"] = "celebahq"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"data.dataset: unknown dataset 'celebahq'; known: "
                       r"fs2k, celeba, celebamask_hq, lfwa"):
        load(path, model=ModelParams)
    del params["data"]["dataset"]  # a params file from before datasets were a setting: FS2K
    params["model"]["attribute_regions"] = ATTRIBUTE_REGIONS
    path.write_text(yaml.safe_dump(params))
    load(path, model=ModelParams)
    assert schema.active() == schema.FS2K


@pytest.mark.bad_input(stage="prepare", kind="params")
@pytest.mark.parametrize("text, message", [
    ("name: x\nattributes: {smile: {classes: [no, yes]}}",
     "attribute smile: classes must be two or more distinct names \\(quote yes/no"),
    ("name: x\nattributes: {smile: {classes: [only]}}", "attribute smile: classes must be two"),
    ("name: x\nattributes: {}", "attributes missing"),
    ("name: x\nattribute: {smile: {classes: [a, b]}}", "unknown key\\(s\\) attribute"),
    ("name: x\nattributes: {smile: {classes: [a, b]}}\npaper_attributes: [gender]",
     "paper_attributes must be 'all' or attributes of the schema"),
    ("name: x\nattributes: {smile: {classes: [a, b]}}\ncounts: {train: {smile: [3]}}",
     "counts.train.smile: one count per class"),
    ("name: x\nattributes: {smile: {classes: [a, b]}}\nsplits: [train]",
     "splits must hold train and test"),
    ("name: [x", "not valid YAML"),
])
def test_a_bad_schema_file_is_one_line_naming_it(tmp_path, text, message):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"mine.yaml: {message}"):
        load_schema(path)


def test_a_users_own_schema_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nattributes:\n  glasses: {classes: ['no', 'yes'], region: eyes}\n"
                    "  age: {classes: [child, adult, senior]}\n")
    mine = load_schema(path)
    assert mine.names == ("glasses", "age") and mine.paper_attributes == mine.names
    assert mine.attribute("age").region == "foreground" and mine.splits == ("train", "test")


def test_a_table_of_another_dataset_is_refused(tmp_path):
    celeba = load_schema("celeba")
    rows = pd.DataFrame({"sample_id": ["a", "b", "c"], "image_name": ["a", "b", "c"],
                         "dataset_split": ["train", "val", "test"],
                         "sketch_path": ["a.jpg", "b.jpg", "c.jpg"],
                         "photo_path": ["a.jpg", "b.jpg", "c.jpg"],
                         **{n: [0, 1, 0] for n in celeba.names}})
    with schema.using(celeba):
        table, _ = build_sample_table(rows, 0.15, 0, pd.DataFrame())
        assert table["split"].tolist() == ["train", "val", "test"]  # the dataset's own val
        table.to_parquet(tmp_path / "samples.parquet", index=False)
        assert len(load_table(tmp_path / "samples.parquet")) == 3
    with pytest.raises(TableError, match=r"samples.parquet: a table of celeba, but the dataset "
                       r"in use is fs2k \(data.dataset in params.yaml\); run the prepare stage"):
        load_table(tmp_path / "samples.parquet")


def test_a_model_of_another_dataset_loads_with_its_own_schema(tmp_path):
    celeba = load_schema("celeba")
    with schema.using(celeba):
        net = create_model("resnet18", "esg", region_names=REGIONS,
                           attribute_regions=celeba.regions, pretrained=False, img_size=64)
    torch.save(net.state_dict(), tmp_path / "best.pt")
    save_trained(tmp_path, net)
    assert schema.active() == schema.FS2K
    back, _ = load_trained(tmp_path)
    assert back.attributes == celeba.names and model_schema(back.config) == celeba
    out = back(torch.rand(1, 3, 64, 64), torch.ones(1, len(REGIONS), 2, 2))
    assert set(out) == set(celeba.names) and out["Smiling"].shape == (1, 2)
    fs2k = create_model("resnet18", "global", region_names=REGIONS,
                        attribute_regions=ATTRIBUTE_REGIONS, pretrained=False, img_size=64)
    assert "schema" not in fs2k.config  # FS2K's models are saved as before

"""label_config.xml asks every attribute of the schema, with exactly its classes, in order, and
shows what the `push` stage's tasks carry."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from esgar import schema
from esgar.active.label_config import FROM_SCHEMA, config_problems, interface_text, label_config
from esgar.errors import ConfigError
from esgar.schema import load_schema

CONFIG = Path(__file__).resolve().parents[1] / "label_config.xml"
TASK_FIELDS = {"$sketch", "$photo", "$overlay", "$sample_id", "$in_question"}


def test_label_config_matches_the_schema():
    root = ET.parse(CONFIG).getroot()
    images = {i.get("name"): i.get("value") for i in root.iter("Image")}
    assert images == {"sketch": "$sketch", "photo": "$photo", "overlay": "$overlay"}
    fields = {e.get("value") for e in root.iter() if (e.get("value") or "").startswith("$")}
    assert fields == TASK_FIELDS
    questions = {c.get("name"): c for c in root.iter("Choices")}
    assert list(questions) == [*schema.ATTRIBUTE_NAMES, "unsure"]
    for a in schema.ATTRIBUTES:
        q = questions[a.name]
        assert q.get("toName") == "sketch" and q.get("choice") == "single-radio"
        assert tuple(c.get("alias") for c in q.iter("Choice")) == a.classes, a.name
        values = [c.get("value") for c in q.iter("Choice")]
        assert len(set(values)) == len(values), a.name
    assert [c.get("alias") for c in questions["unsure"].iter("Choice")] == ["unsure",
                                                                              "bad_image"]


def test_a_generated_interface_asks_the_schema_grouped_by_region():
    celeba = load_schema("celeba")
    text = label_config(celeba)
    assert config_problems(text, celeba) == []
    root = ET.fromstring(text)
    headers = [h.get("value") for h in root.iter("Header")][1:-1]
    assert headers == list(dict.fromkeys(r.capitalize() for r in celeba.regions.values()))
    assert len(headers) < 12  # 40 questions read as a few groups
    # FS2K's own file fits FS2K and not CelebA, and the reverse
    assert config_problems(CONFIG.read_text(), schema.FS2K) == []
    assert "no question for Smiling" in config_problems(CONFIG.read_text(), celeba)
    assert "question(s) 5_o_Clock_Shadow, Chubby" in " ".join(config_problems(text, schema.FS2K))


def test_an_interface_that_does_not_fit_is_refused_naming_file_and_problem(tmp_path):
    bad = tmp_path / "interface.xml"
    bad.write_text(CONFIG.read_text().replace('alias="golden"', 'alias="blond"'))
    with pytest.raises(ConfigError, match=r"interface.xml: not an interface for fs2k's "
                       r"attributes: hair_color: needs a single-radio question with aliases "
                       r"brown, black, red, no_hair, golden"):
        interface_text(str(bad), schema.FS2K)
    bad.write_text("<View><Choices")
    with pytest.raises(ConfigError, match="not well-formed XML"):
        interface_text(str(bad), schema.FS2K)
    assert interface_text(FROM_SCHEMA, schema.FS2K) == label_config(schema.FS2K)

"""label_config.xml asks every attribute of the schema, with exactly its classes, in order."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from esgar import schema

CONFIG = Path(__file__).resolve().parents[1] / "label_config.xml"


def test_label_config_matches_the_schema():
    root = ET.parse(CONFIG).getroot()
    image = root.find("Image")
    assert image is not None and image.get("value") == "$image"
    questions = {c.get("name"): c for c in root.iter("Choices")}
    assert list(questions) == list(schema.ATTRIBUTE_NAMES)
    for a in schema.ATTRIBUTES:
        q = questions[a.name]
        assert q.get("toName") == image.get("name") and q.get("choice") == "single-radio"
        assert tuple(c.get("alias") for c in q.iter("Choice")) == a.classes, a.name
        values = [c.get("value") for c in q.iter("Choice")]
        assert len(set(values)) == len(values), a.name

"""label_config.xml asks every attribute of the schema, with exactly its classes, in order, and
shows what the `push` stage's tasks carry."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from esgar import schema

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

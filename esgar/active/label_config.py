"""The Label Studio labelling interface of a schema, and the check that a config fits one.

FS2K's interface is the hand-written `label_config.xml` (its questions worded for people). Any
other dataset's is generated from its schema: the task's images, then one single-choice
question per attribute (`name` = the attribute, each choice's `alias` = a class name, which
is what `pull` reads back), grouped under one header per face region so that CelebA's 40
questions read as ten short groups, and the Unsure / bad image question. The task fields are
those `push` writes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import quoteattr

from esgar.errors import ConfigError
from esgar.schema import Schema

__all__ = ["FROM_SCHEMA", "TASK_FIELDS", "config_problems", "interface_text", "label_config"]

FROM_SCHEMA = "from_schema"  # push.label_config's value for a generated interface
TASK_FIELDS = frozenset({"$sketch", "$photo", "$overlay", "$sample_id", "$in_question"})
UNSURE = ("unsure", "bad_image")

_INSTRUCTIONS = (
    "Answer the attributes named below (their regions are coloured on the right) from what the "
    "image shows. The others start from the current label: change one only where the image "
    "clearly shows otherwise. Cannot tell? Tick Unsure and answer your best guess.")
_HEAD = f"""<View>
  <Header value="{_INSTRUCTIONS}"/>
  <Text name="in_question" value="$in_question"/>
  <View style="display: flex; gap: 8px; align-items: flex-start">
    <Image name="sketch" value="$sketch" zoom="true" maxWidth="360px"/>
    <Image name="photo" value="$photo" maxWidth="360px"/>
    <Image name="overlay" value="$overlay" maxWidth="360px"/>
  </View>
  <Text name="sample" value="$sample_id"/>
"""
_TAIL = """
  <Header value="Cannot tell?"/>
  <Choices name="unsure" toName="sketch" choice="multiple" showInline="true">
    <Choice value="Unsure about the attributes in question" alias="unsure"/>
    <Choice value="Bad image (unreadable, not a face)" alias="bad_image"/>
  </Choices>
</View>
"""


def _words(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


def label_config(s: Schema) -> str:
    """The XML text of `s`'s labelling interface (questions grouped by region, in the order
    the regions first appear in the schema; attributes in schema order within a group)."""
    groups: dict[str, list] = {}
    for a in s.attributes:
        groups.setdefault(a.region, []).append(a)
    parts = [f"<!-- Label Studio labelling interface for {s.name}, generated from its schema "
             "(esgar label-config). -->\n", _HEAD]
    for region, attrs in groups.items():
        parts.append(f'\n  <Header value={quoteattr(_words(region))}/>\n')
        for a in attrs:
            parts.append(f'  <View style="display: flex; gap: 12px; align-items: center">\n'
                         f'    <Text name={quoteattr("q_" + a.name)} '
                         f'value={quoteattr(_words(a.name))}/>\n'
                         f'    <Choices name={quoteattr(a.name)} toName="sketch" '
                         'choice="single-radio" required="true" showInline="true">\n')
            parts += [f'      <Choice value={quoteattr(_words(c))} alias={quoteattr(c)}/>\n'
                      for c in a.classes]
            parts.append("    </Choices>\n  </View>\n")
    parts.append(_TAIL)
    return "".join(parts)


def config_problems(xml_text: str, s: Schema) -> list[str]:
    """What keeps `xml_text` from asking `s`'s attributes as `push` and `pull` need: one line
    each (empty: it fits). Checked: well-formed, the task fields, one single-choice question
    per attribute with exactly its classes as aliases in class order, the Unsure question."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as e:
        return [f"not well-formed XML ({e})"]
    problems = []
    fields = {e.get("value") for e in root.iter() if (e.get("value") or "").startswith("$")}
    if fields != TASK_FIELDS:
        problems.append(f"task fields {', '.join(sorted(fields))}; push writes "
                        f"{', '.join(sorted(TASK_FIELDS))}")
    questions = {c.get("name"): c for c in root.iter("Choices")}
    extra = [q for q in questions if q not in s.by_name and q != "unsure"]
    if extra:
        problems.append(f"question(s) {', '.join(extra)} are not attributes of {s.name}")
    for a in s.attributes:
        q = questions.get(a.name)
        if q is None:
            problems.append(f"no question for {a.name}")
            continue
        aliases = tuple(c.get("alias") for c in q.iter("Choice"))
        if q.get("choice") != "single-radio" or aliases != a.classes:
            problems.append(f"{a.name}: needs a single-radio question with aliases "
                            f"{', '.join(a.classes)} in that order (has "
                            f"{', '.join(map(str, aliases))})")
    if "unsure" not in questions or tuple(
            c.get("alias") for c in questions["unsure"].iter("Choice")) != UNSURE:
        problems.append("no Unsure question with aliases unsure, bad_image")
    return problems


def interface_text(source: str, s: Schema) -> str:
    """The interface `push.label_config` names (a file, or `FROM_SCHEMA`), checked against `s`;
    ConfigError naming the file and every problem."""
    if source == FROM_SCHEMA:
        return label_config(s)
    text = Path(source).read_text(encoding="utf-8")
    problems = config_problems(text, s)
    if problems:
        raise ConfigError(f"{source}: not an interface for {s.name}'s attributes: "
                          + "; ".join(problems) + f" (push.label_config: {FROM_SCHEMA} "
                          "generates one)")
    return text

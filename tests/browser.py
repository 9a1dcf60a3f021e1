"""An annotator in a real browser (Debian's Chromium, driven by Playwright, as
scripts/screenshots.py drives it): log in, open the next task of the label stream, look at what
it starts from, answer, submit.

Without Chromium the caller is told so (`have_chromium`): a failure where the CI variable is
set (CI must check what the README promises), a warning elsewhere."""

from __future__ import annotations

import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scripts.screenshots import CHROMIUM, browser, logged_in
from tests.helpers import REPO, required_in_ci

_ROOT = ET.fromstring((REPO / "label_config.xml").read_text())
# attribute -> {class name (alias): what the radio button says (value)}
CHOICES = {c.get("name"): {x.get("alias"): x.get("value") for x in c.iter("Choice")}
           for c in _ROOT.iter("Choices") if c.get("choice") == "single-radio"}


def have_chromium() -> bool:
    """Chromium is there; else False with a warning, or, where the CI variable is set, the test
    fails: CI must check the annotator's view in a browser."""
    if Path(CHROMIUM).is_file():
        return True
    why = f"no Chromium at {CHROMIUM} (scripts/test.sh installs Debian's chromium)"
    required_in_ci(f"{why}: the annotator's view cannot be checked in a browser")
    warnings.warn(f"{why}: the annotator's view was not checked in a browser", stacklevel=2)
    return False


def radio(page, label: str):
    """The radio button labelled `label` (the view appends its key: "Male[8]")."""
    return page.get_by_role("radio", name=re.compile(rf"^{re.escape(label)}(\[[^\]]*\])?$"))


@dataclass
class Seen:
    """What the annotator saw and did: the task's sketch, which attributes started checked, the
    warning on an early submit, the answers given."""

    sample_id: str
    checked: dict[str, str | None]  # attribute -> the class checked when the task opened
    warning: str
    answered: dict[str, str]
    screenshot: Path | None


def annotate_next_task(url: str, user: str, password: str, project: int,
                       answer: Callable[[str, str], str], questions: Callable[[str], list[str]],
                       screenshot: Path | None = None) -> Seen:
    """As `user`, open project `project`'s next task in the labelling view, note what every
    attribute starts from, press Submit at once (the view must refuse: the questions in doubt
    are required), then answer each of `questions(sample_id)` with `answer(sample_id,
    attribute)`, leave the rest, and submit."""
    with browser() as b:
        page = logged_in(b, url, user, password)
        page.goto(f"{url}/projects/{project}/data?labeling=1")
        page.get_by_text("Hair colour").first.wait_for()
        page.wait_for_timeout(1500)
        sample = page.evaluate(
            "() => [...document.querySelectorAll('*')].map(e => e.textContent.trim())"
            ".find(t => /^photo\\d+_image\\w+$/.test(t))")
        checked = {}
        for attr, values in CHOICES.items():
            states = {alias: radio(page, value).is_checked() for alias, value in values.items()}
            on = [alias for alias, state in states.items() if state]
            checked[attr] = on[0] if on else None
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot))
        page.get_by_test_id("bottombar-submit-button").click()
        page.get_by_role("button", name="OK").wait_for()
        warning = page.locator(".ant-modal-content, [role=dialog]").first.inner_text()
        page.get_by_role("button", name="OK").click()
        answered = {}
        for attr in questions(sample):
            answered[attr] = answer(sample, attr)
            radio(page, CHOICES[attr][answered[attr]]).check()
        page.wait_for_timeout(3000)  # a few seconds spent, as a person would
        page.get_by_test_id("bottombar-submit-button").click()
        page.wait_for_function(f"() => !document.body.innerText.includes({sample!r})")
    return Seen(sample, checked, warning, answered, screenshot)

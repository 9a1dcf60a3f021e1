"""What the relabeling benchmarks share: a synthetic FS2K whose label noise sits in the minority
classes, built by the pipeline's own stages, and its ground truth. Imported by the bench
scripts, which run from this folder (`python bench/<script>.py`)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
# Flipped shares per attribute and TRUE class: the rare classes, where a few wrong labels move
# a balanced accuracy most (a flipped hair flips its hair colour too).
NOISE = {"hair": {1: 0.3}, "hair_color": {2: 0.3, 4: 0.1}, "earring": {0: 0.25},
         "frontal_face": {1: 0.25}, "smile": {1: 0.1}, "gender": {1: 0.05}}


def build(work: Path, pairs: int, stages: tuple[str, ...], **overrides: dict) -> dict:
    """Run the pipeline's `stages` in `work` on noisy synthetic FS2K (params.yaml's settings,
    `overrides` per section on top); returns the params used."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(source="synthetic")
    params["data"]["synthetic"].update(pairs=pairs, noise=NOISE)
    params["masks"]["source"] = "import"
    params["push"]["label_config"] = str(REPO / "label_config.xml")
    for section, values in overrides.items():
        params[section].update(values)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    (work / "data/relabels").mkdir(parents=True, exist_ok=True)
    snapshot = work / "data/relabels/snapshot.csv"
    if not snapshot.is_file():  # as a fresh clone has it: no decision yet
        shutil.copy(REPO / "data/relabels/snapshot.csv", snapshot)
    for stage in stages:
        stage_run(work, stage)
    return params


def stage_run(work: Path, stage: str, *args: str, env: dict | None = None) -> None:
    subprocess.run([sys.executable, "-m", f"pipeline.{stage}", "-q", *args], cwd=work,
                   check=True, env={**os.environ, **(env or {})})


def truth(work: Path) -> dict[tuple[str, str], int]:
    """{(sample_id, attribute): true class} of every label the generator flipped."""
    log = pd.read_csv(work / "data/fs2k/label_noise.csv")
    return {(r.image_name.replace("/", "_"), r.attribute): int(r.true_label)
            for r in log.itertuples()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

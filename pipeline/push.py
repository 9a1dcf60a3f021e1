"""DVC stage `push`: the selected sketches to Label Studio, as tasks pre-filled with the model's
guess.

Creates or reuses the project titled `labelstudio.project` (with `label_config.xml`), makes its
images servable (a local storage over `data/`), draws an overlay of the regions in question for
every task, and imports the new tasks in one bulk request. A sketch that already has an open
task (no answer yet) gets that task updated, never a second one. The server comes from
`LABEL_STUDIO_URL` and `LABEL_STUDIO_API_KEY`; with no server configured the stage writes Label
Studio's import file (`push.out/tasks.json`) instead and says so. Output: `push.out/pushed.json`
(the project, the model version, and each sketch's task), the overlays, and `tasks.json`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from esgar import schema
from esgar.active.annotations import build_tasks
from esgar.data.table import load_table
from esgar.integrations import labelstudio as ls
from esgar.io import building_dir, read_parquet, sha256sum, write_json
from esgar.masks import store
from esgar.masks.quality import overlay
from pipeline.common import run_stage, stage_args
from pipeline.params.base import load
from pipeline.params.labelstudio import LabelStudioParams, ModelPaths, PushParams

log = logging.getLogger("pipeline.push")
OWNER = "push"


def class_names(frame: pd.DataFrame, column: str) -> dict[str, dict[str, str]]:
    """{sample_id: {attribute: class name}} from per-attribute class indices (`column` "" for
    the labels, "_prob" for the most probable class)."""
    out: dict[str, dict[str, str]] = {}
    for a in schema.ATTRIBUTES:
        values = frame[a.name + column]
        idx = np.stack(values).argmax(1) if column else values.to_numpy()
        for sid, i in zip(frame["sample_id"], idx, strict=True):
            out.setdefault(sid, {})[a.name] = a.classes[int(i)]
    return out


def write_overlays(folder: Path, manifest: pd.DataFrame, table: pd.DataFrame, masks: Path,
                   attribute_regions: dict[str, str]) -> None:
    """`folder/<sample_id>.png`: the sketch with the regions of its attributes in question."""
    names = store.region_names(masks)
    rows = table.set_index("sample_id")
    for sid, part in manifest.groupby("sample_id"):
        regions = sorted({attribute_regions[a] for a in part["attribute"]}, key=names.index)
        with Image.open(rows.loc[sid, "sketch_path"]) as im:
            sketch = im.convert("RGB")
        region_masks = store.load_region_masks(masks, sid, len(names))
        overlay(sketch, region_masks[[names.index(r) for r in regions]]).save(
            folder / f"{sid}.png")


def main() -> None:
    args = stage_args(__doc__)
    params = load(args.params, model=ModelPaths, labelstudio=LabelStudioParams, push=PushParams)
    mp, lp, pp = params["model"], params["labelstudio"], params["push"]
    server = ls.Server.from_env()
    client = ls.connect(server) if server else None  # checked before any work
    manifest = read_parquet(pp.manifest, "select")
    probs = read_parquet(pp.probs, "crossfit")
    table = load_table(mp.table)
    guesses, labels = class_names(probs, "_prob"), class_names(table, "")
    model_version = f"crossfit-{sha256sum(pp.probs)[:12]}"
    root = Path(os.environ.get("LABEL_STUDIO_DOCUMENT_ROOT", ".")).resolve()
    paths = table.set_index("sample_id")
    overlays = pp.out / "overlays"

    def urls(sid: str) -> dict[str, str]:
        return {"sketch": ls.local_file_url(paths.loc[sid, "sketch_path"], root),
                "photo": ls.local_file_url(paths.loc[sid, "photo_path"], root),
                "overlay": ls.local_file_url(overlays / f"{sid}.png", root)}

    tasks = build_tasks(manifest, guesses, labels, urls, model_version)
    record = {"server": server.url if server else None, "project": lp.project,
              "model_version": model_version, "tasks": len(tasks)}
    with building_dir(pp.out, OWNER) as tmp:
        (tmp / "overlays").mkdir()
        write_overlays(tmp / "overlays", manifest, table, mp.masks, mp.attribute_regions)
        (tmp / "tasks.json").write_text(json.dumps(tasks, indent=1, sort_keys=True) + "\n")
        if client is not None:
            record.update(push(client, lp, pp.label_config.read_text(), tasks))
        write_json(tmp / "pushed.json", record)
    if client is None:
        log.warning("no Label Studio configured (LABEL_STUDIO_URL unset): wrote %d tasks to %s "
                    "to import by hand; `scripts/labelstudio.sh start` runs a server",
                    len(tasks), pp.out / "tasks.json")
    else:
        log.info("%d tasks in project %r at %s: %d new, %d updated, %d unchanged", len(tasks),
                 lp.project, server.url, len(record["created"]), len(record["updated"]),
                 record["unchanged"])


def push(client: ls.Client, lp: LabelStudioParams, label_config: str, tasks: list[dict]
         ) -> dict:
    """Create the new tasks in bulk; update the open tasks of sketches already pushed."""
    project = ls.ensure_project(client, lp.project, label_config)
    ls.ensure_local_storage(client, project, lp.serve)
    open_tasks = {t["data"].get("sample_id"): t for t in ls.list_tasks(client, project)
                  if t["annotations"] == 0}
    new, updated, unchanged = [], [], 0
    for task in tasks:
        current = open_tasks.get(task["data"]["sample_id"])
        if current is None:
            new.append(task)
        elif current["data"] == task["data"] and current["predictions"] == 1:
            unchanged += 1
        else:
            ls.update_task_data(client, current["id"], task["data"])
            ls.delete_predictions(client, current["id"])
            p = task["predictions"][0]
            ls.create_prediction(client, current["id"], p["result"], p["model_version"],
                                 p["score"])
            updated.append(current["id"])
    created = ls.import_tasks(client, project, new)
    return {"project_id": project, "created": created, "updated": updated,
            "unchanged": unchanged}


if __name__ == "__main__":
    run_stage(main)

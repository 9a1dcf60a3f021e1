"""DVC stage `push` (always run, like pull: it asks Label Studio): the selected sketches, and gold
sketches among them, to Label Studio as tasks.

Creates or reuses the project titled `labelstudio.project` (with `push.label_config`, each task
answered by `labelstudio.annotators_per_task` different annotators), makes its images servable
(a local storage over `data/`), draws an overlay of the regions in question for every task, and
imports the new tasks in one bulk request. The questions in doubt start as `push.prefill` says
(`none`: empty and required; `esgar.active.tasks`). `push.gold_share` of the tasks are gold:
sketches whose labels are known (earlier confident decisions, or synthetic FS2K's truth), asked
exactly like the others, their answer key in the task's meta. A sketch whose task is still
waiting for its first answer gets that task updated, never a second one; an unchanged task is
left as it is, so a push with nothing new only lists the project. The server comes from
`LABEL_STUDIO_URL` and `LABEL_STUDIO_API_KEY`; with no server configured the stage writes Label
Studio's import file (`push.out/tasks.json`) instead and says so. Output: `push.out/pushed.json`
(the project, the prefill policy, the model version, what was created, updated, left), the
overlays, and `tasks.json`.
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
from esgar.active.label_config import interface_text
from esgar.active.relabels import read_snapshot
from esgar.active.tasks import build_tasks, gold_candidates, interleave, pick_gold
from esgar.connectivity import redact
from esgar.data.table import load_table
from esgar.errors import ConfigError
from esgar.integrations import labelstudio as ls
from esgar.io import building_dir, read_parquet, sha256sum, write_json
from esgar.masks import store
from esgar.masks.quality import overlay
from pipeline.common import must_exist, run_stage, stage_args
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


def with_gold(manifest: pd.DataFrame, table: pd.DataFrame, probs: pd.DataFrame,
              pp: PushParams) -> tuple[pd.DataFrame, dict[str, dict[str, str]]]:
    """The manifest with `pp.gold_share` gold tasks among its tasks, and their answer keys
    ({sample_id: {attribute: class}})."""
    noise = pd.read_csv(pp.truth) if pp.truth.is_file() else None
    candidates = gold_candidates(table, read_snapshot(pp.relabels), noise,
                                 pp.gold_min_confidence, pp.gold_min_annotators)
    candidates = candidates[candidates["sample_id"].isin(set(probs["sample_id"]))]
    gold = pick_gold(manifest, candidates, pp.gold_share, pp.seed)
    if pp.gold_share > 0 and gold.empty and len(manifest):
        log.warning("no gold this round: no label is known yet (no confident decision from "
                    "%d annotators, no synthetic truth at %s); annotators are not measured",
                    pp.gold_min_annotators, pp.truth)
    keys: dict[str, dict[str, str]] = {}
    for r in gold.itertuples():
        keys.setdefault(r.sample_id, {})[r.attribute] = r.truth
    return interleave(manifest, gold.drop(columns="truth"), pp.seed), keys


def main() -> None:
    args = stage_args(__doc__)
    params = load(args.params, model=ModelPaths, labelstudio=LabelStudioParams, push=PushParams)
    mp, lp, pp = params["model"], params["labelstudio"], params["push"]
    server = ls.Server.from_env()
    selected = read_parquet(pp.manifest, "select")
    probs = read_parquet(pp.probs, "crossfit")
    table = load_table(mp.table)
    must_exist(pp.relabels, "push.relabels")
    manifest, gold = with_gold(selected, table, probs, pp)
    guesses, labels = class_names(probs, "_prob"), class_names(table, "")
    model_version = f"crossfit-{sha256sum(pp.probs)[:12]}"
    root = Path(os.environ.get("LABEL_STUDIO_DOCUMENT_ROOT", ".")).resolve()
    paths = table.set_index("sample_id")
    overlays = pp.out / "overlays"

    def urls(sid: str) -> dict[str, str]:
        try:
            return {"sketch": ls.local_file_url(paths.loc[sid, "sketch_path"], root),
                    "photo": ls.local_file_url(paths.loc[sid, "photo_path"], root),
                    "overlay": ls.local_file_url(overlays / f"{sid}.png", root)}
        except ValueError as e:
            raise ConfigError(f"{e}: Label Studio serves only files below its document root; "
                              "run from a repository inside it, or set "
                              "LABEL_STUDIO_DOCUMENT_ROOT to the server's") from None

    # every URL, before any server or file work
    links = {sid: urls(sid) for sid in manifest["sample_id"].unique()}
    interface = interface_text(pp.label_config, schema.active())
    client = ls.connect(server) if server else None  # checked before any work
    tasks = build_tasks(manifest, guesses, labels, links.__getitem__, model_version, pp.prefill,
                        pp.hints, gold)
    record = {"server": redact(server.url) if server else None, "project": lp.project,
              "model_version": model_version, "prefill": pp.prefill,
              "annotators_per_task": lp.annotators_per_task, "tasks": len(tasks),
              "gold_tasks": len(gold)}
    with building_dir(pp.out, OWNER) as tmp:
        (tmp / "overlays").mkdir()
        write_overlays(tmp / "overlays", manifest, table, mp.masks, mp.attribute_regions)
        (tmp / "tasks.json").write_text(json.dumps(tasks, indent=1, sort_keys=True) + "\n")
        if client is not None:
            record.update(push(client, lp, interface, tasks))
        write_json(tmp / "pushed.json", record)
    if client is None:
        log.warning("no Label Studio configured (LABEL_STUDIO_URL unset): wrote %d tasks (%d "
                    "gold) to %s to import by hand; `scripts/labelstudio.sh start` runs a "
                    "server", len(tasks), len(gold), pp.out / "tasks.json")
    else:
        log.info("%d tasks (%d gold, prefill %s, %d annotator(s) each) in project %r at %s: "
                 "%d new, %d updated, %d unchanged", len(tasks), len(gold), pp.prefill,
                 lp.annotators_per_task, lp.project, server.url, len(record["created"]),
                 len(record["updated"]), record["unchanged"])


def push(client: ls.Client, lp: LabelStudioParams, label_config: str, tasks: list[dict]
         ) -> dict:
    """Create the new tasks in bulk. A sketch's task that asks the same and still needs answers
    is left as it is; one waiting for its first answer is updated (its text, what it starts
    from, its gold key); one that got answers keeps asking what it asked."""
    project = ls.ensure_project(client, lp.project, label_config, lp.annotators_per_task)
    ls.ensure_local_storage(client, project, lp.serve)
    by_sample: dict[str, list[dict]] = {}
    for t in ls.list_tasks(client, project):
        by_sample.setdefault(t["data"].get("sample_id"), []).append(t)
    new, updated, unchanged = [], [], 0
    for task in tasks:
        existing = by_sample.get(task["data"]["sample_id"], [])
        meta = task.get("meta") or {}
        open_ = [t for t in existing if t["annotations"] < lp.annotators_per_task]
        if any(t["data"] == task["data"] and t["meta"] == meta and t["predictions"] == 1
               for t in open_):
            unchanged += 1
        elif waiting := [t for t in open_ if t["annotations"] == 0]:
            current = waiting[0]
            ls.update_task(client, current["id"], task["data"], meta)
            ls.delete_predictions(client, current["id"])
            p = task["predictions"][0]
            ls.create_prediction(client, current["id"], p["result"], p["model_version"],
                                 p["score"])
            updated.append(current["id"])
        elif any(t["data"].get("questions") == task["data"]["questions"] for t in open_):
            unchanged += 1  # still collecting answers to the same questions
        else:
            new.append(task)
    created = ls.import_tasks(client, project, new)
    return {"project_id": project, "created": created, "updated": updated,
            "unchanged": unchanged}


if __name__ == "__main__":
    run_stage(main)

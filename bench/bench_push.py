#!/usr/bin/env python
"""How fast tasks reach Label Studio: 2,104 tasks, each with a seven-question pre-annotation, into
a local server (scripts/labelstudio.sh, its own data dir), as the `push` stage sends them.

    python bench/bench_push.py [--tasks 2104]

Times the server's side of a push: creating the project, one bulk import, listing the tasks
(what a second push does to find open tasks), and a second push of the same tasks, which must
change nothing. Drawing the overlay images is local work and not included.

Then the floor, each into a new project of the same server: the same payload imported by one
bare SDK call and by one bare HTTP request (no project code around it), the tasks without their
predictions (Label Studio's per-prediction work), and the push again (drift as the database
grows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time

import pandas as pd
from benchlib import REPO, free_port

from esgar import schema
from esgar.active.tasks import build_tasks
from esgar.integrations import labelstudio as ls

TOKEN = "bench-push-token-0123456789"


def measure_floor(client: ls.Client, tasks: list[dict], token: str) -> dict[str, float]:
    """Seconds per import of `tasks`, each way, into a project of its own."""
    config = (REPO / "label_config.xml").read_text()
    no_predictions = [{k: v for k, v in t.items() if k != "predictions"} for t in tasks]

    def sdk(project: int, request: list[dict]) -> None:
        client.sdk.projects.import_tasks(id=project, request=request, return_task_ids=True,
                                         commit_to_project=True,
                                         request_options={"timeout_in_seconds": 600})

    def http(project: int, request: list[dict]) -> None:
        answer = client.http.post(f"{client.url}/api/projects/{project}/import",
                                  params={"return_task_ids": "true"}, json=request,
                                  headers={"Authorization": f"Token {token}"}, timeout=600)
        answer.raise_for_status()

    ways = {"one bare SDK call, the same payload": lambda p: sdk(p, tasks),
            "one bare HTTP request, the same payload": lambda p: http(p, tasks),
            "push's import_tasks again": lambda p: ls.import_tasks(client, p, tasks),
            "one bare SDK call, no predictions": lambda p: sdk(p, no_predictions)}
    out = {}
    for k, (what, way) in enumerate(ways.items()):
        project = ls.ensure_project(client, f"bench: floor {k}", config)
        t = time.perf_counter()
        way(project)
        out[what] = time.perf_counter() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=2104)
    args = ap.parse_args()
    ids = [f"photo1_image{i:04d}" for i in range(args.tasks)]
    manifest = pd.DataFrame({"task": range(args.tasks), "sample_id": ids,
                             "attribute": [schema.ATTRIBUTE_NAMES[i % 7] for i in range(
                                 args.tasks)], "score": 0.5})
    labels = {s: {a.name: a.classes[0] for a in schema.ATTRIBUTES} for s in ids}
    guesses = {s: {a.name: a.classes[-1] for a in schema.ATTRIBUTES} for s in ids}
    tasks = build_tasks(manifest, guesses, labels,
                        lambda s: {k: f"/data/local-files/?d=data/{k}/{s}.png"
                                   for k in ("sketch", "photo", "overlay")}, "bench")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("LABEL_STUDIO_")},
               "LABEL_STUDIO_ENV_FILE": os.devnull, "LABEL_STUDIO_DATA_DIR": f"{tmp}/ls",
               "LABEL_STUDIO_PORT": str(free_port()), "LABEL_STUDIO_DOCUMENT_ROOT": tmp,
               "LABEL_STUDIO_USERNAME": "bench@example.com",
               "LABEL_STUDIO_PASSWORD": "bench-password", "LABEL_STUDIO_USER_TOKEN": TOKEN}
        start = time.perf_counter()
        subprocess.run([str(REPO / "scripts/labelstudio.sh"), "start"], env=env, check=True)
        started = time.perf_counter() - start
        try:
            server = ls.Server(f"http://127.0.0.1:{env['LABEL_STUDIO_PORT']}", TOKEN)
            client = ls.connect(server)
            t = time.perf_counter()
            project = ls.ensure_project(client, "bench: push",
                                        (REPO / "label_config.xml").read_text())
            made = time.perf_counter() - t
            t = time.perf_counter()
            created = ls.import_tasks(client, project, tasks)
            imported = time.perf_counter() - t
            t = time.perf_counter()
            listed = ls.list_tasks(client, project)
            listing = time.perf_counter() - t
            unchanged = sum(1 for task, now in zip(tasks, listed, strict=True)
                            if task["data"] == now["data"] and now["predictions"] == 1)
            floor = measure_floor(client, tasks, TOKEN)
        finally:
            subprocess.run([str(REPO / "scripts/labelstudio.sh"), "stop"], env=env)
    print(f"\nserver start (first, migrations included): {started:.1f} s")
    print("| step | seconds |\n|---|---|")
    print(f"| create the project | {made:.1f} |")
    print(f"| import {len(created)} tasks with predictions (one request) | {imported:.1f} |")
    print(f"| list them (a second push's look for open tasks) | {listing:.1f} |")
    print(f"| push total | {made + imported:.1f} (second push: {listing:.1f}, "
          f"{unchanged} of {len(tasks)} unchanged) |")
    payload = len(json.dumps(tasks).encode())
    bare = len(json.dumps([{k: v for k, v in t.items() if k != "predictions"}
                           for t in tasks]).encode())
    print(f"\nthe floor, {len(tasks)} tasks, {payload / 1e6:.2f} MB of JSON "
          f"({bare / 1e6:.2f} MB without predictions), each into a new project:")
    print("| import | seconds | vs bare SDK call |\n|---|---|---|")
    ref = floor["one bare SDK call, the same payload"]
    for what, secs in floor.items():
        print(f"| {what} | {secs:.1f} | {secs / ref:.2f}x |")
    print(f"\n{os.cpu_count()} cores, {platform.machine()} {platform.processor()}")


if __name__ == "__main__":
    main()

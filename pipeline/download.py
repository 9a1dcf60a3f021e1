"""DVC stage `download`: FS2K (or synthetic FS2K) into `data.out`.

Output: `data.out/FS2K/` and `data.out/source.json` (which dataset, from where, why, and the
archive's sha256 and size); synthetic data adds `parsing/`, `label_noise.csv`, `synthetic.json`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from esgar.data.download import (
    DownloadError, auto_source, obtain_archive, check_archive, synthetic_banner, unpack,
)
from esgar.io import replace_dir, write_json
from pipeline.common import load_params, run_stage, stage_args


def make_synthetic(out: Path, sp: dict[str, Any], reason: str) -> None:
    from esgar.data.synthetic import generate

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        summary = generate(tmp, pairs=sp["pairs"], seed=sp["seed"], noise=sp.get("noise") or {},
                           label_orders=tuple(sp.get("label_orders", ["bisenet"])))
        write_json(tmp / "source.json", {"dataset": "synthetic", "source": "synthetic",
                                         "reason": reason, "archive": None,
                                         "synthetic": summary})
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def make_fs2k(out: Path, p: dict[str, Any], source: str, reason: str) -> None:
    archive, info = obtain_archive(source, Path(p["downloads"]), gdrive_id=p["gdrive_id"],
                                   url=p["url"], archive=p["archive"])
    inner = check_archive(archive)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        unpack(archive, inner, tmp)
        write_json(tmp / "source.json", {"dataset": "fs2k", "source": source, "reason": reason,
                                         "archive": info, "synthetic": None})
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    args = stage_args(__doc__)
    p = load_params("data", args.params)
    out = Path(p["out"])
    source = p["source"]
    reason = f"data.source is {source!r}"
    if source == "auto":
        source, reason = auto_source(p["gdrive_id"], p["url"], p["archive"])
        reason = f"data.source is 'auto': {reason}"
    if source == "synthetic":
        if p["source"] == "auto":
            print(synthetic_banner(reason), file=sys.stderr)
        make_synthetic(out, p["synthetic"], reason)
    else:
        make_fs2k(out, p, source, reason)
    print(f"download: {out} holds {'SYNTHETIC' if source == 'synthetic' else 'real'} FS2K "
          f"({reason})", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, DownloadError, FileExistsError)

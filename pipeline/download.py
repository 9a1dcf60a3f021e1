"""DVC stage `download`: FS2K (or synthetic FS2K) into `data.out`.

Output: `data.out/FS2K/` and `data.out/source.json` (which dataset, from where, why, and the
archive's sha256 and size); synthetic data adds `parsing/`, `label_noise.csv`, `synthetic.json`.
The output is built in a temporary sibling folder and renamed onto `data.out` when complete, so a
failed run leaves the previous output as it was.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from esgar.data.download import (
    SOURCES, DownloadError, auto_source, obtain_archive, synthetic_banner, unpack,
)
from esgar.io import replace_dir, write_json
from pipeline.common import load_params, run_stage, stage_args


def build_into(out: Path, fill: Callable[[Path], None]) -> None:
    """Run `fill(tmp)` on an empty sibling folder of `out`, then move it onto `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.new-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        fill(tmp)
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def make_synthetic(out: Path, sp: dict[str, Any], reason: str) -> None:
    """Generate synthetic FS2K into `out` (with source.json)."""
    from esgar.data.synthetic import generate

    def fill(tmp: Path) -> None:
        summary = generate(tmp, pairs=int(sp.get("pairs", 2104)), seed=int(sp.get("seed", 0)),
                           noise=sp.get("noise") or {},
                           label_orders=tuple(sp.get("label_orders") or ["bisenet"]))
        write_json(tmp / "source.json", {"dataset": "synthetic", "source": "synthetic",
                                         "reason": reason, "archive": None,
                                         "synthetic": summary})
    build_into(out, fill)


def make_fs2k(out: Path, p: dict[str, Any], source: str, reason: str) -> None:
    """Obtain and check FS2K.zip, then unpack it into `out` (with source.json)."""
    got = obtain_archive(source, Path(p.get("downloads") or "data/downloads"),
                         gdrive_id=p.get("gdrive_id") or "", url=p.get("url") or "",
                         archive=str(p.get("archive") or ""))
    if source == "local":
        reason += f"; {got.path} used in place (not copied)"
    archive = {k: got.info[k] for k in ("sha256", "size", "origin")} | {"path": str(got.path)}

    def fill(tmp: Path) -> None:
        unpack(got.path, got.inner, tmp)
        write_json(tmp / "source.json", {"dataset": "fs2k", "source": source, "reason": reason,
                                         "archive": archive, "synthetic": None})
    build_into(out, fill)


def choose_source(requested: str, p: dict[str, Any]) -> tuple[str, str]:
    """(source, why) for the requested source; `auto` probes what can be reached."""
    if requested not in SOURCES:
        raise DownloadError(f"data.source is {requested!r}; use one of {', '.join(SOURCES)}")
    if requested != "auto":
        return requested, f"data.source is {requested!r}"
    return auto_source(p.get("url") or "", str(p.get("archive") or ""))


def main() -> None:
    args = stage_args(__doc__)
    p = load_params("data", args.params)
    out = Path(p.get("out") or "data/fs2k")
    requested = p.get("source") or "auto"
    source, why = choose_source(requested, p)
    fallback = requested == "auto" and source == "synthetic"
    if fallback:
        print(synthetic_banner(why), file=sys.stderr)
        reason = f"data.source is 'auto' and FS2K could not be reached ({why})"
    else:
        reason = f"data.source is 'auto': {why}" if requested == "auto" else why
    if source == "synthetic":
        make_synthetic(out, p.get("synthetic") or {}, reason)
    else:
        make_fs2k(out, p, source, reason)
    kind = "SYNTHETIC FS2K" if source == "synthetic" else "FS2K"
    print(f"download: {out} holds {kind} ({reason})", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, DownloadError, FileExistsError)

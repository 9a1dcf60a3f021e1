"""DVC stage `download`: FS2K (or synthetic FS2K) into `data.out`.

Output: `data.out/FS2K/` and `data.out/source.json` (which dataset, from where, why, and the
archive's sha256 and size); synthetic data adds `parsing/`, `label_noise.csv`, `synthetic.json`.
The output is built in a folder beside `data.out` and moved onto it when complete, so a failed
run leaves the previous output as it was; a `data.out` this stage did not write is never
replaced.
"""

from __future__ import annotations

import logging

from esgar.data.download import (
    MB,
    ArchiveLimits,
    choose_source,
    obtain_archive,
    synthetic_banner,
    unpack,
)
from esgar.data.synthetic import generate
from esgar.io import building_dir, check_owned, write_json
from pipeline.common import run_stage, stage_args
from pipeline.params.base import load
from pipeline.params.data import DataParams

log = logging.getLogger("pipeline.download")
OWNER = "download"


def main() -> None:
    args = stage_args(__doc__)
    p = load(args.params, data=DataParams)["data"]
    check_owned(p.out, OWNER)
    source, reason = choose_source(p.source, p.url, p.archive)
    if p.source == "auto" and source == "synthetic":
        log.warning("\n%s", synthetic_banner(reason))
    record = {"dataset": "synthetic" if source == "synthetic" else "fs2k", "source": source,
              "reason": reason, "archive": None, "synthetic": None}
    if source == "synthetic":
        s = p.synthetic
        with building_dir(p.out, OWNER) as tmp:
            record["synthetic"] = generate(tmp, pairs=s.pairs, seed=s.seed, noise=s.noise,
                                           label_orders=tuple(s.label_orders))
            write_json(tmp / "source.json", record)
    else:
        limits = ArchiveLimits(int(p.max_unpacked_mb * MB), p.max_compression_ratio)
        got = obtain_archive(source, p.downloads, limits=limits, gdrive_id=p.gdrive_id,
                             url=p.url, archive=p.archive, read_timeout=p.read_timeout_s)
        if source == "local":
            record["reason"] += f"; {got.path} used in place (not copied)"
        record["archive"] = {k: got.info[k] for k in ("sha256", "size", "origin")} | {
            "path": str(got.path)}
        with building_dir(p.out, OWNER) as tmp:
            unpack(got.path, got.inner, tmp)
            write_json(tmp / "source.json", record)
    kind = "SYNTHETIC FS2K" if source == "synthetic" else "FS2K"
    log.info("%s holds %s (%s)", p.out, kind, record["reason"])


if __name__ == "__main__":
    run_stage(main)

"""DVC stage `download`: the dataset `data.dataset` (FS2K, or its synthetic stand-in) into
`data.out`.

Output: `data.out/FS2K/` and `data.out/source.json` (which dataset, from where, why, and the
archive's sha256 and size); synthetic data adds `parsing/`, `label_noise.csv`, `synthetic.json`.
CelebA, CelebAMask-HQ and LFWA are licensed for research and never downloaded: `data.source`
local takes a folder in the published layout (`data.archive`), checked before anything is
copied (hard links where possible) to `data.out/<CelebA|CelebAMask-HQ|LFWA>/`; synthetic (or
auto without `data.archive`) writes the stand-in in that layout. CelebAMask-HQ's part masks are
assembled into label maps in `data.out/parsing/bisenet/`, where the masks stage imports them;
the stand-ins of CelebA and LFWA write their drawn maps there too (the real sets are parsed).
The output is built in a folder beside `data.out` and moved onto it when complete, so a failed
run leaves the previous output as it was; a `data.out` this stage did not write is never
replaced.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from esgar.data.celeba import (
    HQ_MASK_FOLDER,
    PARTITION_FILE,
    read_celebamask_hq,
    write_label_maps,
)
from esgar.data.datasets import DATASETS, dataset_schema
from esgar.data.download import (
    MB,
    ArchiveLimits,
    choose_source,
    obtain_archive,
    synthetic_banner,
    unpack,
)
from esgar.data.readers import check_layout, place_copy, synthetic_dataset
from esgar.data.synthetic import generate
from esgar.errors import ConfigError
from esgar.io import building_dir, check_owned, write_json
from pipeline.common import run_stage, stage_args
from pipeline.params.base import load
from pipeline.params.data import DataParams

log = logging.getLogger("pipeline.download")
OWNER = "download"


def licensed(p: DataParams) -> None:
    """CelebA, CelebAMask-HQ or LFWA: a local copy, or the synthetic stand-in."""
    d = DATASETS[p.dataset]
    source = p.source if p.source != "auto" else ("local" if p.archive else "synthetic")
    if source in ("gdrive", "url"):
        raise ConfigError(f"data.source {source}: {d.folder} is licensed for research and is "
                          f"not downloaded by this pipeline; get it from {d.get_it}, then set "
                          "data.source: local and data.archive: its folder")
    if source == "synthetic" and p.synthetic.noise:
        raise ConfigError(f"data.synthetic.noise: the {d.folder} stand-in draws no label noise "
                          "(only synthetic FS2K does); set it to {}")
    why = (f"data.source is {p.source!r}" if p.source != "auto" else
           f"data.source is 'auto' and data.archive is {'set' if p.archive else 'empty'}")
    record: dict = {"dataset": "synthetic" if source == "synthetic" else p.dataset,
                    "name": p.dataset, "source": source, "reason": why, "archive": None,
                    "synthetic": None}
    if source == "local":
        folder = Path(p.archive)
        if not folder.is_dir():
            raise ConfigError(f"data.archive {p.archive}: not a folder; {d.folder} is taken as "
                              f"a folder in its published layout ({d.get_it})")
        check_layout(p.dataset, folder)
    elif source == "synthetic":
        log.warning("\n%s", synthetic_banner(why, d.folder))
    with building_dir(p.out, OWNER) as tmp:
        if source == "local":
            files = place_copy(folder, tmp / d.folder)
            record["archive"] = {"path": str(folder), "files": files}
        else:
            with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=".stand-in-") as made:
                record["synthetic"] = synthetic_dataset(p.dataset, Path(made) / "out",
                                                        p.synthetic.pairs, p.synthetic.seed)
                made_root = Path(made) / "out"
                if p.dataset == "celebamask_hq":  # placed as a user places CelebA's (get_it)
                    (made_root / PARTITION_FILE).rename(made_root / d.folder / PARTITION_FILE)
                    shutil.rmtree(made_root / "label_maps")  # drawn; assembled below instead
                for child in made_root.iterdir():
                    child.rename(tmp / child.name)
        if p.dataset == "celebamask_hq":
            root = tmp / d.folder
            # the masks' own problems are write_label_maps' to report (it reads every mask
            # whole); prepare reads the table again and reports the rest
            table, _ = read_celebamask_hq(root, dataset_schema(p.dataset), check_masks=False)
            report = write_label_maps(table, root / HQ_MASK_FOLDER, tmp / "parsing" / "bisenet")
            if report.errors:
                log.warning("part masks that could not be assembled:\n%s", report.format())
        write_json(tmp / "source.json", record)
    log.info("%s holds %s%s (%s)", p.out, "SYNTHETIC " if source == "synthetic" else "",
             d.folder, why)


def main() -> None:
    args = stage_args(__doc__)
    p = load(args.params, data=DataParams)["data"]
    check_owned(p.out, OWNER)
    if p.dataset != "fs2k":
        licensed(p)
        return
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

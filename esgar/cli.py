"""The `esgar` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from esgar import __version__
from esgar.connectivity import redact_text
from esgar.data.datasets import DATASETS
from esgar.errors import EsgarError
from esgar.io import building_dir, write_text
from esgar.log import configure


def _noise_arg(text: str) -> dict[str, dict[int, Any]]:
    """`earring:0=0.2,hair_color:2>0=0.3` -> {"earring": {0: 0.2}, "hair_color": {2: {0: 0.3}}}
    (a share of a class flipped to any other, or labelled as one named class)."""
    out: dict[str, dict[int, Any]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            attr, rest = part.split(":")
            cls, rate = rest.split("=")
            if ">" in cls:
                true, noisy = map(int, cls.split(">"))
                row = out.setdefault(attr, {}).setdefault(true, {})
                if not isinstance(row, dict):
                    raise ValueError
                row[noisy] = float(rate)
            else:
                out.setdefault(attr, {})[int(cls)] = float(rate)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad noise spec {part!r}: expected ATTRIBUTE:CLASS=RATE or "
                "ATTRIBUTE:CLASS>NOISY_CLASS=RATE, e.g. earring:0=0.2 or hair_color:2>0=0.3"
            ) from None
    return out


def _compare(args: argparse.Namespace) -> None:
    from esgar.integrations import registry as reg
    from esgar.promotion import leaderboard

    refs, c = list(args.refs), reg.client()
    if args.model and not refs:
        versions = reg.list_versions(c, args.model)
        if not versions:
            raise EsgarError(f"model {args.model} has no versions in the registry")
        named = reg.aliases(c, args.model)
        picked = [named[a] for a in (reg.CHAMPION, reg.CHALLENGER) if a in named]
        picked.append(str(versions[-1].version))
        refs = [f"{args.model}/{v}" for v in dict.fromkeys(picked)]
    entries = leaderboard.gather(refs, args.split, c)
    print(leaderboard.text_table(entries, args.split), end="")
    if args.markdown:
        write_text(args.markdown, leaderboard.markdown(entries, args.split))
    if args.plot:
        leaderboard.plot(entries, args.plot, args.split)


def _predictor(ref: str, work_dir: str, device: str):
    """The model `--model` names: a trained-model folder, else a registry reference or run id
    (resolved here, once, and downloaded under `work_dir`)."""
    from esgar.device import resolve_device
    from esgar.inference.model import Predictor

    if Path(ref).is_dir():
        return Predictor.from_dir(ref, resolve_device(device))
    from esgar.integrations import registry as reg

    model_dir, source = reg.download_ref(ref, work_dir)
    return Predictor.from_dir(model_dir, resolve_device(device), source)


def _predict(args: argparse.Namespace) -> int:
    """`esgar predict`: 0 when every sketch got its attributes, 1 when some could not."""
    import functools
    import tempfile

    from esgar import explain
    from esgar.device import PRECISIONS
    from esgar.inference.files import collect
    from esgar.inference.masking import MaskOptions
    from esgar.inference.predict import predict

    if args.out is not None and args.out.suffix.lower() not in (".csv", ".json"):
        raise EsgarError(f"--out {args.out}: write .csv or .json")
    if args.explain is not None and args.explain.exists() and not args.explain.is_dir():
        raise EsgarError(f"--explain {args.explain}: a file is there; give a folder (made if "
                         "missing) for the evidence maps")
    if args.precision not in PRECISIONS:
        raise EsgarError(f"--precision {args.precision!r}: use {', '.join(PRECISIONS)}")
    if args.explain_method not in explain.METHODS:
        raise EsgarError(f"--explain-method: evidence method {args.explain_method!r} is not one of "
                         f"{', '.join(explain.METHODS)}")
    options = MaskOptions(
        masks_dir=args.masks, masks_format=args.masks_format, label_order=args.label_order,
        parser=args.parser, parser_weights=args.parser_weights, parse_input=args.parse_input,
        point_to="give that folder as --parser-weights DIR (or ready masks as --masks DIR)")
    options.check()
    table, failures = collect(args.paths, args.photos)
    if table.empty:
        for path, why in failures.items():
            print(f"esgar: {path}: {why}", file=sys.stderr)
        raise EsgarError("no sketch to predict")
    evidence = (functools.partial(explain.explain_dataset, out_dir=args.explain,
                                  batch_size=args.batch_size, method=args.explain_method)
                if args.explain is not None else None)
    with tempfile.TemporaryDirectory(prefix="esgar-model-") as work:
        predictor = _predictor(args.model, work, args.device)
        result = predict(predictor, table, options, args.batch_size, evidence, failures,
                         precision=args.precision)
    if args.out is not None:
        if args.out.suffix.lower() == ".csv":
            write_text(args.out, result.frame().to_csv(index=False))
        else:
            write_text(args.out, json.dumps(result.records(), indent=1) + "\n")
    for rec in result.records():
        if "error" in rec:
            print(f"esgar: {rec['sketch']}: {rec['error']}", file=sys.stderr)
        else:
            print(f"{rec['sketch']}: " + ", ".join(
                f"{a}={v['class']} ({v['probability']:.2f})" for a, v in rec["attributes"].items()))
    print(f"{len(result.rows)} predicted, {len(result.failures)} failed"
          + (f"; written to {args.out}" if args.out else "")
          + (f"; evidence maps in {args.explain}" if args.explain and len(result.rows) else ""),
          file=sys.stderr)
    return 1 if result.failures else 0


def _synth(args: argparse.Namespace) -> dict:
    """Write the synthetic dataset `args` asks for; its summary."""
    if args.dataset == "fs2k":
        from esgar.data.synthetic import generate

        with building_dir(args.out_dir, "esgar synth") as tmp:
            return generate(tmp, pairs=2104 if args.pairs is None else args.pairs,
                            seed=args.seed, noise=args.noise,
                            label_orders=tuple(args.label_order or ("bisenet",)),
                            workers=args.workers)
    if args.noise or args.label_order:
        raise EsgarError(f"--noise and --label-order: synthetic FS2K's only; the {args.dataset} "
                         "stand-in draws no label noise and writes bisenet-order maps")
    from esgar.data.readers import synthetic_dataset

    return synthetic_dataset(args.dataset, args.out_dir, 200 if args.pairs is None else args.pairs,
                             args.seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="esgar", description=__doc__)
    parser.add_argument("--version", action="version", version=f"esgar {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print warnings and errors only, no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="write a synthetic FS2K (or CelebA, CelebAMask-HQ, "
                                          "LFWA+) in the dataset's exact layout")
    synth.add_argument("out_dir", type=Path)
    synth.add_argument("--dataset", default="fs2k",
                       choices=list(DATASETS),
                       help="whose layout and attributes (default fs2k); the others' stand-ins "
                            "draw 8 of their 40 attributes and no label noise")
    synth.add_argument("--pairs", type=int, default=None,
                       help="photo/sketch pairs, or images for the others (default: FS2K's 2104, "
                            "200 for the others)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--noise", type=_noise_arg, default={},
        help="label noise, ATTRIBUTE:CLASS=RATE (flipped to any other class) or "
             "ATTRIBUTE:CLASS>NOISY_CLASS=RATE (labelled as that class)[,...]; every flip is "
             "logged to label_noise.csv",
    )
    synth.add_argument(
        "--label-order", action="append", choices=["bisenet", "parsenet"],
        help="parsing label-map order(s) to write (default bisenet; repeat for both)",
    )
    synth.add_argument("--workers", type=int, default=None,
                       help="processes (default: all cores; FS2K only)")

    cmp = sub.add_parser(
        "compare", help="registry versions or runs side by side, with the champion and why",
        description="Per attribute balanced accuracy, macro-F1 and minority-class recall with "
                    "their 95 %% intervals, for registry versions (NAME/VERSION, NAME@ALIAS, "
                    "models:/...) or MLflow run ids; the decision and reason of each version.")
    cmp.add_argument("refs", nargs="*", help="versions or run ids (default with --model: its "
                                             "champion, challenger and newest version)")
    cmp.add_argument("--model", help="a registered model name")
    cmp.add_argument("--split", default="val", choices=["val", "test"])
    cmp.add_argument("--markdown", type=Path, help="also write the table as markdown here")
    cmp.add_argument("--plot", type=Path, help="also draw the balanced accuracies as a PNG")

    pred = sub.add_parser(
        "predict", help="attributes of new sketches, with evidence maps",
        description="Class names and probabilities per attribute for sketch files or folders. "
                    "Masks are read from --masks, or parsed by facexlib from each sketch's "
                    "photo (--photos, matched by file stem) or from the sketch itself, then "
                    "turned into the model's regions as the masks stage does.")
    pred.add_argument("paths", nargs="+", type=Path, help="sketch files or folders")
    pred.add_argument("--model", required=True,
                      help="a trained-model folder (models/esgar), models:/NAME@ALIAS, "
                           "models:/NAME/VERSION, or a train run id")
    pred.add_argument("--out", type=Path, help="write the predictions here (.csv or .json)")
    pred.add_argument("--photos", type=Path, help="folder of the sketches' photos, by stem")
    pred.add_argument("--masks", type=Path, help="folder of ready masks, by stem (no parsing)")
    pred.add_argument("--masks-format", default="label_maps",
                      help="label_maps (<stem>.png) or region_folders (seg_<region>/<stem>.png)")
    pred.add_argument("--label-order", help="the label maps' class order (default: the one "
                                            "the model's training masks had)")
    pred.add_argument("--parser", help="facexlib parser: bisenet or parsenet (default: the "
                                       "model's, else bisenet)")
    pred.add_argument("--parser-weights", type=Path,
                      help="folder holding the parser's weights file (default: facexlib's)")
    pred.add_argument("--parse-input", default="auto",
                      help="auto (the photo when there is one, else the sketch), photo, sketch")
    pred.add_argument("--explain", type=Path, help="write evidence maps per sketch here")
    pred.add_argument("--explain-method", default="auto",
                      help="auto (the head's attention, else Grad-CAM), attention, gradcam")
    pred.add_argument("--batch-size", type=int, default=16)
    pred.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    pred.add_argument("--precision", default="auto",
                      help="auto (bf16 where the CPU has AMX or AVX-512 BF16, or on CUDA; "
                           "else fp32), bf16 or fp32; give the model's train.precision to "
                           "predict exactly what its evaluate stage scored")

    copy = sub.add_parser(
        "copy-store", help="copy an MLflow store (runs and registry) into a new database",
        description="Every run, experiment and registry entry of the MLflow backend store "
                    "FROM copied into the new store TO (e.g. sqlite:///mlflow.db into "
                    "postgresql+psycopg://...), in one transaction; FROM is only read. "
                    "Artifacts stay where they are.")
    copy.add_argument("source", metavar="FROM", help="the store's URL, e.g. sqlite:///mlflow.db")
    copy.add_argument("destination", metavar="TO",
                      help="a new store's URL, e.g. $MLFLOW_BACKEND_STORE_URI")

    lcfg = sub.add_parser(
        "label-config", help="print the Label Studio interface of a dataset's schema",
        description="The labelling interface push uses with push.label_config: from_schema: "
                    "one single-choice question per attribute, grouped by face region.")
    lcfg.add_argument("dataset", help="fs2k, celeba, celebamask_hq, lfwa, or a schema file")

    args = parser.parse_args(argv)
    configure(quiet=args.quiet)
    try:
        if args.command == "synth":
            print(json.dumps(_synth(args), indent=2))
        elif args.command == "compare":
            _compare(args)
        elif args.command == "predict":
            return _predict(args)
        elif args.command == "label-config":
            from esgar.active.label_config import label_config
            from esgar.data.datasets import dataset_schema
            from esgar.schema import load_schema

            print(label_config(dataset_schema(args.dataset) if args.dataset in DATASETS
                               else load_schema(args.dataset)), end="")
        elif args.command == "copy-store":
            from esgar.integrations.store_copy import copy_store, redact_url

            copied = copy_store(args.source, args.destination)
            print(f"copied {sum(copied.values())} rows of {len(copied)} tables into "
                  f"{redact_url(args.destination)}: "
                  + ", ".join(f"{t} {n}" for t, n in copied.items() if n))
    except EsgarError as e:
        print(f"esgar: error: {redact_text(str(e))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Command line: ``wssscam [--debug] demo | train | study | merge | predict | export-nnunet | methods``.

Errors: every subcommand's handler runs inside :func:`main`, which turns a user error into one line
``wssscam <command>: <file or key>: <problem>`` on stderr and exit status 1 (a traceback only with
``--debug``). User errors are instances of :class:`WSSSCamLib.errors.UserError` (``DatasetError``,
``VolumeReadError``, ``CheckpointError``, ``ConfigError``, ``UnsafePathError``, ``DeviceError``,
``LockError``, ``InvalidInputError``, ``NotReadyError``, ``MissingFileError``) and ``OSError`` (named by
its path). Any other exception is a bug: one line naming its type, exit status 3. A ``--device`` option
of any subcommand is checked before its handler runs. Usage errors are argparse's (exit status 2).
"""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from .demo import print_summary, run_demo

    summary = run_demo(args.out, device=args.device, seed=args.seed, epochs=args.epochs)
    print_summary(summary)
    return 0


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .atomic import remove_stale_temporaries
    from .data.datasets import read_csv_dataset, read_decathlon
    from .data.recipe import SliceRecipe
    from .data.splits import fixed_split, load_folds
    from .data.volume_recipe import VolumeRecipe
    from .lock import folder_lock
    from .training.crossval import cross_validate
    from .training.trainer import TrainConfig

    root = Path(args.dataset)
    dataset = (
        read_csv_dataset(root, args.csv) if args.csv else read_decathlon(root, allow_outside=args.allow_outside_dataset)
    )
    try:
        context = None if args.context_channel is None else dataset.channel_index(args.context_channel)
    except KeyError as error:
        raise SystemExit(f"wssscam: {error.args[0]}") from None
    if args.recipe_kind == "volume":
        if context is not None:
            raise SystemExit("wssscam train: --context-channel is for slice recipes (a slab holds its neighbours)")
        if args.stride is not None and args.slab is None:
            raise SystemExit("wssscam train: --stride needs --slab")
        depth = args.depth or args.slab or 32
        recipe = VolumeRecipe(size=(depth, args.size, args.size), axis=args.axis, slab=args.slab, stride=args.stride)
    elif args.slab is not None or args.stride is not None or args.depth is not None:
        raise SystemExit("wssscam train: --slab, --stride and --depth need --recipe-kind volume")
    else:
        recipe = SliceRecipe(size=args.size, axis=args.axis, context_channel=context)
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        patience=args.patience,
        balance=args.balance,
        augment=not args.no_augment,
        seed=args.seed,
        device=args.device,
    )
    folds = None
    if args.folds_file and args.train_on_all:
        raise SystemExit("wssscam train: --folds-file and --train-on-all exclude each other")
    if args.folds_file:
        folds = load_folds(args.folds_file, args.seed)
        what = (
            f"fixed split from {args.folds_file} ({len(folds.training(0))} training, {len(folds.held_out(0))} test cases)"
            if folds.fixed
            else f"{len(folds.folds)} folds from {args.folds_file}"
        )
    elif args.train_on_all:
        folds = fixed_split([c.case_id for c in dataset.cases], [], seed=args.seed)
        what = "training on every case (nothing held out; the model card records no held-out metrics)"
    else:
        what = f"{args.folds}-fold case-level cross-validation"
    print(
        f"{len(dataset.cases)} cases, channels {dataset.channel_names}, classes {dataset.class_names}; "
        f"{what} of {args.arch} -> {args.out}"
    )
    with folder_lock(args.out, what="wssscam train") as alone:
        if alone:
            remove_stale_temporaries(args.out)
        report = cross_validate(dataset, args.out, args.arch, recipe, config, k=args.folds, seed=args.seed, folds=folds)
    print(report.table())
    print(f"\nCheckpoints and model cards: {args.out}/fold*/model.pt|json; results: {args.out}/cv_results.csv")
    return 0


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard expects i/n (e.g. 0/4), got '{text}'") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard {text}: expected 0 <= i < n")
    return index, count


def _at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``, refused as a usage error naming the value otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


def _study(args: argparse.Namespace) -> int:
    from .study import STAGES, load_config, run_study

    config = load_config(args.config)
    if args.out:
        from pathlib import Path

        config.output = Path(args.out)
    if args.device:
        config.device = args.device
    # A shard maps its cases under every fold's models: train first (--stages train, sharded by fold), then cams (by case) and retrain (by fold).
    stages = args.stages.split(",") if args.stages else (["cams", "retrain"] if args.shard[1] > 1 else list(STAGES))
    report = run_study(config, args.shard, stages, progress=not args.quiet, folds=args.folds)
    if report is None:
        print(
            f"shard {args.shard[0]}/{args.shard[1]} done; when every shard has finished: wssscam study {args.config} --stages report"
        )
    return 0


def _merge(args: argparse.Namespace) -> int:
    from .study import merge_outputs

    copied = merge_outputs(args.out, args.shards)
    print(f"{copied} units gathered into {args.out}; now: wssscam study CONFIG --out {args.out} --stages report")
    return 0


def _numbers(text: str, kind=float) -> tuple:
    try:
        return tuple(kind(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None


def _predict(args: argparse.Namespace) -> int:
    from .data.datasets import DatasetError
    from .data.readers import VolumeReadError
    from .data.segmentation_files import SegmentationFileError
    from .inference import TestTimeAugmentation
    from .masks import Threshold
    from .predict import (
        PredictInputError,
        PredictOptions,
        SegmentationRule,
        cases_from_manifest,
        cases_from_paths,
        load_models,
        predict,
        progress_for,
    )
    from .refine import Pipeline
    from .training.checkpoint import CheckpointError

    errors = (
        PredictInputError,
        VolumeReadError,
        DatasetError,
        SegmentationFileError,
        CheckpointError,
        ValueError,
        OSError,
    )
    progress = progress_for(args.progress)  # first, so every failure reaches a JSON-lines reader
    try:
        if bool(args.inputs) == bool(args.manifest):
            raise PredictInputError("give input volumes/folders or --manifest FILE (one of the two)")
        cases = cases_from_manifest(args.manifest) if args.manifest else cases_from_paths(args.inputs)
        if args.reference or args.region:
            if len(cases) != 1:
                raise PredictInputError(
                    "--reference/--region name one file, so they need exactly one input case; use a manifest for several"
                )
            from pathlib import Path

            cases[0].reference = Path(args.reference) if args.reference else cases[0].reference
            cases[0].region = Path(args.region) if args.region else cases[0].region
        rule = SegmentationRule(
            Threshold.parse(args.threshold),
            args.ensemble,
            args.member_thresholds,
            args.empty_when_negative,
            Pipeline.parse(args.refine or "none"),
        )
        options = PredictOptions(
            tuple(m for m in args.methods.split(",") if m),
            rule,
            args.target_class,
            tuple(args.layers.split(",")) if args.layers else None,
            args.box,
            args.batch_size,
            args.device,
            args.cam_format,
            TestTimeAugmentation(args.tta_scales or (1.0,), args.tta_flip),
        )
        models = load_models(args.checkpoint, args.device)
        summary = predict(cases, models, args.out, options, progress, args.shard)
    except errors as error:
        progress.event("error", message=str(error))
        raise SystemExit(f"wssscam predict: {error}") from None
    except Exception as error:  # e.g. CUDA out of memory: main() reports it; a JSON-lines reader learns it here
        progress.event("error", message=f"{type(error).__name__}: {error}")
        raise
    finally:
        progress.close()
    if args.progress != "json":
        print("\n".join(summary.lines()))
    return 0


def _export_nnunet(args: argparse.Namespace) -> int:
    from .predict.nnunet_export import export_nnunet, parse_uncertain

    uncertain = parse_uncertain(args.uncertain) if args.uncertain else None
    export = export_nnunet(
        args.predict_out, args.segment, args.out, args.id, args.name, uncertain, args.cam, args.label_name
    )
    print("\n".join(export.lines()))
    from pathlib import Path

    raw = Path(args.out).resolve()
    print(
        f"next (nnU-Net v2): export nnUNet_raw={raw}; nnUNetv2_plan_and_preprocess -d {args.id} --verify_dataset_integrity"
    )
    return 0


def _methods(_: argparse.Namespace) -> int:
    from .cams import METHODS

    for method in METHODS.values():
        print(f"{method.name:<20} {method.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``wssscam`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="wssscam", description="Weakly supervised segmentation with class activation maps."
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error (default: one line)")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="a whole WSSS study on built-in phantoms: classifiers, CAMs, thresholds, ensembles, refinement, "
        "pseudo-label and supervised U-Nets, report",
    )
    demo.add_argument("--out", default="wssscam-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--epochs", type=_at_least(1), default=12)
    demo.set_defaults(run=_demo)
    train = sub.add_parser("train", help="k-fold case-level cross-validation of a slice classifier on a dataset")
    train.add_argument("dataset", help="Decathlon/nnU-Net folder (dataset.json), or a folder of volumes with --csv")
    train.add_argument("--csv", help="CSV with columns case,label[,measures] for a folder of volumes")
    train.add_argument(
        "--allow-outside-dataset",
        action="store_true",
        help="let dataset.json refer to files outside the dataset folder (refused by default)",
    )
    train.add_argument("--out", required=True, help="output folder (resumes when it holds finished folds)")
    train.add_argument("--arch", default="small-cnn", help="architecture from the model zoo (default: %(default)s)")
    train.add_argument("--folds", type=_at_least(2), default=5)
    train.add_argument(
        "--folds-file",
        help="the case folds to use: a folds.json (of a study or an earlier run) or a split file "
        "(JSON: train, optional validation, test case lists; one fold)",
    )
    train.add_argument(
        "--train-on-all",
        action="store_true",
        help="train one model on every case (inner validation drawn from them with --patience > 0); "
        "nothing is held out, so the model card records no held-out metrics",
    )
    train.add_argument(
        "--size", type=_at_least(1), default=96, help="slice size in pixels after resizing (default: %(default)s)"
    )
    train.add_argument(
        "--axis", default="K", choices=["K", "J", "I"], help="slicing axis in KJI terms (default: %(default)s)"
    )
    train.add_argument(
        "--context-channel", default=None, help="2.5D: add this channel's previous and next slices (name or index)"
    )
    train.add_argument(
        "--recipe-kind",
        default="slice",
        choices=["slice", "volume"],
        help="slice: 2D slices; volume: 3D slabs (--slab) or whole volumes on a --depth x --size x --size grid",
    )
    train.add_argument(
        "--slab", type=_at_least(1), default=None, help="volume: slices per slab (default: whole volume)"
    )
    train.add_argument(
        "--stride", type=_at_least(1), default=None, help="volume: slices between slab starts (default: --slab)"
    )
    train.add_argument(
        "--depth", type=_at_least(1), default=None, help="volume: grid depth along the axis (default: --slab, else 32)"
    )
    train.add_argument("--epochs", type=_at_least(1), default=30)
    train.add_argument("--batch-size", type=_at_least(1), default=32)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--patience", type=_at_least(0), default=10, help="early-stopping patience in epochs (0: off)")
    train.add_argument("--balance", default="loss", choices=["loss", "sampler", "none"])
    train.add_argument("--no-augment", action="store_true")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    train.set_defaults(run=_train)
    study = sub.add_parser(
        "study", help="a full-dataset CAM study from a YAML/JSON configuration (resumable, shardable)"
    )
    study.add_argument("config", help="study configuration (.yaml, .yml or .json)")
    study.add_argument("--out", help="output folder (default: the configuration's 'output')")
    study.add_argument(
        "--shard", type=_shard, default=(0, 1), help="i/n: run only the i-th of n disjoint parts (default: all)"
    )
    study.add_argument(
        "--stages",
        help="comma-separated subset of train,cams,retrain,segment,report (default: all; with --shard: cams,retrain; segment after every shard's cams, sharded by fold)",
    )
    study.add_argument(
        "--folds",
        type=lambda t: list(_numbers(t, int)),
        help="comma-separated folds (e.g. 0,2): every stage works on these folds only, the report reports them alone",
    )
    study.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: the configuration's)")
    study.add_argument("--quiet", action="store_true", help="no progress bars")
    study.set_defaults(run=_study)
    merge = sub.add_parser("merge", help="gather the outputs of study shards run in separate folders")
    merge.add_argument("shards", nargs="+", help="the shards' output folders")
    merge.add_argument("--out", required=True, help="the merged output folder")
    merge.set_defaults(run=_merge)
    predict = sub.add_parser(
        "predict",
        help="apply trained checkpoints to volumes: CAM volumes and segmentations (NIfTI/NRRD, .seg.nrrd, DICOM SEG)",
    )
    predict.add_argument(
        "inputs", nargs="*", help="NIfTI/NRRD files, DICOM series folders, or dataset folders (dataset.json)"
    )
    predict.add_argument(
        "--manifest", help="JSON list of cases {case, images: [channel files in card order], reference, region}"
    )
    predict.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        help="model checkpoint (.pt with its model card .json beside it); NAME=PATH names it; repeat for several "
        "models; a segmentation network (monai-unet card) adds its own segment '<name> segmentation'",
    )
    predict.add_argument("--out", required=True, help="output folder (resumes: committed cases are not redone)")
    predict.add_argument(
        "--methods",
        default="grad-cam",
        help="comma-separated CAM methods (default: %(default)s; see: wssscam methods): classifier methods explain "
        "the classifiers, Seg- methods the segmentation networks ('' for none: segmentation networks only)",
    )
    predict.add_argument(
        "--threshold", default="t=0.50", help="t=0.5 | p95 | mean | median | otsu | adaptive15 (default: %(default)s)"
    )
    predict.add_argument(
        "--ensemble", choices=["and", "or", "<", ">", "majority", "mean"], help="combine every model x method mask"
    )
    predict.add_argument(
        "--member-thresholds", type=_numbers, help="fixed t per ensemble member (e.g. a study's choice: 0.6,0.3)"
    )
    predict.add_argument(
        "--empty-when-negative", action="store_true", help="empty the slices the classifier calls negative (p <= 0.5)"
    )
    predict.add_argument("--target-class", help="class index or name (default: the model's last class)")
    predict.add_argument(
        "--layers", help="comma-separated target layer(s) (default: the model card's; several: Layer-CAM fusion)"
    )
    predict.add_argument("--reference", help="reference mask of the one input case: metrics.csv gets Dice/IoU/volumes")
    predict.add_argument("--region", help="Seg- methods: mask file of the pixel set M of the one input case")
    predict.add_argument(
        "--box",
        type=lambda t: _numbers(t, int),
        help="Seg- methods: pixel set M as an IJK box i0,j0,k0,i1,j1,k1 (half-open)",
    )
    predict.add_argument("--batch-size", type=int, default=16)
    predict.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: %(default)s)")
    predict.add_argument(
        "--cam-format",
        default="auto",
        choices=["auto", "nii.gz", "nrrd"],
        help="CAM/mask file type (auto: NIfTI for NIfTI input, else NRRD)",
    )
    predict.add_argument(
        "--refine",
        help="refine every segment: steps of WSSSCamLib.refine joined by '|', e.g. 'slic:n_segments=200 | components:keep=peak'",
    )
    predict.add_argument(
        "--tta-scales",
        type=_numbers,
        help="test-time augmentation: fuse the maps of the slices rescaled by these factors (e.g. 1,1.25)",
    )
    predict.add_argument("--tta-flip", action="store_true", help="test-time augmentation: also fuse the mirrored maps")
    predict.add_argument(
        "--shard", type=_shard, default=(0, 1), help="i/n: only the i-th of n disjoint parts of the cases"
    )
    predict.add_argument(
        "--progress",
        default="bar",
        choices=["bar", "json", "none"],
        help="progress bar, JSON lines on stdout, or nothing",
    )
    predict.set_defaults(run=_predict)
    nnunet = sub.add_parser(
        "export-nnunet",
        help="a finished predict output's segment as pseudo-labels of an nnU-Net v2 raw dataset",
    )
    nnunet.add_argument("predict_out", help="output folder of a finished 'wssscam predict' run")
    nnunet.add_argument("--segment", required=True, help="segment name of the run (e.g. 'layer-cam-fused t=0.50')")
    nnunet.add_argument(
        "--out", required=True, help="nnU-Net raw folder (nnUNet_raw); Dataset<ID>_<NAME> is written in it"
    )
    nnunet.add_argument("--id", type=_at_least(1), required=True, help="nnU-Net dataset id, 1..999")
    nnunet.add_argument("--name", required=True, help="dataset name (letters, digits, '_', '-')")
    nnunet.add_argument(
        "--uncertain",
        help="low,high: voxels whose CAM lies in [low, high] get nnU-Net's 'ignore' label (left out of the loss)",
    )
    nnunet.add_argument(
        "--cam", help="with --uncertain: the CAM to use (default: the segment's own; needed for ensemble segments)"
    )
    nnunet.add_argument("--label-name", default="lesion", help="name of label 1 (default: %(default)s)")
    nnunet.set_defaults(run=_export_nnunet)
    methods = sub.add_parser("methods", help="list the CAM methods")
    methods.set_defaults(run=_methods)
    return parser


def error_line(command: str, error: BaseException) -> tuple[str, int]:
    """The one line and the exit status ``main`` gives for ``error`` raised by subcommand ``command``:
    a user error (:class:`~WSSSCamLib.errors.UserError`, or an ``OSError``, named by its path) -> 1, anything else -> 3."""
    from .errors import UserError

    if isinstance(error, UserError):
        return f"wssscam {command}: {error}", 1
    if isinstance(error, OSError):
        if error.filename is not None:
            target = f" -> {error.filename2}" if error.filename2 is not None else ""
            return f"wssscam {command}: {error.filename}{target}: {error.strerror or error}", 1
        return f"wssscam {command}: {error}", 1
    return (
        f"wssscam {command}: internal error ({type(error).__name__}: {error}); "
        "run again with --debug for the traceback, and please report it"
    ), 3


def _check_device_option(args: argparse.Namespace) -> None:
    """Any subcommand's ``--device``: spelled right and present on this machine, checked before the handler does any work."""
    device = getattr(args, "device", None)
    if device is not None:
        from .devices import resolve_device

        resolve_device(device, "--device")


def main(argv: list[str] | None = None) -> int:
    """Run a ``wssscam`` command; user errors end as one line and exit status 1 (see the module docstring)."""
    args = build_parser().parse_args(argv)
    if args.debug:
        _check_device_option(args)
        return args.run(args)
    try:
        _check_device_option(args)
        return args.run(args)
    except KeyboardInterrupt:
        print(f"wssscam {args.command}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as error:  # noqa: BLE001 - every error ends as one line; --debug shows the traceback
        line, status = error_line(args.command, error)
        if status == 1:
            raise SystemExit(line) from None
        print(line, file=sys.stderr)
        raise SystemExit(status) from None


if __name__ == "__main__":
    sys.exit(main())

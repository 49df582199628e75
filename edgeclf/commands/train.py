"""`edgeclf train` — fine-tune a backbone on a split manifest (thin layer over :func:`train.loop.train_model`).

The training options, their defaults and help come from :class:`edgeclf.train.config.TrainConfig`
(torch-free, so ``edgeclf --help`` stays fast); nothing here repeats a default.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from typing import Any

from edgeclf.train.config import TrainConfig

_D = TrainConfig()

HELP = "fine-tune an ImageNet backbone on a split manifest (best.pt, last.pt, history)"
DESCRIPTION = f"""\
Fine-tune an ImageNet backbone on the train subset of SPLIT.json, choosing the best epoch on val.

By default the backbone is frozen (BatchNorm in eval mode) and its features are computed once per
image (feature cache), then the classification head trains for --epochs on them. --unfreeze
fine-tunes everything, the backbone at lr x --backbone-lr-mult ({_D.backbone_lr_mult}).

Writes RUN_DIR/best.pt (best validation accuracy), RUN_DIR/last.pt, RUN_DIR/history.csv and
history.json (one row per epoch), RUN_DIR/features.pt (the feature cache).
Continue an interrupted run with --resume RUN_DIR/last.pt (same split): the run keeps the
checkpoint's recipe; options left out take its values, and a recipe option given with a
different value is refused (device, workers and --quiet may change).
Several GPUs or machines: torchrun --nproc-per-node N -m edgeclf train ... (DDP; --batch-size is
per process; only rank 0 writes).

examples:
  edgeclf train --split split.json --out runs/eff --arch efficientnet_lite0
  edgeclf train --split split.json --out runs/r50 --weights IMAGENET1K_V2 --unfreeze --epochs 10
  edgeclf train --split split.json --out runs/eff --resume runs/eff/last.pt
"""


def _shown_default(value: Any) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def add_arguments(parser) -> None:
    from ._common import DEVICE_SYNTAX, _device

    parser.add_argument("--split", required=True, metavar="SPLIT.json", help="split manifest (edgeclf split)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="output folder for checkpoints and history")
    # One option per TrainConfig field. default=SUPPRESS is argparse's "not given": an option left
    # out is absent from args, so a resumed run can tell it from one given with the default value.
    for f in fields(TrainConfig):
        meta = f.metadata
        if not meta["cli"]:
            continue
        help_text = meta["help"] + ("" if f.default is None or f.default is MISSING
                                    else f" (default: {_shown_default(f.default)})")
        flag = "--" + f.name.replace("_", "-")
        if meta["type"] is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=help_text)
        elif f.name == "device":  # the one device syntax of every command
            parser.add_argument(flag, dest=f.name, type=_device, default=argparse.SUPPRESS, metavar="DEVICE",
                                help=f"{DEVICE_SYNTAX}: auto = CUDA only if it really works; cuda or cuda:N fail if"
                                     f" that GPU is not usable (default: {f.default})")
        else:
            parser.add_argument(flag, dest=f.name, type=meta["type"], default=argparse.SUPPRESS,
                                choices=meta["choices"], metavar=meta["metavar"], help=help_text)
    parser.add_argument("--resume", metavar="RUN_DIR/last.pt", default=None,
                        help="continue an interrupted run (its recipe is kept)")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="images folder, if moved since the split was written")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines on stderr")


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig options given on the command line (left-out ones absent)."""
    options = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if args.quiet:
        options["progress"] = False
    return options


def run(args) -> int:
    import json
    import os

    from edgeclf.train.loop import train_model

    result = train_model(args.split, args.out, resume=args.resume, data_root=args.data_root,
                         **options_from_args(args))
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({
            "best_checkpoint": str(result.best_checkpoint), "last_checkpoint": str(result.last_checkpoint),
            "best_val_acc": result.best_val_acc, "best_epoch": result.best_epoch, "epochs": result.epochs,
            "wall_time_s": round(result.wall_time_s, 3), "feature_time_s": round(result.feature_time_s, 3),
            "train_time_s": round(result.train_time_s, 3), "device": result.device, "amp": result.amp,
            "world_size": result.world_size,
        }))
    return 0

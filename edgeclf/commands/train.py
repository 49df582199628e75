"""`edgeclf train` — fine-tune a backbone on a split manifest (thin layer over :func:`train.loop.train_model`)."""

from __future__ import annotations

HELP = "fine-tune an ImageNet backbone on a split manifest (best.pt, last.pt, history)"
DESCRIPTION = """\
Fine-tune an ImageNet backbone on the train subset of SPLIT.json, choosing the best epoch on val.

By default the backbone is frozen (BatchNorm in eval mode) and its features are computed once per
image (feature cache), then the classification head trains for --epochs on them. --unfreeze
fine-tunes everything, the backbone at a 10x lower learning rate.

Writes RUN_DIR/best.pt (best validation accuracy), RUN_DIR/last.pt, RUN_DIR/history.csv and
history.json (one row per epoch), RUN_DIR/features.pt (the feature cache).
Continue an interrupted run with --resume RUN_DIR/last.pt (same split, same recipe).
Several GPUs or machines: torchrun --nproc-per-node N -m edgeclf train ... (DDP; --batch-size is
per process; only rank 0 writes).

examples:
  edgeclf train --split split.json --out runs/eff --arch efficientnet_lite0
  edgeclf train --split split.json --out runs/r50 --weights IMAGENET1K_V2 --unfreeze --epochs 10
  edgeclf train --split split.json --out runs/eff --resume runs/eff/last.pt
"""


#: Defaults shown in --help; they mirror train.recipe.RECIPE_DEFAULTS (a test checks), which is
#: not imported here so that `edgeclf --help` works without the training packages. Options left
#: unset are not passed on, so train_model's own defaults (or a resumed checkpoint's recipe) apply.
SHOWN_DEFAULTS = {"arch": "resnet50", "epochs": 30, "batch_size": 32, "lr": 1e-3, "weight_decay": 0.0,
                  "dropout": 0.4, "seed": 0, "aug_views": 0}
RECIPE_OPTIONS = ("arch", "weights", "epochs", "batch_size", "lr", "weight_decay", "dropout", "seed", "aug_views")


def add_arguments(parser) -> None:
    d = SHOWN_DEFAULTS
    parser.add_argument("--split", required=True, metavar="SPLIT.json", help="split manifest (edgeclf split)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="output folder for checkpoints and history")
    parser.add_argument("--arch", help=f"backbone: resnet50, efficientnet_lite0 (offline ImageNet weights),"
                                       f" tiny_cnn (tests) (default: {d['arch']})")
    parser.add_argument("--weights",
                        help="backbone weights: resnet50 DEFAULT|IMAGENET1K_V1|IMAGENET1K_V2, efficientnet_lite0"
                             " IMAGENET; 'none' (random) or a state dict PATH (default: the arch's ImageNet weights)")
    parser.add_argument("--epochs", type=int, help=f"epochs (default: {d['epochs']})")
    parser.add_argument("--batch-size", type=int, help=f"batch size per process (default: {d['batch_size']})")
    parser.add_argument("--lr", type=float, help=f"head learning rate, Adam, cosine schedule (default: {d['lr']})")
    parser.add_argument("--weight-decay", type=float, help=f"Adam weight decay (default: {d['weight_decay']})")
    parser.add_argument("--dropout", type=float, help=f"head dropout (default: {d['dropout']})")
    parser.add_argument("--seed", type=int, help=f"random seed (default: {d['seed']})")
    parser.add_argument("--aug-views", type=int,
                        help=f"augmented views per train image added to the feature cache (default: {d['aug_views']})")
    parser.add_argument("--decode", choices=("exact", "draft"), default=None,
                        help="how JPEGs are decoded, stored with the model and used by export and runtime:"
                             " exact (full decode, torchvision-identical; default) or draft (libjpeg DCT"
                             " downscaling to >= the resize size; ~3x faster on 12-MP photos)")
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N (default: auto)")
    parser.add_argument("--resume", metavar="RUN_DIR/last.pt", default=None,
                        help="continue an interrupted run (its recipe is kept)")
    parser.add_argument("--unfreeze", action="store_true", help="fine-tune the backbone too (lr x 0.1)")
    parser.add_argument("--no-feature-cache", dest="feature_cache", action="store_false",
                        help="recompute the frozen backbone every epoch (slow; the reference behaviour)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: by device)")
    parser.add_argument("--data-root", default=None, help="images folder, if moved since the split was written")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")


def run(args) -> int:
    import json

    from edgeclf.train.loop import train_model

    import os

    recipe = {k: getattr(args, k) for k in RECIPE_OPTIONS if getattr(args, k) is not None}
    result = train_model(
        args.split, args.out, device=args.device, resume=args.resume, unfreeze=args.unfreeze,
        feature_cache=args.feature_cache, workers=args.workers, progress=not args.quiet,
        data_root=args.data_root, decode=args.decode, **recipe,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({
            "best_checkpoint": str(result.best_checkpoint), "last_checkpoint": str(result.last_checkpoint),
            "best_val_acc": result.best_val_acc, "best_epoch": result.best_epoch, "epochs": result.epochs,
            "wall_time_s": round(result.wall_time_s, 3), "feature_time_s": round(result.feature_time_s, 3),
            "train_time_s": round(result.train_time_s, 3), "device": result.device, "amp": result.amp,
            "world_size": result.world_size,
        }))
    return 0

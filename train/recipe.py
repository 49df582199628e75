"""Default training hyper-parameters (torch-free, so ``edgeclf train --help`` stays fast).

These define a run: they are stored in the checkpoint as ``train_args`` and a resumed run keeps
them. Chosen on the validation subset of the nine-class Caltech split (see README).
"""

from __future__ import annotations

from typing import Any

#: The hyper-parameters that define a run; ``weights=None`` means the backbone's default weights.
RECIPE_DEFAULTS: dict[str, Any] = {
    "arch": "resnet50",
    "weights": None,
    "epochs": 30,
    "batch_size": 32,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "dropout": 0.4,
    "backbone_lr_mult": 0.1,
    "seed": 0,
    "unfreeze": False,
    "feature_cache": True,
    "aug_views": 0,
}

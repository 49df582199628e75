"""Default training hyper-parameters — derived from :class:`edgeclf.train.config.TrainConfig`,
the single source of the defaults (kept for code that reads the recipe as a dict).

These define a run: they are stored in the checkpoint as ``train_args`` and a resumed run keeps them.
"""

from __future__ import annotations

from typing import Any

from .config import TrainConfig

#: The hyper-parameters that define a run; ``weights=None`` means the backbone's default weights.
RECIPE_DEFAULTS: dict[str, Any] = TrainConfig().recipe()

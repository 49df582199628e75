"""edgeclf training: dataset split, backbones, the fine-tuning loop, checkpoints and evaluation.

Importing this package is cheap: torch is imported by the submodules that need it
(:mod:`train.models`, :mod:`train.checkpoint`, the loop), not here. :mod:`train.split` and
:mod:`train.data` are torch-free.
"""

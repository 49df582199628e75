"""Options shared by several subcommands, spelled the same everywhere (one metavar per concept)."""

from __future__ import annotations

#: The device syntax of every subcommand that runs a model.
DEVICE_SYNTAX = "auto|cpu|cuda|cuda:N"


def _device(text: str) -> str:
    import argparse
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r}: use {DEVICE_SYNTAX} (N = GPU number, e.g. cuda:0)")
    return text


def add_device(parser, what: str = "where the model runs") -> None:
    """``--device auto|cpu|cuda|cuda:N`` (default auto)."""
    parser.add_argument("--device", default="auto", metavar="DEVICE", type=_device,
                        help=f"{what}: {DEVICE_SYNTAX} (default: auto = CUDA only if it really works;"
                             " cuda or cuda:N fail if that GPU is not usable)")


def add_quiet(parser) -> None:
    """``--quiet``: no progress on stderr (results still go to stdout)."""
    parser.add_argument("--quiet", action="store_true",
                        help="no progress on stderr (without it: a live display on a terminal, one line"
                             " per stage when stderr is redirected)")

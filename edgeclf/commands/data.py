"""`edgeclf data` — stub until its issue lands."""

from . import not_implemented

HELP = "data (not implemented yet)"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    return not_implemented("data")

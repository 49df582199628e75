"""`edgeclf evaluate` — stub until its issue lands."""

from . import not_implemented

HELP = "evaluate (not implemented yet)"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    return not_implemented("evaluate")

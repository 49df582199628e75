"""One module per ``edgeclf`` subcommand: ``HELP``, ``add_arguments(parser)``, ``run(args) -> int``."""


def not_implemented(name: str) -> int:
    """Stub body: say so on stderr and exit 3 — never pretend to have done the work."""
    import sys

    print(f"edgeclf {name}: not implemented yet", file=sys.stderr)
    return 3

"""One module per ``edgeclf`` subcommand: ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)``,
``run(args) -> int``. Heavy imports (torch, onnxruntime, rich) happen inside ``run``."""

"""The ``deepregime`` command line (typer): one module per area, wired in cli.main."""

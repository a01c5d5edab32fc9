"""The ``memscape`` command line: ``list``, ``run <experiment>``, ``train``, ``sample``."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="memscape: diffusion models as associative memories.",
    no_args_is_help=True,
    add_completion=False,
)

# ---------------------------------------------------------------- experiments
# (lead: `list` and `run <name>` are generated from memscape.experiments' registry)

# ---------------------------------------------------------------- train / sample
# (diffusion engineer: `train` and `sample` commands go in this section)


def main() -> None:  # pragma: no cover - console entry
    """Entry point of the ``memscape`` console script."""
    app()

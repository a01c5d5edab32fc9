"""The ``memscape`` command line: ``list``, ``run <experiment>``, ``train``, ``sample``."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="memscape: diffusion models as associative memories.",
    no_args_is_help=True,
    add_completion=False,
)

# ---------------------------------------------------------------- experiments
run_app = typer.Typer(help="Run an experiment into a results folder (see `memscape list`).",
                      no_args_is_help=True)
app.add_typer(run_app, name="run")


@app.command("list")
def list_experiments() -> None:
    """List the experiments with a one-line description and the paper each reproduces."""
    from rich.console import Console
    from rich.table import Table

    from memscape.experiments import EXPERIMENTS

    table = Table("experiment", "what it shows", "reproduces")
    for exp in EXPERIMENTS.values():
        table.add_row(exp.name, exp.summary, exp.paper)
    Console().print(table)


def _experiment_command(name: str):
    """A typer command for experiment ``name`` with one option per config field."""
    import dataclasses
    import inspect
    from pathlib import Path
    from typing import Optional

    from memscape.experiments import EXPERIMENTS, run_experiment
    from memscape.experiments.registry import field_types

    exp = EXPERIMENTS[name]
    types_ = field_types(exp.config)
    fields = {f.name: f for f in dataclasses.fields(exp.config)}

    def command(**kwargs):
        common = {k: kwargs.pop(k) for k in
                  ("out", "seed", "quick", "config", "workers", "executor", "address")}
        overrides = {k: v for k, v in kwargs.items() if v is not None}
        try:
            folder = run_experiment(name, **common, **overrides)
        except (ValueError, TypeError) as err:
            typer.secho(f"error: {err}", fg="red", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"results written to {folder.path}")

    params = [
        inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                          default=typer.Option(None, help="results folder [default: results/<name>]")),
        inspect.Parameter("seed", inspect.Parameter.KEYWORD_ONLY, annotation=int,
                          default=typer.Option(0, help="base seed of every random draw")),
        inspect.Parameter("quick", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                          default=typer.Option(False, help="small, fast configuration")),
        inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                          default=typer.Option(None, help="YAML/JSON file with the same options")),
        inspect.Parameter("workers", inspect.Parameter.KEYWORD_ONLY, annotation=int,
                          default=typer.Option(1, help="jobs run in parallel")),
        inspect.Parameter("executor", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                          default=typer.Option("local", help="local or ray")),
        inspect.Parameter("address", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                          default=typer.Option(None, help="Ray cluster address")),
    ]
    for fname, tp in types_.items():
        default = fields[fname].default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        helptext = f"{fields[fname].metadata.get('help', '')} (default: {shown})"
        opt = "--" + fname.replace("_", "-")
        if tp is bool:
            param_default = typer.Option(None, f"{opt}/--no-{opt[2:]}", help=helptext,
                                         show_default=False)
            annotation = Optional[bool]
        else:
            param_default = typer.Option(None, opt, help=helptext, show_default=False)
            annotation = Optional[str]
        params.append(inspect.Parameter(fname, inspect.Parameter.KEYWORD_ONLY,
                                        annotation=annotation, default=param_default))
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = f"{exp.summary} Reproduces: {exp.paper}."
    command.__name__ = name.replace("-", "_")
    return command


def _register_experiment_commands() -> None:
    from memscape.experiments import EXPERIMENTS

    for name in EXPERIMENTS:
        run_app.command(name)(_experiment_command(name))


_register_experiment_commands()


# ---------------------------------------------------------------- train / sample
# (diffusion engineer: `train` and `sample` commands go in this section)


def main() -> None:  # pragma: no cover - console entry
    """Entry point of the ``memscape`` console script."""
    app()

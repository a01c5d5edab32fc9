"""The ``memscape`` command line: ``list``, ``run <experiment>``, ``train``, ``sample``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    help="memscape: diffusion models as associative memories.",
    no_args_is_help=True,
    add_completion=False,
)

# ---------------------------------------------------------------- experiments
run_app = typer.Typer(
    help="Run an experiment into a results folder (see `memscape list`).", no_args_is_help=True
)
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


# name, annotation, default, help of the options every experiment takes
_COMMON_OPTIONS: tuple[tuple[str, Any, Any, str], ...] = (
    ("out", Path | None, None, "results folder (default: results/<name>)"),
    ("seed", int, 0, "base seed of every random draw"),
    ("quick", bool, False, "small, fast configuration"),
    ("config", Path | None, None, "YAML/JSON file with the same options"),
    ("workers", int, 1, "jobs run in parallel"),
    ("executor", str, "local", "local or ray"),
    ("address", str | None, None, "Ray cluster address"),
)


def _option_help(spec: dict[str, Any]) -> str:
    """One option's help: its text, then range or choices and the default, once, in parentheses.

    (No square brackets: rich would read them as markup and drop them.)
    """
    notes = [
        f"{word} {spec[key]:g}"
        for key, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
        if spec.get(key) is not None
    ]
    if spec.get("choices"):
        notes.append("one of " + ", ".join(spec["choices"]))
    default = spec["default"]
    if default is not None:
        notes.append(
            "default "
            + (",".join(map(str, default)) if isinstance(default, tuple) else str(default))
        )
    text = spec.get("help") or ""
    return f"{text} ({'; '.join(notes)})" if notes else text


def _experiment_command(name: str):
    """A typer command for experiment ``name`` with one option per config field."""
    import inspect

    from memscape.config import option_spec
    from memscape.experiments import EXPERIMENTS, run_experiment

    exp = EXPERIMENTS[name]

    def command(**kwargs):
        common = {opt[0]: kwargs.pop(opt[0]) for opt in _COMMON_OPTIONS}
        overrides = {k: v for k, v in kwargs.items() if v is not None}
        try:
            folder = run_experiment(name, **common, **overrides)
        except (ValueError, TypeError) as err:
            typer.secho(f"error: {err}", fg="red", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"results written to {folder.path}")

    params = [
        inspect.Parameter(
            pname, inspect.Parameter.KEYWORD_ONLY, annotation=tp, default=typer.Option(dflt, help=h)
        )
        for pname, tp, dflt, h in _COMMON_OPTIONS
    ]
    annotation: Any
    for fname, spec in option_spec(exp.config).items():
        opt = "--" + fname.replace("_", "-")
        helptext = _option_help(spec)
        if spec["type"] == "bool":
            param_default = typer.Option(
                None, f"{opt}/--no-{opt[2:]}", help=helptext, show_default=False
            )
            annotation = bool | None
        else:
            param_default = typer.Option(
                None, opt, help=helptext, show_default=False, metavar=f"<{spec['type']}>"
            )
            annotation = str | None  # parsed and validated by build_config (lists: 2,8,32)
        params.append(
            inspect.Parameter(
                fname, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=param_default
            )
        )
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


def _fail(err: Exception) -> typer.Exit:
    typer.secho(f"error: {err}", fg="red", err=True)
    return typer.Exit(2)


def _loader_options(items: list[str]) -> dict:
    """``key=value`` strings to a dict; values parsed as JSON when they parse (numbers, lists)."""
    import json

    opts = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option must look like key=value, got {item!r}")
        try:
            opts[key] = json.loads(value)
        except json.JSONDecodeError:
            opts[key] = value
    return opts


@app.command("train")
def train_command(
    data: str = typer.Option(
        ..., help="data set name (memscape.datasets) or .npy/.npz/folder path"
    ),
    out: str = typer.Option(..., help="run folder (config.json, losses.csv, model, checkpoint)"),
    n: int | None = typer.Option(None, help="training-set size K: a seeded subset of the data"),
    option: list[str] = typer.Option([], help="data loader option key=value (repeatable)"),
    net: str = typer.Option("mlp", help="mlp or unet"),
    energy: bool = typer.Option(False, "--energy/--score", help="energy network E(x, sigma)"),
    precond: str = typer.Option("edm", help="edm, vp or ve (EDM Table 1)"),
    width: int = typer.Option(256, help="MLP width"),
    layers: int = typer.Option(4, help="MLP hidden layers"),
    channels: int = typer.Option(32, help="U-Net base channels"),
    steps: int = typer.Option(2000, help="optimizer steps"),
    batch: int = typer.Option(256, help="batch size"),
    lr: float = typer.Option(1e-3, help="Adam learning rate"),
    warmup: int = typer.Option(200, help="learning-rate warm-up steps"),
    ema: float = typer.Option(0.999, help="EMA decay of the weights"),
    checkpoint_every: int | None = typer.Option(None, help="steps between checkpoints"),
    seed: int = typer.Option(0, help="seed of the subset, the weights and the training noise"),
    device: str = typer.Option("cpu", help="torch device"),
    threads: int | None = typer.Option(None, help="torch CPU threads while training"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="continue from a checkpoint"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
) -> None:
    """Train a diffusion model (EDM loss, Adam, EMA) on a data set into a run folder."""
    from memscape import ScoreModel, datasets, train

    try:
        ds = datasets.load(data, n=n, seed=seed, **_loader_options(option))
        if net == "mlp":
            if len(ds.event_shape) != 1:
                raise ValueError(
                    f"--net mlp needs vector data, got samples of shape {ds.event_shape}"
                )
            model = ScoreModel.mlp(
                ds.dim, width=width, layers=layers, energy=energy, precond=precond, seed=seed
            )
        elif net == "unet":
            if len(ds.event_shape) != 3:
                raise ValueError(f"--net unet needs images (C, H, W), got {ds.event_shape}")
            c, h, w = ds.event_shape
            model = ScoreModel.unet(
                (c, h, w), channels=channels, energy=energy, precond=precond, seed=seed
            )
        else:
            raise ValueError(f"unknown net {net!r}; expected mlp or unet")
        run = train(
            model,
            ds,
            steps=steps,
            batch=batch,
            seed=seed,
            out=out,
            lr=lr,
            warmup=warmup,
            ema=ema,
            checkpoint_every=checkpoint_every,
            device=device,
            progress=progress,
            resume=resume,
            threads=threads,
        )
    except (ValueError, TypeError, ImportError) as err:
        raise _fail(err) from None
    last = run.losses["loss"].iloc[-1] if len(run.losses) else float("nan")
    typer.echo(
        f"trained {steps} steps on {len(ds)} points of {ds.name} ({run.steps_per_second:.0f} "
        f"steps/s this call), final loss {last:.4g}; run folder {run.path}"
    )


@app.command("sample")
def sample_command(
    run: str = typer.Argument(..., help="run or model folder (ScoreModel.load)"),
    n: int = typer.Option(1000, help="number of samples"),
    out: str | None = typer.Option(None, help=".npy file [default: <run>/samples.npy]"),
    sampler: str = typer.Option("heun", help="heun, euler, euler_maruyama, ddim or ode"),
    steps: int = typer.Option(18, help="noise levels (Karras et al. 2022 schedule)"),
    sigma_min: float = typer.Option(0.002, help="smallest nonzero noise level"),
    sigma_max: float = typer.Option(80.0, help="largest noise level"),
    seed: int = typer.Option(0, help="seed of the start noise"),
    device: str = typer.Option("cpu", help="torch device"),
) -> None:
    """Sample a trained model and write the samples as a .npy array (N, *event_shape)."""
    import os
    from pathlib import Path

    import numpy as np

    from memscape import ScoreModel, sample

    target = Path(out) if out is not None else Path(run) / "samples.npy"
    try:
        if target.suffix != ".npy":
            raise ValueError(f"out must end in .npy, got {target}")
        model = ScoreModel.load(run).to(device)
        x = sample(
            model,
            n,
            sampler=sampler,
            steps=steps,
            sigma_min=sigma_min,
            sigma_max=sigma_max,
            seed=seed,
            device=device,
        )
    except (ValueError, TypeError) as err:
        raise _fail(err) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.tmp.npy")
    np.save(tmp, x.detach().cpu().numpy())
    os.replace(tmp, target)
    typer.echo(f"wrote {n} samples of shape {tuple(x.shape[1:])} to {target}")


def main() -> None:  # pragma: no cover - console entry
    """Entry point of the ``memscape`` console script."""
    app()

"""The ``memscape`` command line: ``list``, ``run <experiment>``, ``train``, ``sample``."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from memscape._validation import (
    check_choice,
    check_device,
    check_int,
    check_output_path,
    check_positive,
)

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


# ---------------------------------------------------------------- errors, signatures
Options = Sequence[tuple[str, Any, Any]]  # (parameter name, annotation, typer.Option(...))


def _message(err: BaseException) -> str:
    """One line: the error's text (an ``OSError`` as ``reason: file``), newlines folded."""
    if isinstance(err, OSError) and err.filename is not None:
        files = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
        text = f"{err.strerror or type(err).__name__}: {files}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


@contextmanager
def _errors() -> Iterator[None]:
    """Turn a bad input or an unreadable/unwritable file into one ``error:`` line and exit 2.

    Library errors name the argument or file (``ValueError``/``TypeError``; corrupt
    YAML/JSON, images, ``.npy`` and safetensors files are raised as ``ValueError``); an
    ``OSError`` is shown with its file.
    """
    from memscape.runs.sweep import is_interrupt

    try:
        yield
    except (ValueError, TypeError, ImportError, OSError) as err:
        if is_interrupt(err):  # Ctrl-C during a C-extension import: not a bad input
            raise KeyboardInterrupt from err
        typer.secho(f"error: {_message(err)}", fg="red", err=True)
        raise typer.Exit(2) from None


def _signature(options: Options) -> inspect.Signature:
    """Keyword-only parameters from ``(name, annotation, typer.Option)`` rows."""
    kw = inspect.Parameter.KEYWORD_ONLY
    return inspect.Signature(
        [inspect.Parameter(n, kw, annotation=tp, default=opt) for n, tp, opt in options]
    )


def _names(options: Options) -> list[str]:
    return [row[0] for row in options]


# the options every experiment takes
_COMMON_OPTIONS: Options = (
    ("out", Path | None, typer.Option(None, help="results folder (default: results/<name>)")),
    ("seed", int, typer.Option(0, help="base seed of every random draw")),
    ("quick", bool, typer.Option(False, help="small, fast configuration")),
    ("config", Path | None, typer.Option(None, help="YAML/JSON file with the same options")),
    ("workers", int | None, typer.Option(None, help="parallel jobs [default: one per core]")),
    ("executor", str, typer.Option("local", help="local or ray")),
    ("address", str | None, typer.Option(None, help="Ray cluster address")),
    (
        "recompute",
        bool,
        typer.Option(
            False,
            help="--out holds other results (config, seed, data "
            "or version): move them to OUT/superseded/, start afresh",
        ),
    ),
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
        notes.append("one of " + ", ".join(map(str, spec["choices"])))
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
    from memscape.config import option_spec
    from memscape.experiments import EXPERIMENTS, run_experiment

    exp = EXPERIMENTS[name]

    def command(**kwargs):
        common = {key: kwargs.pop(key) for key in _names(_COMMON_OPTIONS)}
        overrides = {k: v for k, v in kwargs.items() if v is not None}
        try:
            with _errors():
                out = common["out"] if common["out"] is not None else Path("results") / name
                common["out"] = check_output_path(out, "--out", folder=True)
                folder = run_experiment(name, **common, **overrides)
        except KeyboardInterrupt as err:  # one line: what finished; re-running resumes
            typer.echo(str(err) or "interrupted; run the same command again to resume", err=True)
            raise typer.Exit(130) from None
        typer.echo(f"results written to {folder.path}")

    options = list(_COMMON_OPTIONS)
    for fname, spec in option_spec(exp.config).items():
        opt = "--" + fname.replace("_", "-")
        helptext = _option_help(spec)
        if spec["type"] == "bool":
            param = typer.Option(None, f"{opt}/--no-{opt[2:]}", help=helptext, show_default=False)
            options.append((fname, bool | None, param))
        else:  # parsed and validated by build_config (lists: 2,8,32)
            param = typer.Option(
                None, opt, help=helptext, show_default=False, metavar=f"<{spec['type']}>"
            )
            options.append((fname, str | None, param))
    command.__signature__ = _signature(options)  # type: ignore[attr-defined]
    command.__doc__ = f"{exp.summary} Reproduces: {exp.paper}."
    command.__name__ = name.replace("-", "_")
    return command


def _register_experiment_commands() -> None:
    from memscape.experiments import EXPERIMENTS

    for name in EXPERIMENTS:
        run_app.command(name)(_experiment_command(name))


_register_experiment_commands()


# ---------------------------------------------------------------- train / sample
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


_DATA_OPTIONS: Options = (
    (
        "data",
        str,
        typer.Option(..., help="data set name (memscape.datasets) or .npy/.npz/folder path"),
    ),
    ("out", str, typer.Option(..., help="run folder (config.json, losses.csv, model, checkpoint)")),
    ("n", int | None, typer.Option(None, help="training-set size K: a seeded subset of the data")),
    ("option", list[str], typer.Option([], help="data loader option key=value (repeatable)")),
    ("seed", int, typer.Option(0, help="seed of the subset, the weights and the training noise")),
)
_NET_OPTIONS: Options = (  # → _network
    ("net", str, typer.Option("mlp", help="mlp or unet")),
    ("energy", bool, typer.Option(False, "--energy/--score", help="energy network E(x, sigma)")),
    ("precond", str, typer.Option("edm", help="edm, vp or ve (EDM Table 1)")),
    ("width", int, typer.Option(256, help="MLP width")),
    ("layers", int, typer.Option(4, help="MLP hidden layers")),
    ("channels", int, typer.Option(32, help="U-Net base channels")),
)
_TRAIN_OPTIONS: Options = (  # → memscape.train, unchanged but --compile (_COMPILE)
    ("steps", int, typer.Option(2000, help="optimizer steps")),
    ("batch", int, typer.Option(256, help="batch size")),
    ("lr", float, typer.Option(1e-3, help="Adam learning rate")),
    ("warmup", int, typer.Option(200, help="learning-rate warm-up steps")),
    ("ema", float, typer.Option(0.999, help="EMA decay of the weights")),
    ("checkpoint_every", int | None, typer.Option(None, help="steps between checkpoints")),
    ("device", str, typer.Option("cpu", help="torch device")),
    ("threads", int | None, typer.Option(None, help="torch CPU threads while training")),
    ("resume", bool, typer.Option(True, "--resume/--no-resume", help="continue from a checkpoint")),
    ("progress", bool, typer.Option(True, "--progress/--no-progress", help="show a progress bar")),
    ("compile", str, typer.Option("auto", help="compile the training step: auto, on or off")),
    ("precision", str, typer.Option("float32", help="float32, or bfloat16 (mixed precision)")),
)
_COMPILE = {"auto": "auto", "on": True, "off": False}  # --compile → train(compile=)


def _network(ds: Any, *, net: str, seed: int, **options: Any) -> Any:
    """The ``ScoreModel`` of ``--net`` (``mlp`` or ``unet``) for the data's sample shape."""
    from memscape import ScoreModel

    common = {"energy": options["energy"], "precond": options["precond"], "seed": seed}
    if net == "mlp":
        if len(ds.event_shape) != 1:
            raise ValueError(f"--net mlp needs vector data, got samples of shape {ds.event_shape}")
        return ScoreModel.mlp(ds.dim, width=options["width"], layers=options["layers"], **common)
    if len(ds.event_shape) != 3:
        raise ValueError(f"--net unet needs images (C, H, W), got {ds.event_shape}")
    return ScoreModel.unet(ds.event_shape, channels=options["channels"], **common)


def train_command(**kw: Any) -> None:
    """Train a diffusion model (EDM loss, Adam, EMA) on a data set into a run folder."""
    from memscape import datasets, train
    from memscape.diffusion.fast_step import PRECISIONS

    with _errors():
        out = check_output_path(kw["out"], "--out", folder=True)
        check_device(kw["device"], "--device")
        check_choice(kw["net"], ("mlp", "unet"), "--net")
        kw["compile"] = _COMPILE[check_choice(kw["compile"], tuple(_COMPILE), "--compile")]
        check_choice(kw["precision"], PRECISIONS, "--precision")
        ds = datasets.load(kw["data"], n=kw["n"], seed=kw["seed"], **_loader_options(kw["option"]))
        model = _network(ds, seed=kw["seed"], **{k: kw[k] for k in _names(_NET_OPTIONS)})
        run = train(
            model, ds, out=out, seed=kw["seed"], **{k: kw[k] for k in _names(_TRAIN_OPTIONS)}
        )
    last = run.losses["loss"].iloc[-1] if len(run.losses) else float("nan")
    typer.echo(
        f"trained {kw['steps']} steps on {len(ds)} points of {ds.name} ({run.steps_per_second:.0f} "
        f"steps/s this call), final loss {last:.4g}; run folder {run.path}"
    )


train_command.__signature__ = _signature(  # type: ignore[attr-defined]
    (*_DATA_OPTIONS, *_NET_OPTIONS, *_TRAIN_OPTIONS)
)
app.command("train")(train_command)


# ---------------------------------------------------------------- models
def _load_model(spec: str, *, device: str, loader: dict[str, Any]) -> tuple[Any, Any]:
    """``(model, its own training set or None)`` of a ``MODEL`` argument; errors name MODEL.

    A model folder (memscape or diffusers) or ``module:function`` goes to
    :func:`memscape.adapters.load`; a ``.npy``/``.npz`` file or ``exact:NAME`` is the exact
    model (:class:`memscape.EmpiricalDiffusion`) of that data set, loaded with ``loader``
    (``n``, ``seed`` and the loader options).
    """
    import torch

    from memscape import EmpiricalDiffusion, adapters, datasets

    path = Path(spec)
    try:
        if spec.startswith("exact:") or path.suffix in (".npy", ".npz"):
            ds = datasets.load(spec.removeprefix("exact:"), **loader)
            return EmpiricalDiffusion(ds.x.to(device, torch.float64)), ds
        if path.suffix == ".safetensors":
            if not (path.parent / "model.json").is_file():
                raise ValueError(
                    f"{path} has no model.json beside it: a memscape model is the folder "
                    "holding model.json and model.safetensors; pass the folder"
                )
            path = path.parent
        if path.is_file():
            raise ValueError(
                f"{path} is a file; expected a model folder, module:function, a .npy/.npz "
                "data set (its exact model) or exact:NAME"
            )
        return adapters.load(spec if not path.exists() else path, device=device), None
    except (ValueError, TypeError, ImportError) as err:
        raise type(err)(f"MODEL {spec!r}: {_message(err)}") from None


@app.command("explore")
def explore_command(
    results_dir: str = typer.Argument(..., help="a results folder with explorer.json "
                                      "(landscape, morse-smale, symmetry-breaking; "
                                      "memorization on 2-D data)"),
) -> None:  # fmt: skip
    """(Re)write RESULTS_DIR/explorer.html from its explorer.json and print its path."""
    from memscape.runs.explorer import write_explorer

    with _errors():
        typer.echo(str(write_explorer(results_dir)))


@app.command("sample")
def sample_command(
    run: str = typer.Argument(
        ..., help="run, memscape or diffusers model folder, module:function, or a .npy data set"
    ),
    n: int = typer.Option(1000, help="number of samples"),
    out: str | None = typer.Option(
        None, help=".npy file (default: <run>/samples.npy for a folder, else samples.npy)"
    ),
    sampler: str = typer.Option("heun", help="heun, euler, euler_maruyama, ddim or ode"),
    steps: int = typer.Option(18, help="noise levels (Karras et al. 2022 schedule)"),
    sigma_min: float | None = typer.Option(
        None, help="smallest nonzero noise level (default: the model's, else 0.002)"
    ),
    sigma_max: float | None = typer.Option(
        None, help="largest noise level (default: the model's, else 80)"
    ),
    seed: int = typer.Option(0, help="seed of the start noise"),
    device: str = typer.Option("cpu", help="torch device"),
) -> None:
    """Sample a model and write the samples as a .npy array (N, *event_shape)."""
    import numpy as np

    import memscape as ms
    from memscape.io import atomic_write

    with _errors():
        default = Path(run) / "samples.npy" if Path(run).is_dir() else Path("samples.npy")
        target = check_output_path(out if out is not None else default, "--out", folder=False)
        if target.suffix != ".npy":
            raise ValueError(f"--out must end in .npy, got {target}")
        check_device(device, "--device")
        model, _ = _load_model(run, device=device, loader={})
        x = ms.sample(model, n, sampler=sampler, steps=steps, sigma_min=sigma_min,
                      sigma_max=sigma_max, seed=seed, device=device)  # fmt: skip
        arr = x.detach().cpu().numpy()
        atomic_write(target, lambda tmp: np.save(tmp, arr))
    typer.echo(f"wrote {n} samples of shape {tuple(x.shape[1:])} to {target}")


# ---------------------------------------------------------------- analyze


def _sigma_list(text: str) -> list[float]:
    """``"0.1,0.5"`` → ``[0.1, 0.5]``: finite noise levels > 0 (``--sigma``)."""
    import math

    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"--sigma must be comma-separated noise levels > 0, got {text!r}")
    return values


def _in_range(model: Any, sigma: float, arg: str) -> None:
    """Refuse a σ outside the ``[sigma_min, sigma_max]`` the model declares (adapted models)."""
    lo, hi = getattr(model, "sigma_min", None), getattr(model, "sigma_max", None)
    if (lo is not None and sigma < lo) or (hi is not None and sigma > hi):
        raise ValueError(
            f"{arg} {sigma:g} is outside the valid range [sigma_min, sigma_max] = "
            f"[{lo or 0:.6g}, {hi if hi is not None else float('inf'):.6g}] of MODEL"
        )


def _points(spec: str | None, arg: str, shape: tuple[int, ...], loader: dict[str, Any]) -> Any:
    """A data set as float64 ``(N, *shape)`` (reshaped when the sizes match); errors name ``arg``."""
    import math

    import torch

    from memscape import datasets

    if spec is None:
        return None
    try:
        ds = datasets.load(spec, **loader)
    except (ValueError, TypeError, ImportError) as err:
        raise type(err)(f"{arg} {spec!r}: {_message(err)}") from None
    if ds.dim != math.prod(shape):
        raise ValueError(
            f"{arg} {spec!r} holds samples of shape {ds.event_shape} ({ds.dim} values), but "
            f"MODEL's event shape is {shape} ({math.prod(shape)} values)"
        )
    return ds.x.reshape(len(ds), *shape).to(torch.float64)


@app.command("analyze")
def analyze_command(
    model: str = typer.Argument(..., help="diffusers or memscape model folder, module:function, "
                                "or the exact model of a data set (.npy/.npz file, exact:NAME)"),
    data: str | None = typer.Option(None, help="training set: a data set name or .npy/.npz/"
                                    "folder path (default: the exact model's own)"),
    held_out: str | None = typer.Option(None, help="real samples not in the training set"),
    n: int | None = typer.Option(None, help="a seeded subset of this many training points"),
    option: list[str] = typer.Option([], help="data loader option key=value (repeatable)"),
    samples: int = typer.Option(256, help="samples to draw and classify"),
    batch: str = typer.Option("auto", help="samples per sampler call, or auto: as many as "
                              "fill a quarter of the device's free memory"),
    sampler: str = typer.Option("heun", help="heun, euler, euler_maruyama, ddim or ode"),
    steps: int = typer.Option(18, help="sampler noise levels, over the model's sigma range"),
    sigma: str = typer.Option("0.1,0.5", help="noise levels of the census, comma-separated"),
    probe: int = typer.Option(4, help="samples whose basin radius (critical sigma) is probed, "
                              "per class with a training set; 0: no probe"),
    probe_trials: int = typer.Option(16, help="noise draws per sample and probe level"),
    probe_levels: str | None = typer.Option(None, help="probe noise levels, comma-separated "
                                            "(default: 10 from 0.005 to 2 in MODEL's range)"),
    probe_delta: float | None = typer.Option(None, help="recovery distance of the probe "
                                             "(default: the memorization radius)"),
    census: int = typer.Option(4, help="samples whose attractors are found at each sigma"),
    max_steps: int = typer.Option(500, help="descent steps of the census"),
    likelihood: int = typer.Option(8, help="points per set whose likelihood is computed"),
    likelihood_sigma: float | None = typer.Option(None, help="noise level of the likelihood "
                                                  "(default: the model's sigma_min, else 0.002)"),
    trace: str = typer.Option("hutchinson", help="likelihood divergence: hutchinson or exact"),
    out: str | None = typer.Option(None, help="results folder (default results/analyze-MODEL)"),
    seed: int = typer.Option(0, help="seed of the samples, the data subset and the probes"),
    device: str = typer.Option("cpu", help="torch device"),
) -> None:  # fmt: skip
    """Analyze a diffusion model: samples, memorization, basins, attractors, Jacobian, likelihood.

    Writes a results folder (config with versions and fingerprints of the model and the
    data, tables, figures, report); the same command again resumes it.
    """
    kw = dict(locals())  # the options, as the config of the results folder
    from memscape import analyze as analysis
    from memscape.diffusion.samplers import SAMPLERS
    from memscape.experiments import ResultsFolder
    from memscape.runs.sweep import is_interrupt

    with _errors():
        slug = Path(model.removeprefix("exact:").replace(":", "-")).name or "model"
        path = check_output_path(out or Path("results") / f"analyze-{slug}", "--out", folder=True)
        check_device(device, "--device")
        if batch != "auto":
            if not batch.isdigit() or int(batch) < 1:
                raise ValueError(f"--batch must be an integer >= 1 or auto, got {batch!r}")
            kw["batch"] = int(batch)
        for value, arg, least in (
            (samples, "--samples", 2), (steps, "--steps", 1), (census, "--census", 0),
            (probe, "--probe", 0), (probe_trials, "--probe-trials", 1),
            (max_steps, "--max-steps", 1), (likelihood, "--likelihood", 0), (seed, "--seed", 0),
        ):  # fmt: skip
            check_int(value, arg, minimum=least)
        for value, arg in ((census, "--census"), (probe, "--probe")):
            if value > samples:
                raise ValueError(f"{arg} ({value}) must not exceed --samples ({samples})")
        if probe_delta is not None:
            check_positive(probe_delta, "--probe-delta")
        check_choice(sampler, SAMPLERS, "--sampler")
        check_choice(trace, ("hutchinson", "exact"), "--trace")
        kw["sigma"] = _sigma_list(sigma)
        if likelihood_sigma is not None:
            check_positive(likelihood_sigma, "--likelihood-sigma")
        options = _loader_options(option)
        net, own = _load_model(model, device=device, loader={"n": n, "seed": seed, **options})
        for s in kw["sigma"]:
            _in_range(net, s, "--sigma")
        kw["probe_levels"] = analysis.probe_levels(net, probe_levels)
        kw["likelihood_sigma"] = likelihood_sigma or getattr(net, "sigma_min", None) or 0.002
        _in_range(net, kw["likelihood_sigma"], "--likelihood-sigma")
        shape = tuple(net.event_shape)
        train = _points(data, "--data", shape, {"n": n, "seed": seed, **options})
        if train is None and own is not None:
            train = own.x.reshape(len(own), *shape).double()
        held = _points(held_out, "--held-out", shape, {"seed": seed, **options})
        folder = ResultsFolder(path)
        prints = {"model": analysis.fingerprint(net)}
        prints |= {
            k: analysis.fingerprint(v)
            for k, v in (("data", train), ("held_out", held))
            if v is not None
        }
        folder.write_config(
            "analyze", {k: v for k, v in kw.items() if k != "out"}, seed, data=prints
        )
        try:
            analysis.analyze(folder, net, train, held, kw)
        except BaseException as err:
            if not is_interrupt(err):
                folder.end_run("failed")
                raise
            folder.end_run("interrupted")
            typer.echo("interrupted; run the same command again to resume", err=True)
            raise typer.Exit(130) from None
        folder.end_run("finished")
    typer.echo(f"results written to {folder.path}")


def main() -> None:  # pragma: no cover - console entry
    """Entry point of the ``memscape`` console script."""
    app()

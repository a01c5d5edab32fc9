"""The command line: every bad input or unreadable/unwritable file is one ``error:`` line,
exit code 2, and nothing written; an invalid value for every declared option of every
experiment is refused by ``run_experiment`` and by ``memscape run`` before any work.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import memscape as ms
from memscape.cli import _message, app
from memscape.config import option_spec
from memscape.experiments import EXPERIMENTS, run_experiment

runner = CliRunner()
NO_CUDA = not torch.cuda.is_available()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def refused(res, *words):
    """Exit 2 with one ``error:`` line (no traceback) containing ``words``."""
    text = res.output.strip()
    assert res.exit_code == 2, res.output
    assert text.startswith("error:") and "\n" not in text, text
    assert "Traceback" not in text
    for w in words:
        assert w in text, (w, text)


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def model_dir(tmp_path):
    ms.ScoreModel.mlp(2, width=8, layers=1, emb_dim=8, sigma_data=0.5).save(tmp_path / "m")
    return tmp_path / "m"


# ------------------------------------------------------------------ output paths
def test_run_out_an_existing_file_or_under_one(tmp_path):
    (tmp_path / "f").write_text("keep")
    refused(invoke("run", "circle", "--out", tmp_path / "f"), "--out", str(tmp_path / "f"))
    refused(invoke("run", "circle", "--out", tmp_path / "f" / "sub"), "is a file, not a folder")
    assert (tmp_path / "f").read_text() == "keep" and files_under(tmp_path) == ["f"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folders_really_refused(tmp_path, model_dir):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        refused(invoke("run", "circle", "--out", ro / "o"), "not writable")
        refused(invoke("sample", model_dir, "--n", 4, "--steps", 2, "--out", ro / "s.npy"))
        assert files_under(ro) == []
    finally:
        ro.chmod(0o755)


def test_read_only_folders_refused_before_any_work(tmp_path, model_dir, monkeypatch):
    """``sample --out`` in a read-only folder fails before loading or sampling anything."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(ro) else real(p, m))

    def boom(*a, **k):
        raise AssertionError("work started before the output path was checked")

    monkeypatch.setattr(ms, "sample", boom)
    monkeypatch.setattr(ms.ScoreModel, "load", boom)
    refused(invoke("sample", model_dir, "--out", ro / "s.npy"), "not writable", str(ro))
    refused(invoke("run", "circle", "--out", ro / "o"), "not writable")
    refused(invoke("train", "--data", "circle", "--out", ro / "t", "--steps", 2), "not writable")
    assert files_under(ro) == []


def test_sample_out_a_folder_leaves_nothing(tmp_path, model_dir):
    (tmp_path / "x.npy").mkdir()
    refused(invoke("sample", model_dir, "--n", 4, "--out", tmp_path / "x.npy"), "is a folder")
    refused(invoke("sample", model_dir, "--n", 4, "--out", tmp_path / "x.txt"), "must end in .npy")
    assert files_under(tmp_path) == sorted(["m", "m/model.json", "m/model.safetensors", "x.npy"])
    ok = invoke("sample", model_dir, "--n", 4, "--steps", 2, "--out", tmp_path / "new" / "s.npy")
    assert ok.exit_code == 0, ok.output
    assert np.load(tmp_path / "new" / "s.npy").shape == (4, 2)
    assert files_under(tmp_path / "new") == ["s.npy"]  # no temporary file left


def test_an_os_error_is_one_line_naming_the_file(tmp_path, model_dir, monkeypatch):
    import memscape.io

    def full(path, write):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(memscape.io, "atomic_write", full)
    out = tmp_path / "s.npy"
    refused(invoke("sample", model_dir, "--n", 2, "--steps", 2, "--out", out),
            "No space left on device", str(out))  # fmt: skip
    assert _message(PermissionError(13, "Permission denied", "/a/b")) == "Permission denied: /a/b"
    assert _message(ValueError("two\n  lines")) == "two lines"


# ------------------------------------------------------------------ train options
def test_train_precision_and_compile_reach_the_run_and_are_checked_first(tmp_path):
    out = tmp_path / "o"
    refused(invoke("train", "--data", "circle", "--out", out, "--precision", "half"),
            "--precision", "'half'", "float32, bfloat16")  # fmt: skip
    refused(invoke("train", "--data", "circle", "--out", out, "--compile", "maybe"),
            "--compile", "auto, on, off")  # fmt: skip
    assert not out.exists()
    res = invoke("train", "--data", "circle", "--n", 16, "--steps", 20, "--warmup", 2,
                 "--precision", "bfloat16", "--compile", "off", "--no-progress", "--out", out)  # fmt: skip
    assert res.exit_code == 0, res.output
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["precision"] == "bfloat16"


# ------------------------------------------------------------------ devices
@pytest.mark.skipif(not NO_CUDA, reason="a CPU-only machine")
def test_cuda_on_a_cpu_machine_is_refused_before_any_file(tmp_path, model_dir):
    msg = "'cuda' requested but torch.cuda.is_available() is False"
    out = tmp_path / "o"
    refused(invoke("run", "memorization", "--device", "cuda", "--out", out), msg)
    refused(invoke("train", "--data", "circle", "--out", out, "--device", "cuda"), msg)
    refused(invoke("sample", model_dir, "--device", "cuda", "--out", tmp_path / "s.npy"), msg)
    assert not out.exists() and not (tmp_path / "s.npy").exists()


def test_unknown_device_is_refused(tmp_path, model_dir):
    out = tmp_path / "o"
    refused(invoke("sample", model_dir, "--device", "foo"), "'foo' is not a torch device")
    refused(invoke("train", "--data", "circle", "--out", out, "--device", "foo"), "'foo'")
    refused(invoke("run", "memorization", "--device", "foo", "--out", out), "device 'foo'")
    # checked before the data are read: the data path need not exist
    refused(invoke("train", "--data", "no/such.npy", "--out", out, "--net", "resnet"), "--net")
    assert not out.exists() and not (model_dir / "samples.npy").exists()


# ------------------------------------------------------------------ unreadable inputs
def test_corrupt_config_files_name_the_file(tmp_path):
    (tmp_path / "c.yaml").write_text("sizes: [2, 8\nsteps: : :\n")
    (tmp_path / "c.json").write_text("{sizes: [2]}")
    for name in ("c.yaml", "c.json"):
        refused(invoke("run", "circle", "--config", tmp_path / name, "--out", tmp_path / "o"),
                f"cannot read config file '{tmp_path / name}'")  # fmt: skip
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "edit,words",
    [
        (lambda c: [c], ("model.json", "got a list")),
        (lambda c: {k: v for k, v in c.items() if k != "kwargs"}, ("model.json", "'kwargs'")),
        (lambda c: {**c, "dtype": "foo"}, ("model.json", "'dtype'", "foo")),
    ],
)
def test_bad_model_json_names_the_key(tmp_path, model_dir, edit, words):
    path = model_dir / "model.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    refused(invoke("sample", model_dir, "--n", 2), *words)
    assert not (model_dir / "samples.npy").exists()


def test_corrupt_weights_image_and_array_files_name_the_file(tmp_path, model_dir):
    from PIL import Image

    (model_dir / "model.safetensors").write_bytes(b"\x01\x02")
    refused(invoke("sample", model_dir, "--n", 2), "model.safetensors")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(imgs / "a.png")
    (imgs / "b.png").write_bytes((imgs / "a.png").read_bytes()[:30])
    refused(invoke("train", "--data", imgs, "--net", "unet", "--out", tmp_path / "o"),
            "cannot read image", "b.png")  # fmt: skip
    np.save(tmp_path / "d.npy", np.zeros((8, 2), np.float32))
    (tmp_path / "t.npy").write_bytes((tmp_path / "d.npy").read_bytes()[:-20])
    refused(invoke("train", "--data", tmp_path / "t.npy", "--out", tmp_path / "o"), "t.npy")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ every option, invalid
def _num(v: float, tp: str) -> str:
    return str(int(v)) if tp.endswith("int") and float(v).is_integer() else repr(float(v))


def invalid_values(spec: dict) -> list[tuple[str, str]]:
    """``(kind, CLI string)`` values the declared type, range or choices of an option reject."""
    tp, item = spec["type"], spec["type"].removeprefix("list[").removesuffix("]")
    out: list[tuple[str, str]] = []
    if item == "bool":
        out.append(("type", "maybe"))
    if item in ("int", "float"):
        out.append(("type", "abc"))
    if item == "int":
        out.append(("type", "1.5"))
    if item == "float":
        out.append(("nan", "nan"))
    for key, shift in (("ge", -1), ("gt", 0), ("le", 1), ("lt", 0)):
        bound = spec.get(key)
        if bound is not None and math.isfinite(bound):
            out.append((f"{key}-bound", _num(bound + shift, item)))
    if spec.get("choices"):
        out.append(("choice", "not-a-choice"))
    if spec["name"] == "device":
        out.append(("device", "foo"))
    if tp.startswith("list[") and spec.get("nonempty", True):
        out.append(("empty", ""))
    return out


COMMON = [("seed", "-1"), ("workers", "0"), ("executor", "nope")]


def cases():
    for name, exp in sorted(EXPERIMENTS.items()):
        fields = {f.name: f for f in dataclasses.fields(exp.config)}
        for opt, spec in option_spec(exp.config).items():
            spec = {**spec, "name": opt, "nonempty": fields[opt].metadata.get("nonempty", True)}
            for kind, value in invalid_values(spec):
                yield pytest.param(name, opt, value, spec["type"], id=f"{name}-{opt}-{kind}")
        for opt, value in COMMON:
            yield pytest.param(name, opt, value, "common", id=f"{name}-{opt}-common")


def test_cases_cover_every_option_of_every_experiment():
    """Every number, flag, list of numbers, choice and device option gets an invalid value."""
    covered = {(c.values[0], c.values[1]) for c in cases()}
    typed = ("int", "float", "bool", "list[int]", "list[float]")
    for name, exp in EXPERIMENTS.items():
        for opt, spec in option_spec(exp.config).items():
            if spec["type"] in typed or spec["choices"] or opt == "device":
                assert (name, opt) in covered, (name, opt)


@pytest.mark.parametrize("name,opt,value,tp", list(cases()))
def test_every_invalid_option_is_refused_before_any_work(
    name, opt, value, tp, tmp_path, monkeypatch
):
    def no_work(cfg, ctx):
        raise AssertionError(f"{name} started with {opt}={value!r}")

    monkeypatch.setitem(EXPERIMENTS, name, dataclasses.replace(EXPERIMENTS[name], run=no_work))
    monkeypatch.chdir(tmp_path)  # the default results/<name> would land here
    out = tmp_path / "out"
    api_value = int(value) if tp == "common" and value.lstrip("-").isdigit() else value
    with pytest.raises((ValueError, TypeError)) as err:
        run_experiment(name, out, progress=False, **{opt: api_value})
    assert opt in str(err.value), str(err.value)
    if not (tp == "bool" and value == "maybe"):  # flags take no value on the command line
        res = invoke("run", name, f"--{opt.replace('_', '-')}={value}", "--out", out)
        refused(res)
        assert opt in res.output or opt.replace("_", "-") in res.output, res.output
    assert files_under(tmp_path) == []

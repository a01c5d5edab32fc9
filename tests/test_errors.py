"""Every bad input a clear error naming it, raised before any work or file write.

Devices, generators, dtypes and shapes at the public entry points; ``model.json``
checked key by key; corrupt images, arrays and config files named in the error;
numpy scalars accepted wherever Python numbers are.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import memscape as ms
from memscape._validation import (
    as_sigma,
    check_device,
    check_generator,
    check_int,
    check_output_path,
    check_positive,
)
from memscape.config import load_config_file

NO_CUDA = not torch.cuda.is_available()
needs_no_cuda = pytest.mark.skipif(not NO_CUDA, reason="checks the message on a CPU-only machine")


def small_model(tmp_path=None):
    model = ms.ScoreModel.mlp(2, width=8, layers=1, emb_dim=8, sigma_data=0.5, seed=0)
    if tmp_path is not None:
        model.save(tmp_path / "m")
    return model


def spins(k, n, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, (k, n), generator=g) * 2 - 1).double()


# ------------------------------------------------------------------ devices
@needs_no_cuda
def test_cuda_without_cuda_is_named():
    with pytest.raises(ValueError) as err:
        check_device("cuda")
    assert str(err.value) == "device 'cuda' requested but torch.cuda.is_available() is False"
    with pytest.raises(ValueError, match=r"--device 'cuda:1' requested"):
        check_device(torch.device("cuda:1"), "--device")


def test_device_names_and_types():
    assert check_device("cpu") == torch.device("cpu")
    assert check_device(torch.device("meta")).type == "meta"
    with pytest.raises(ValueError, match="device 'foo' is not a torch device"):
        check_device("foo")
    with pytest.raises(TypeError, match="device must be a device name"):
        check_device(1.5)
    with pytest.raises(TypeError, match="device must be"):
        check_device(None)


@needs_no_cuda
@pytest.mark.parametrize("device", ["cuda", "foo"])
def test_every_entry_point_checks_the_device(tmp_path, device):
    model = small_model()
    word = "requested" if device == "cuda" else "is not a torch device"
    with pytest.raises(ValueError, match=f"device '{device}' {word}"):
        ms.sample(model, 4, steps=2, device=device)
    with pytest.raises(ValueError, match=f"device '{device}' {word}"):
        ms.critical_points(ms.EmpiricalDiffusion(torch.randn(4, 2)), 0.5, device=device)
    with pytest.raises(ValueError, match=f"device '{device}' {word}"):
        model.to(device)
    with pytest.raises(ValueError, match=f"device '{device}' {word}"):
        model.to(device=device, dtype=torch.float64)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=f"device '{device}' {word}"):
        ms.train(model, torch.randn(16, 2), steps=2, out=out, device=device, progress=False)
    assert not out.exists()
    assert next(model.parameters()).dtype == torch.float32  # nothing moved or cast
    assert model.to(torch.float64) is model  # dtype-only and cpu moves still work
    assert model.to("cpu") is model


# ------------------------------------------------------------------ generators
def test_generator_seed_or_generator_else_type_error():
    g = check_generator(7)
    assert isinstance(g, torch.Generator)
    assert torch.equal(
        torch.rand(3, generator=g), torch.rand(3, generator=torch.Generator().manual_seed(7))
    )
    assert check_generator(None) is None
    for bad in ("7", 1.5, True, np.random.default_rng(0)):
        with pytest.raises(TypeError, match=r"generator must be a torch.Generator or an int seed"):
            check_generator(bad)
    with pytest.raises(ValueError, match="generator"):
        check_generator(-1)


def test_entry_points_name_a_wrong_generator():
    model = small_model()
    emp = ms.EmpiricalDiffusion(torch.randn(4, 2, dtype=torch.float64))
    p = spins(3, 16, 0)
    calls = {
        "sample": lambda g: ms.sample(model, 4, steps=2, generator=g),
        "sample_heun": lambda g: ms.diffusion.samplers.sample_heun(
            model, torch.randn(2, 2), [1.0, 0.5, 0.0], s_churn=1.0, generator=g
        ),
        "sample_euler_maruyama": lambda g: ms.diffusion.samplers.sample_euler_maruyama(
            model, torch.randn(2, 2), [1.0, 0.5, 0.0], generator=g
        ),
        "critical_points": lambda g: ms.critical_points(emp, 0.5, n_starts=4, generator=g),
        "DenseAM.retrieve": lambda g: ms.DenseAM(p).retrieve(p, generator=g),
        "ClassicalHopfield.retrieve": lambda g: ms.ClassicalHopfield(p).retrieve(p, generator=g),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match=r"generator must be a torch.Generator") as err:
            call("seed")
        assert "randperm" not in str(err.value), name
        call(3)  # an int seed is accepted everywhere


def test_an_int_seed_draws_what_its_generator_draws():
    model = small_model()
    a = ms.sample(model, 5, steps=3, sampler="euler_maruyama", generator=11)
    b = ms.sample(
        model, 5, steps=3, sampler="euler_maruyama", generator=torch.Generator().manual_seed(11)
    )
    assert torch.equal(a, b)


# ------------------------------------------------------------------ critical_points inputs
def test_critical_points_rejects_integer_dtype_and_wrong_width_starts():
    emp = ms.EmpiricalDiffusion(torch.randn(4, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="dtype must be a floating-point dtype"):
        ms.critical_points(emp, 0.5, dtype=torch.int64)
    with pytest.raises(TypeError, match=r"dtype must be a torch.dtype"):
        ms.critical_points(emp, 0.5, dtype="float64")
    with pytest.raises(ValueError, match=r"starts must have shape \(B, \*event_shape\) = \(B, 2\)"):
        ms.critical_points(emp, 0.5, starts=torch.randn(5, 3, dtype=torch.float64))
    res = ms.critical_points(emp, 0.5, starts=torch.randn(6, 2), generator=0)
    assert res.table.shape[0] >= 1


def test_sample_rejects_an_integer_dtype():
    with pytest.raises(ValueError, match="dtype must be a floating-point dtype"):
        ms.sample(small_model(), 4, steps=2, dtype=torch.int64)


# ------------------------------------------------------------------ output paths
def test_output_paths_checked_without_creating_anything(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "d.npy").mkdir()
    with pytest.raises(ValueError, match=r"must be a folder, but .* is a file"):
        check_output_path(tmp_path / "f", "out", folder=True)
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_output_path(tmp_path / "f" / "a" / "b", "out", folder=True)
    with pytest.raises(ValueError, match=r"must be a file, but .* is a folder"):
        check_output_path(tmp_path / "d.npy", "out")
    assert check_output_path(tmp_path / "new" / "deeper", "out", folder=True).name == "deeper"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npy", "f"]


def test_read_only_folder_refused(tmp_path, monkeypatch):
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(ro) else real(p, mode))
    with pytest.raises(ValueError, match="not writable"):
        check_output_path(ro / "out", "out", folder=True)
    with pytest.raises(ValueError, match="permission denied"):
        check_output_path(ro, "out", folder=True)


# ------------------------------------------------------------------ model.json
def _edit_model_json(tmp_path, edit):
    small_model(tmp_path)
    path = tmp_path / "m" / "model.json"
    cfg = json.loads(path.read_text())
    path.write_text(json.dumps(edit(cfg)))
    return tmp_path / "m"


def _without(cfg, key):
    cfg.pop(key)
    return cfg


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: [c], "must hold a JSON object, got a list"),
        (lambda c: _without(c, "kwargs"), "key 'kwargs'"),
        (lambda c: {**c, "dtype": "foo"}, "key 'dtype' must be one of"),
        (lambda c: _without(c, "energy"), "missing key 'energy'"),
        (lambda c: {**c, "energy": "yes"}, "key 'energy' must be true or false"),
        (lambda c: {**c, "network": "resnet"}, "key 'network' must be one of"),
        (lambda c: {**c, "event_shape": [3]}, "key 'event_shape' .* does not match"),
        (lambda c: {**c, "event_shape": "2"}, "key 'event_shape' must be a list"),
        (lambda c: {**c, "sigma_data": -1}, "key 'sigma_data' must be null or a positive"),
        (lambda c: {**c, "kwargs": {**c["kwargs"], "depth": 3}}, "unknown key 'kwargs.depth'"),
        (lambda c: {**c, "kwargs": _without(dict(c["kwargs"]), "dim")}, "missing key 'kwargs.dim'"),
        (lambda c: {**c, "kwargs": {**c["kwargs"], "width": "8"}}, "width must be an integer"),
        (lambda c: {**c, "precond": {"name": "edm", "p_meen": 1}}, "p_meen"),
        (lambda c: {**c, "network": "custom"}, "custom network: pass network="),
    ],
)
def test_load_names_the_bad_key_of_model_json(tmp_path, edit, message):
    folder = _edit_model_json(tmp_path, edit)
    with pytest.raises(ValueError, match=message) as err:
        ms.ScoreModel.load(folder)
    assert "model.json" in str(err.value) and str(folder) in str(err.value)


def test_load_refuses_nan_weights_and_corrupt_files(tmp_path):
    from memscape.io import save_tensors

    model = small_model(tmp_path)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first = next(iter(state))
    state[first][...] = float("nan")
    save_tensors(tmp_path / "m" / "model.safetensors", state)
    with pytest.raises(ValueError, match=f"hold NaN or inf \\({first}"):
        ms.ScoreModel.load(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00" * 7)
    with pytest.raises(ValueError, match=r"cannot read safetensors file .*model.safetensors"):
        ms.ScoreModel.load(tmp_path / "m")
    (tmp_path / "m" / "model.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"corrupt JSON in .*model.json"):
        ms.ScoreModel.load(tmp_path / "m")


# ------------------------------------------------------------------ data files
def _png(path, seed=0):
    from PIL import Image

    arr = np.random.default_rng(seed).integers(0, 255, (16, 16), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def test_corrupt_and_truncated_images_name_the_file(tmp_path):
    _png(tmp_path / "a.png")
    whole = (tmp_path / "a.png").read_bytes()
    (tmp_path / "b.png").write_bytes(whole[: len(whole) // 2])  # truncated pixel data
    with pytest.raises(ValueError, match=r"cannot read image .*b\.png"):
        ms.datasets.load(tmp_path)
    (tmp_path / "b.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=r"cannot read image .*b\.png"):
        ms.datasets.load(tmp_path)
    (tmp_path / "b.png").unlink()
    assert ms.datasets.load(tmp_path).x.shape == (1, 1, 16, 16)


def test_corrupt_and_truncated_arrays_name_the_file(tmp_path):
    arr = np.arange(64, dtype=np.float32).reshape(16, 4)
    np.save(tmp_path / "ok.npy", arr)
    whole = (tmp_path / "ok.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(whole[: len(whole) - 40])
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    np.savez(tmp_path / "arch.npz", x=arr)
    (tmp_path / "arch.npy").write_bytes((tmp_path / "arch.npz").read_bytes())
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 broken zip")
    for name, message in [
        ("cut.npy", r"cannot read \.npy array .*cut\.npy"),
        ("junk.npy", r"cannot read \.npy array .*junk\.npy"),
        ("arch.npy", r"arch\.npy: it is a \.npz archive"),
        ("bad.npz", r"cannot read \.npz archive .*bad\.npz"),
    ]:
        with pytest.raises(ValueError, match=message):
            ms.datasets.load(tmp_path / name)
    torch.testing.assert_close(ms.datasets.load(tmp_path / "ok.npy").x, torch.from_numpy(arr))


def test_corrupt_config_files_name_the_file(tmp_path):
    (tmp_path / "c.yaml").write_text("sizes: [2, 8\nsteps: : :\n")
    (tmp_path / "c.json").write_text("{sizes: [2]}")
    (tmp_path / "b.json").write_bytes(b"\xff\xfe\x00garbage")
    for name in ("c.yaml", "c.json", "b.json"):
        with pytest.raises(ValueError, match=f"cannot read config file .*{name}"):
            load_config_file(tmp_path / name)


# ------------------------------------------------------------------ numpy scalars
@pytest.mark.parametrize("value", [np.float32(0.3), np.float64(0.3), np.int64(2), np.int32(1)])
def test_numpy_scalars_are_numbers(value):
    check_positive(value, "sigma")
    x = torch.zeros(3, 2, dtype=torch.float64)
    assert torch.equal(as_sigma(value, x), torch.full((3,), float(value), dtype=torch.float64))


def test_numpy_integers_are_integers_and_floats_are_not():
    for v in (np.int8(3), np.int32(3), np.int64(3), np.uint16(3)):
        assert check_int(v, "n") == 3 and type(check_int(v, "n")) is int
    with pytest.raises(TypeError, match="n must be an integer"):
        check_int(np.float64(3.0), "n")
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        check_positive(np.float32("nan"), "sigma")
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        check_positive(np.float32(-0.5), "sigma")


def test_public_functions_take_numpy_scalars():
    data = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    emp = ms.EmpiricalDiffusion(data)
    x = torch.randn(4, 2, dtype=torch.float64)
    torch.testing.assert_close(emp.denoise(x, np.float32(0.5)), emp.denoise(x, 0.5))
    a = ms.sample(emp, np.int64(3), steps=np.int64(4), sigma_max=np.float32(2.0), generator=0)
    b = ms.sample(emp, 3, steps=4, sigma_max=2.0, generator=0)
    torch.testing.assert_close(a, b)
    p = spins(3, 16, 1)
    assert ms.DenseAM(p, n=np.int64(3)).n == 3
    mh = ms.ModernHopfield(data, beta=np.float32(2.0))
    torch.testing.assert_close(mh.energy(x), ms.ModernHopfield(data, beta=2.0).energy(x))

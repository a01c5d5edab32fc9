"""benchmarks/suite.py: one table of every benchmark against its baseline, under the machine line.

The table assembly is checked with fake benchmark modules injected in ``sys.modules``
(rows with hand-computed ratios, a module that raises, one without ``suite``, one that
returns a malformed row); one real benchmark (``neighbors --quick``, ~1 s) runs end to end.
"""

import csv
import importlib.util
import inspect
import math
import sys
import types
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str, file: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


suite = _load("memscape_benchmark_suite", "suite.py")  # puts benchmarks/ on sys.path
common = sys.modules["_common"]


def _fake(calls: list, rows=None, error: Exception | None = None, has_suite: bool = True):
    module = types.ModuleType("fake")

    def fake_suite(device: str, quick: bool):
        calls.append((device, quick))
        if error is not None:
            raise error
        return rows

    if has_suite:
        module.suite = fake_suite  # type: ignore[attr-defined]
    return module


@pytest.fixture
def fakes(monkeypatch):
    """Four fake benchmarks: ``good`` (2 rows), ``broken`` (raises), ``bare``, ``malformed``."""
    calls: list = []
    good_rows = [
        common.row("good", "rate", 10.0, "steps/s", baseline="plain loop", baseline_value=4.0),
        common.row("good", "time", 2.0, "ms", baseline="naive", baseline_value=6.0,
                   higher_is_better=False, note="a | pipe"),
    ]  # fmt: skip
    modules = {
        "good": _fake(calls, good_rows),
        "broken": _fake(calls, error=RuntimeError("boom at K=7")),
        "bare": _fake(calls, has_suite=False),
        "malformed": _fake(calls, [{"benchmark": "malformed", "case": "x"}]),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, f"bench_fake_{name}", module)
    monkeypatch.setattr(suite, "BENCHMARKS", {n: f"bench_fake_{n}" for n in modules})
    return calls


def _read(path: Path) -> tuple[str, list[dict[str, str]], list[str]]:
    lines = path.read_text().splitlines()
    reader = csv.DictReader(lines[1:])
    return lines[0], list(reader), list(reader.fieldnames or [])


def test_row_ratio_against_hand_computed_values():
    row = common.row
    assert row("b", "c", 10.0, "steps/s", baseline="x", baseline_value=4.0)["ratio"] == 2.5
    assert row("b", "c", 2.0, "ms", baseline="x", baseline_value=6.0,
               higher_is_better=False)["ratio"] == pytest.approx(3.0)  # fmt: skip
    assert row("b", "c", 8.0, "ms", baseline="x", baseline_value=2.0,
               higher_is_better=False)["ratio"] == 0.25  # fmt: skip
    for bad in (math.nan, math.inf, 0.0, -1.0):  # no baseline figure: no ratio
        assert math.isnan(row("b", "c", 1.0, "s", baseline_value=bad)["ratio"])
    assert math.isnan(row("b", "c", 0.0, "s", baseline_value=1.0)["ratio"])
    assert tuple(row("b", "c", 1.0, "s")) == common.COLUMNS


def test_table_with_failures(fakes, tmp_path, capsys):
    out = tmp_path / "deep" / "table.csv"
    rc = suite.main(["--quick", "--out", str(out)])
    assert rc == 1  # three of the four failed
    assert fakes == [("cpu", True)] * 3  # the bare one has nothing to call; one at a time
    head, rows, fields = _read(out)
    assert head.startswith("# machine: ") and "device cpu" in head and "torch " in head
    assert tuple(fields) == common.COLUMNS
    assert [r["benchmark"] for r in rows] == ["good", "good", "broken", "bare", "malformed"]
    assert float(rows[0]["ratio"]) == 2.5 and float(rows[1]["ratio"]) == pytest.approx(3.0)
    assert rows[1]["note"] == "a | pipe"
    assert "FAILED: RuntimeError: boom at K=7 (at test_benchmark_suite.py:" in rows[2]["note"]
    assert "has no suite" in rows[3]["note"]
    assert "without" in rows[4]["note"] and "memscape" in rows[4]["note"]
    assert all(math.isnan(float(r["memscape"])) for r in rows[2:])
    printed = capsys.readouterr().out
    md = out.with_suffix(".md").read_text()
    assert md in printed and md.splitlines()[0] == head[2:]
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert table[0] == "| " + " | ".join(common.COLUMNS) + " |"
    assert len(table) == 2 + len(rows)  # header, rule, one line per row
    assert "a \\| pipe" in table[3]  # a "|" in a cell does not split it
    assert "FAILED: broken, bare, malformed" in md


def test_all_good_exits_zero_and_only_selects(fakes, capsys):
    assert suite.main(["--only", "good", "good"]) == 0  # a name given twice runs once
    assert fakes == [("cpu", False)]
    assert "| good | rate | 10 | plain loop | 4 | steps/s | 2.50 |" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--only", "good", "nosuch"],
            "--only: unknown benchmark(s) 'nosuch'; expected some of good",
        ),
        (["--device", "gpu"], "--device must be cpu, cuda or cuda:N, got 'gpu'"),
        (["--device", "cuda:99"], "--device"),
        (["--out", "table.txt"], "--out must name a .csv file"),
    ],
)
def test_bad_arguments_fail_before_any_work(fakes, argv, message, capsys, tmp_path):
    if argv[0] == "--out":
        argv = ["--out", str(tmp_path / argv[1])]
    with pytest.raises(SystemExit) as exc:
        suite.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert fakes == []  # nothing ran
    assert not any(tmp_path.iterdir())  # nothing written


def test_out_into_a_file_is_refused(fakes, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit):
        suite.main(["--out", str(tmp_path / "file" / "t.csv")])
    assert "--out" in capsys.readouterr().err and fakes == []


def test_every_listed_module_exists():
    assert set(suite.BENCHMARKS.values()) <= {p.stem for p in BENCH.glob("bench_*.py")}


@pytest.mark.parametrize("name", ["bench_denoiser", "bench_neighbors", "bench_sampler"])
def test_benchmarks_expose_suite(name):
    module = _load(name, f"{name}.py")
    assert list(inspect.signature(module.suite).parameters) == ["device", "quick"]


def test_real_neighbors_quick(tmp_path):
    """End to end: two exact k-NN searches agree (independent truth), the ratio is theirs."""
    threads = torch.get_num_threads()
    out = tmp_path / "nn.csv"
    assert suite.main(["--quick", "--only", "neighbors", "--out", str(out)]) == 0
    assert torch.get_num_threads() == threads
    _, rows, _ = _read(out)
    brute = [r for r in rows if r["baseline"] == "torch.cdist + topk brute force"]
    assert len(brute) == 1 and len(rows) in (1, 2)  # + faiss when installed
    r = brute[0]
    assert float(r["ratio"]) == pytest.approx(float(r["baseline_value"]) / float(r["memscape"]))
    assert r["unit"] == "s" and "nearest agree 1.0000" in r["note"]

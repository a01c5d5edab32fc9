"""Every benchmark against its named baseline, in one run, as one table under the machine line.

    python benchmarks/suite.py --quick                      # CPU, the CI-sized cases (minutes)
    python benchmarks/suite.py --device cuda --out gpu.csv  # also writes gpu.md beside it
    python benchmarks/suite.py --only denoiser neighbors

Each benchmark module ``bench_NAME.py`` exposes ``suite(device, quick)``, returning rows
of :func:`_common.row` (memscape's figure, the baseline measured in the same process, the
ratio, > 1 when memscape is better). The suite imports the modules and calls them one
at a time (never two at once: concurrent benchmarks would time each other), then prints
:func:`_common.machine` and the table in Markdown; ``--out FILE.csv`` also writes the
table as CSV (the machine line first, as a ``#`` comment: ``pandas.read_csv(FILE,
comment="#")``) and as Markdown beside it (``FILE.md``). A benchmark that raises, or whose
module has no ``suite``, becomes a row with the error in ``note``, and the suite exits 1
after the table.

The benchmarks and their baselines (see benchmarks/README.md):

* ``denoiser``: the exact denoiser against a naive softmax and against its roofline
  (its two matrix multiplies and its exponentials alone); on CUDA also the SDPA path
  against the streamed kernel and the throughput on K = 5·10⁴ CIFAR-sized points;
* ``neighbors``: exact k-NN against faiss ``IndexFlatL2`` (when installed) and a
  ``torch.cdist`` brute force;
* ``sampler``: the Euler and Heun samplers against the raw network calls and against
  diffusers' ``EDMEulerScheduler`` loop;
* ``census``: the critical-point census (its module names its baseline);
* ``training``: ``memscape.train`` against a plain eager PyTorch loop.

Left out: ``bench_saddles.py`` (no other implementation of certified saddles and merge
trees to run as a baseline) and ``bench_busy.py`` (its reference is a fair-share bound,
not a baseline, and it takes two full runs of an experiment); run them on their own.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import math
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:  # imported from elsewhere (tests)
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import COLUMNS, machine, row

from memscape._validation import check_device, check_output_path
from memscape.io import atomic_write

BENCHMARKS = {
    "denoiser": "bench_denoiser",
    "neighbors": "bench_neighbors",
    "sampler": "bench_sampler",
    "census": "bench_census",
    "training": "bench_training",
}
DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, checked before any benchmark runs (``SystemExit(2)`` with the reason)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--quick", action="store_true", help="the CI-sized cases")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help=f"some of {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--out", help="also write the table to this .csv (and .md beside it)")
    args = parser.parse_args(argv)
    if not DEVICE.fullmatch(args.device):
        parser.error(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")
    try:
        check_device(args.device, "--device")
        if args.out is not None:
            if Path(args.out).suffix != ".csv":
                raise ValueError(f"--out must name a .csv file, got {args.out!r}")
            check_output_path(args.out, "--out")
            check_output_path(Path(args.out).with_suffix(".md"), "--out (its .md)")
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    unknown = [name for name in args.only or () if name not in BENCHMARKS]
    if unknown:
        parser.error(
            f"--only: unknown benchmark(s) {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(BENCHMARKS)}"
        )
    args.only = list(dict.fromkeys(args.only or BENCHMARKS))  # in order, once each
    return args


def failed(name: str, error: str) -> dict[str, Any]:
    """The row of a benchmark that did not run."""
    return row(name, "(not run)", math.nan, "", note=f"FAILED: {error}")


def run_one(name: str, device: str, quick: bool) -> tuple[list[dict[str, Any]], bool]:
    """The rows of one benchmark and whether it ran; any failure becomes a row."""
    try:
        module = importlib.import_module(BENCHMARKS[name])
        fn = getattr(module, "suite", None)
        if not callable(fn):
            return [failed(name, f"{BENCHMARKS[name]}.py has no suite(device, quick)")], False
        rows = fn(device, quick)
        if not isinstance(rows, list) or not rows:
            raise TypeError(f"suite() returned {type(rows).__name__}, expected a list of rows")
        for r in rows:
            missing = [c for c in COLUMNS if not isinstance(r, dict) or c not in r]
            if missing:
                raise TypeError(f"suite() returned a row without {', '.join(missing)}")
        return [{c: r[c] for c in COLUMNS} for r in rows], True
    except Exception as err:  # a failing benchmark is a row, never the end of the suite
        frame = traceback.extract_tb(err.__traceback__)[-1]
        where = f" (at {Path(frame.filename).name}:{frame.lineno})"
        return [failed(name, f"{type(err).__name__}: {err}{where}")], False


def _cell(value: Any, column: str) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.2f}" if column == "ratio" else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown(head: str, rows: list[dict[str, Any]], foot: str) -> str:
    """The machine line, the table in Markdown, the line after it."""
    lines = [head, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r[c], c) for c in COLUMNS) + " |" for r in rows]
    return "\n".join([*lines, "", foot]) + "\n"


def write_csv(path: Path, head: str, rows: list[dict[str, Any]]) -> None:
    """The machine line as a ``#`` comment, then the header and the rows."""
    with open(path, "w", newline="") as f:
        f.write(f"# {head}\n")
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks in turn; print (and write) the table; 1 when any failed."""
    args = parse_args(argv)
    head = machine(args.device)
    rows: list[dict[str, Any]] = []
    failures, start = [], time.perf_counter()
    for name in args.only:
        t0 = time.perf_counter()
        print(f"[suite] {name} …", file=sys.stderr, flush=True)
        got, ok = run_one(name, args.device, args.quick)
        rows += got
        failures += [] if ok else [name]
        print(f"[suite] {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    foot = (
        f"{'quick; ' if args.quick else ''}{time.perf_counter() - start:.0f} s in all; "
        f"{machine(args.device).split(' | ')[-1]} after"
        + (f"; FAILED: {', '.join(failures)}" if failures else "")
    )
    text = markdown(head, rows, foot)
    print(text, end="")
    if args.out is not None:
        out = Path(args.out)
        atomic_write(out, lambda tmp: write_csv(tmp, head, rows))
        atomic_write(out.with_suffix(".md"), lambda tmp: tmp.write_text(text))
        print(f"wrote {out} and {out.with_suffix('.md')}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

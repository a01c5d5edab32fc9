"""explorer.html (and report.html) in a real browser: headless Chromium over the DevTools protocol.

The page is loaded from ``file://`` with ``#selftest``: its own script moves the slider
(an ``input`` event) to the last value of each family and writes what changed into
``<pre id="selftest">``. The test fails on any console error or warning, uncaught
exception or browser log error, on any request that is not a ``file:`` or ``data:`` URL
(the page must work offline), and on a blank screenshot. Chromium is driven through
``--remote-debugging-pipe`` (JSON messages separated by NUL bytes on file descriptors
3 and 4), so no package beyond the standard library is needed.

Skipped only when no Chromium binary is found (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memscape.runs.explorer import write_explorer
from memscape.runs.results import ResultsFolder
from tests.test_explorer import _pair, tiny_explorer

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no chromium binary on PATH (Debian: apt-get install -y chromium)"
)


class Chromium:
    """A headless Chromium driven over ``--remote-debugging-pipe``; one page."""

    def __init__(self, profile: Path, size: tuple[int, int] = (1400, 1000)) -> None:
        self._in_r, self._in_w = os.pipe()  # we write, chromium reads (its fd 3)
        self._out_r, self._out_w = os.pipe()  # chromium writes (its fd 4), we read

        def fds() -> None:
            os.dup2(self._in_r, 3)
            os.dup2(self._out_w, 4)

        args = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--disable-background-networking",
                "--remote-debugging-pipe", f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}", "about:blank"]  # fmt: skip
        self.proc = subprocess.Popen(args, pass_fds=(3, 4), preexec_fn=fds,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        os.close(self._in_r)
        os.close(self._out_w)
        self._buf, self._id, self.events = b"", 0, []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.call(f"{domain}.enable", session=True)

    def _read(self, timeout: float) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._out_r], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                raise TimeoutError("no message from chromium")
            chunk = os.read(self._out_r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, params: dict | None = None, *, session: bool = False,
             timeout: float = 30.0) -> dict[str, Any]:  # fmt: skip
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._in_w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True}, session=True)  # fmt: skip
        return res["result"].get("value")

    def open(self, url: str, timeout: float = 30.0) -> None:
        self.call("Page.navigate", {"url": url}, session=True)
        end = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._read(max(0.1, end - time.monotonic())))

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"{expression} stayed falsy for {timeout} s")

    def screenshot(self) -> np.ndarray:
        from PIL import Image

        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))

    def problems(self) -> list[str]:
        """Console errors and warnings, exceptions, log errors, requests off the disk."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                out.append(f"console.{p['type']}: {[a.get('value') for a in p.get('args', [])]}")
            elif m == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append(f"exception: {d.get('exception', {}).get('description', d['text'])}")
            elif m == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                out.append(f"log {p['entry']['level']}: {p['entry']['text']}")
            elif m == "Network.requestWillBeSent":
                url = p["request"]["url"]
                if not url.startswith(("file:", "data:", "about:")):
                    out.append(f"network request: {url}")
        return out

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self._in_w)
        os.close(self._out_r)


@pytest.fixture
def browser(tmp_path):
    b = Chromium(tmp_path / "profile")
    yield b
    b.close()


def _distinct_colours(img: np.ndarray) -> int:
    return len(np.unique(img.reshape(-1, 3), axis=0))


def test_explorer_self_test_in_headless_chromium(tmp_path, browser):
    data = tiny_explorer()
    second = json.loads(json.dumps(data["families"][0]))
    second["name"] = "second"
    data["families"].append(second)  # a page with two families: the selector, both tested
    page = write_explorer(tmp_path / "run", data)
    moved = tmp_path / "elsewhere" / "explorer.html"  # the page must not need its folder
    moved.parent.mkdir()
    shutil.move(page, moved)
    shutil.rmtree(tmp_path / "run")
    browser.open(moved.as_uri() + "#selftest")
    result = browser.wait_for("document.getElementById('selftest').dataset.result")
    report = json.loads(browser.evaluate("document.getElementById('selftest').textContent"))
    assert result == "pass", report
    assert [f["family"] for f in report["families"]] == ["two points", "second"]
    for fam in report["families"]:
        assert fam["z_changed"] and fam["z_is_last_frame"] and fam["cursor_moved"], fam
        assert fam["kind"] == "diagram" and fam["click_moves_slider"], fam  # diagram → slider
        assert fam["basins_drawn"] and fam["basins_hidden_again"], fam  # "colour: basins"
        # σ = 1.9 → 0.55 crosses the pitchfork: 1 critical point + 2 patterns, then 3 + 2
        assert (fam["markers_before"], fam["markers_after"]) == (3, 5), fam
    assert browser.evaluate("document.getElementById('slider-label').textContent") == "σ = 1.900"
    assert browser.problems() == []
    img = browser.screenshot()
    assert img.shape[0] > 500 and _distinct_colours(img) > 50  # not blank
    rect = browser.evaluate(
        "(() => { const r = document.getElementById('landscape').getBoundingClientRect();"
        " return [r.left, r.top, r.right, r.bottom].map(Math.round); })()"
    )
    x0, y0, x1, y1 = rect
    assert x1 - x0 > 300 and y1 - y0 > 300
    assert _distinct_colours(img[y0:y1, x0:x1]) > 30  # the landscape itself is drawn


def test_symmetry_breaking_pair_in_headless_chromium(tmp_path, browser):
    """Symmetry-breaking's families (±1 under VP along t): the slider crosses the pitchfork."""
    from memscape.landscape.explorer import explorer_data

    fams = [json.loads(_pair(kind)) for kind in ("density", "drift")]
    page = write_explorer(tmp_path, explorer_data("pair", fams, experiment="symmetry-breaking"))
    browser.open(page.as_uri() + "#selftest")
    result = browser.wait_for("document.getElementById('selftest').dataset.result")
    report = json.loads(browser.evaluate("document.getElementById('selftest').textContent"))
    assert result == "pass", report
    for fam in report["families"]:
        assert fam["z_changed"] and fam["cursor_moved"], fam
        assert (fam["markers_before"], fam["markers_after"]) == (3, 5), fam  # 1 → 3 points, + 2
    assert browser.problems() == []


def test_self_test_fails_when_nothing_changes(tmp_path, browser):
    """The page-side check can fail: frames with identical data do not pass."""
    data = tiny_explorer()
    fam = data["families"][0]
    fam["frames"] = [fam["frames"][0], json.loads(json.dumps(fam["frames"][0]))]
    page = write_explorer(tmp_path, data)
    browser.open(page.as_uri() + "#selftest")
    assert browser.wait_for("document.getElementById('selftest').dataset.result") == "fail"


def test_report_opens_whole_after_being_moved(tmp_path, browser):
    folder = ResultsFolder(tmp_path / "run")
    folder.write_config("demo", {"a": 1}, seed=0)
    folder.add_check("max |gap|", 1.0, 1.0, 0.1)
    with folder.figure("curve") as (_, ax):
        ax.plot([0, 1, 2], [0, 1, 4], lw=4)
    page = folder.write_report("demo")
    moved = tmp_path / "mail" / "report.html"
    moved.parent.mkdir()
    shutil.move(page, moved)
    shutil.rmtree(tmp_path / "run")
    browser.open(moved.as_uri())
    sizes = browser.wait_for(
        "Array.from(document.images).every(i => i.complete) && "
        "Array.from(document.images).map(i => [i.naturalWidth, i.naturalHeight])"
    )
    assert sizes == [[720, 540]]  # the 6 × 4.5 in figure at 120 dpi, decoded from the page
    assert browser.problems() == []

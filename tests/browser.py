"""A headless Chromium driven over the DevTools protocol (``--remote-debugging-pipe``), for tests
and benchmarks that must look at a page as a browser renders it: evaluate JavaScript in the page
(image ``naturalWidth``, clicks, timings) and collect its console messages and exceptions.

Needs Debian's ``chromium`` (``make test`` installs it); :func:`chromium` skips the test without it.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--remote-debugging-pipe",
]  # fmt: skip


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "/usr/bin/chromium"):
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    pass


class Chromium:
    """One headless browser; ``with Chromium(profile_dir) as b: page = b.open(url)``."""

    def __init__(self, profile: Path, *, width: int = 1400, height: int = 1000):
        exe = chromium()
        if exe is None:
            raise BrowserError("chromium is not installed")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # the protocol's pipe is the child's fds 3 (commands in) and 4 (replies out)
        hi_r, hi_w = os.dup2(to_child_r, 63), os.dup2(from_child_w, 64)

        def fds() -> None:
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "about:blank"],
            preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for fd in (to_child_r, from_child_w, hi_r, hi_w):
            os.close(fd)
        self._buf = b""
        self._id = 0
        self.console: list[str] = []
        self.width, self.height = width, height

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass

    def _read(self, timeout: float) -> dict:
        end = time.monotonic() + timeout
        while b"\0" not in self._buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise BrowserError("chromium did not answer in time")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise BrowserError("chromium closed the protocol pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def _event(self, msg: dict) -> None:
        method, params = msg.get("method"), msg.get("params") or {}
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.console.append(f"{params.get('type')}: {text}")
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails") or {}
            self.console.append(
                f"exception: {d.get('text')} {d.get('exception', {}).get('description', '')}"
            )
        elif method == "Log.entryAdded":
            e = params.get("entry") or {}
            self.console.append(f"{e.get('level')}: {e.get('text')} {e.get('url', '')}")

    def send(self, method: str, params: dict | None = None, *, session: str | None = None,
             timeout: float = 60.0) -> dict:  # fmt: skip
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result") or {}
            self._event(reply)

    def open(self, url: str, *, ready: str = "document.body && document.body.dataset.ready === '1'",
             timeout: float = 60.0) -> str:  # fmt: skip
        """Open ``url`` in a new tab; wait until ``ready`` is true in it. Returns its session."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                  "deviceScaleFactor": 1, "mobile": False}, session=session)  # fmt: skip
        self.send("Page.navigate", {"url": url}, session=session, timeout=timeout)
        end = time.monotonic() + timeout
        while not self.eval(session, f"Boolean({ready})"):
            if time.monotonic() > end:
                raise BrowserError(f"{url}: not ready after {timeout} s")
            time.sleep(0.05)
        return session

    def eval(self, session: str, expression: str, *, timeout: float = 120.0):
        """The value of a JavaScript expression in the page (promises are awaited)."""
        out = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session=session,
            timeout=timeout,
        )
        if "exceptionDetails" in out:
            d = out["exceptionDetails"]
            raise BrowserError(f"{d.get('text')}: {d.get('exception', {}).get('description', '')}")
        return out.get("result", {}).get("value")

    def key(self, session: str, key: str) -> None:
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": key},
                      session=session)  # fmt: skip


#: Decodes every image of a cytophen report in the page: those its data names (every plot of every
#: sample, not only the page of them shown) and those in the document, and reports their sizes.
EVERY_IMAGE = """
(async () => {
  const D = JSON.parse(document.getElementById('cytophen-data').textContent);
  const srcs = [];
  D.samples.forEach(s => Object.values(s.plots).forEach(p => srcs.push(p.src)));
  document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; if (i.getAttribute('src')) srcs.push(i.getAttribute('src')); });
  const sizes = await Promise.all(srcs.map(src => new Promise(resolve => {
    const i = new Image();
    i.onload = () => resolve([i.naturalWidth, i.naturalHeight]);
    i.onerror = () => resolve([0, 0]);
    i.src = src;
  })));
  return {n: srcs.length, plots: srcs.length - document.querySelectorAll('img').length,
          widths: sizes.map(s => s[0]), heights: sizes.map(s => s[1]),
          linked: srcs.filter(s => !s.startsWith('data:')).length};
})()
"""

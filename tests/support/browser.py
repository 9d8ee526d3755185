"""Open a local HTML file in headless Chromium and report what a person would see.

Speaks the Chrome DevTools Protocol over a websocket (`websocket-client`): collects uncaught
exceptions, console errors, error log entries and every request a self-contained page should
not make, reads the visible text and can save a PNG screenshot at 1280x900. Debian's
`/usr/bin/chromium` is installed by `scripts/install-chromium.sh`; `FAIRPILOT_CHROMIUM` names
another binary.

The flags keep Chromium off the network: on a machine without one, its background services
(component updates, safe browsing, sync, QUIC) would otherwise retry refused connections.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

DEFAULT_CHROMIUM = "/usr/bin/chromium"
VIEWPORT = (1280, 900)
SETTLE_SECONDS = 0.3  # after the load event: late script errors and requests still count
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-port=0",
]
# What a person would see as broken in the laid-out page, found by script in the page once the
# screenshot is taken (it opens every <details> first, so collapsed content is checked too):
# the page or any box (a table's scroll box too) wider than the space it has at 1280 px, a word
# or number in a table cell or card broken across lines other than after a space, hyphen, slash
# or comma ("numeri|c", "1,48|4,705"; a word of over 40 characters, a URI or hash, may break
# where it must), and a chart (an `svg.fp-chart`) with no drawn mark: the
# charts module gives each datum's SVG group the id `{chart}-mark-N` (charts._tag_marks).
LAYOUT_PROBE = r"""
(() => {
  const problems = [];
  const where = (el) => {
    let name = el.tagName.toLowerCase();
    if (typeof el.className === "string" && el.className.trim()) {
      name += "." + el.className.trim().split(/\s+/).join(".");
    }
    const section = el.closest("section");
    const heading = section && section.querySelector("h2");
    return name + (heading ? ` in "${heading.textContent.trim()}"` : "");
  };
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth + 1) {
    problems.push(`the page scrolls sideways: ${root.scrollWidth}px in ${root.clientWidth}px`);
  }
  for (const el of document.body.querySelectorAll("*")) {
    if (el.closest("svg") || el.clientWidth === 0) continue;
    if (el.scrollWidth > el.clientWidth + 1) {
      const sizes = `${el.scrollWidth}px in ${el.clientWidth}px`;
      problems.push(`${where(el)} is wider than its box: ${sizes}`);
    }
  }
  const breakable = /[\s\-\/,\u2013\u2014]/;
  const LONGEST_WORD = 40;
  for (const el of document.body.querySelectorAll("td, th, .card-value")) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.textContent;
      let top = null;
      for (let i = 0; i < text.length; i++) {
        if (/\s/.test(text[i])) continue;
        const range = document.createRange();
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        const rect = range.getBoundingClientRect();
        if (rect.height === 0) continue;
        if (top !== null && rect.top > top + 2 && !breakable.test(text[i - 1] || " ")) {
          const word = text.slice(0, i).split(/\s/).pop() + text.slice(i).split(/\s/)[0];
          if (word.length <= LONGEST_WORD) {  // longer ones (URIs, hashes) must break
            problems.push(`${where(el)}: "${text.trim()}" breaks mid-word`);
            break;
          }
        }
        top = rect.top;
      }
    }
  }
  for (const svg of document.querySelectorAll("svg.fp-chart")) {
    const name = svg.getAttribute("aria-label") || "chart";
    const box = svg.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) {
      problems.push(`chart "${name}" (${where(svg)}) is not shown`);
      continue;
    }
    const marks = Array.from(svg.querySelectorAll('[id*="-mark-"]')).filter((mark) => {
      const drawn = mark.getBBox();
      return drawn.width > 0 || drawn.height > 0;
    });
    if (marks.length === 0) problems.push(`chart "${name}" (${where(svg)}) draws no mark`);
  }
  return problems;
})()
"""
# Requests that never leave the page: its own file and inline data.
_LOCAL_SCHEMES = ("data:", "about:", "blob:")


@dataclass
class PageCheck:
    """What the page showed: its visible text, its errors and its unwanted requests."""

    text: str  # document.body.innerText
    errors: list[str] = field(default_factory=list)  # exceptions, console.error, error logs
    layout: list[str] = field(default_factory=list)  # LAYOUT_PROBE's findings (`layout=True`)
    failed_requests: list[str] = field(default_factory=list)  # anything but the page and data:
    screenshot: Path | None = None


def chromium_path() -> str | None:
    """The Chromium binary to use, or None when none is installed."""
    candidates = [
        os.environ.get("FAIRPILOT_CHROMIUM"),
        DEFAULT_CHROMIUM,
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


class _DevTools:
    """One browser-level CDP connection, driving one page through a flattened session."""

    def __init__(self, url: str, deadline: float) -> None:
        self.deadline = deadline
        self.socket = websocket.create_connection(
            url, timeout=self._remaining(), suppress_origin=True
        )
        self.next_id = 0
        self.session: str | None = None
        self.events: list[dict[str, Any]] = []

    def _remaining(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the page check ran out of time")
        return remaining

    def _receive(self, timeout: float) -> dict[str, Any] | None:
        self.socket.settimeout(max(0.01, timeout))
        try:
            message: dict[str, Any] = json.loads(self.socket.recv())
        except websocket.WebSocketTimeoutException:
            return None
        if "method" in message and message.get("sessionId") == self.session:
            self.events.append(message)
        return message

    def call(self, method: str, *, browser: bool = False, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        request: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if self.session and not browser:
            request["sessionId"] = self.session
        self.socket.send(json.dumps(request))
        while True:
            message = self._receive(self._remaining())
            if message is None or message.get("id") != self.next_id:
                continue
            if "error" in message:
                raise RuntimeError(f"{method}: {message['error']}")
            result: dict[str, Any] = message.get("result", {})
            return result

    def wait_for(self, event: str) -> None:
        while not any(e.get("method") == event for e in self.events):
            self._receive(self._remaining())

    def drain(self, seconds: float) -> None:
        until = min(time.monotonic() + seconds, self.deadline)
        while (left := until - time.monotonic()) > 0:
            self._receive(left)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.socket.close()


def _browser_socket(
    profile: Path, process: subprocess.Popen[bytes], log: Path, deadline: float
) -> str:
    port_file = profile / "DevToolsActivePort"
    while True:
        lines = port_file.read_text().split() if port_file.exists() else []
        if len(lines) >= 2:
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"chromium did not open its DevTools port:\n{_tail(log)}")
        time.sleep(0.05)


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Chromium and every helper process it started (they share its process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _without_fragment(url: str) -> str:
    return url.split("#", 1)[0]


def _collect(check: PageCheck, events: list[dict[str, Any]], page_url: str) -> None:
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            description = details.get("exception", {}).get("description")
            check.errors.append(description or details.get("text") or "uncaught exception")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            words = [str(a.get("value", a.get("description", ""))) for a in args]
            check.errors.append("console.error: " + " ".join(words))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            where = f" ({entry['url']})" if entry.get("url") else ""
            check.errors.append(f"{entry.get('text', 'error')}{where}")
        elif method == "Network.requestWillBeSent":
            requested = params.get("request", {}).get("url", "")
            if _without_fragment(requested) == page_url or requested.startswith(_LOCAL_SCHEMES):
                continue
            if requested not in check.failed_requests:
                check.failed_requests.append(requested)


def check_page(
    path: Path,
    screenshot: Path | None = None,
    timeout: float = 30,
    *,
    full_page: bool = False,
    script: str | None = None,
    layout: bool = False,
) -> PageCheck:
    """Load `path` in a fresh headless Chromium and report what it showed.

    `screenshot` saves a PNG of the 1280x900 viewport (the whole page with `full_page`).
    `script` is JavaScript run in the page once it has loaded, as a person's clicks would be
    (its exceptions count as errors); the text and screenshot are taken after it.
    `layout` runs LAYOUT_PROBE after the screenshot: overflowing boxes, words broken mid-word
    in tables and cards, charts without marks, in `PageCheck.layout`.
    Chromium and its temporary profile are removed afterwards, also on failure.
    """
    binary = chromium_path()
    if binary is None:
        raise RuntimeError("chromium is not installed: run scripts/install-chromium.sh")
    page_url = Path(path).resolve().as_uri()
    deadline = time.monotonic() + timeout
    workdir = Path(tempfile.mkdtemp(prefix="fairpilot-chromium-"))
    profile, log = workdir / "profile", workdir / "chromium.log"
    tools: _DevTools | None = None
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole below
        )
    try:
        tools = _DevTools(_browser_socket(profile, process, log, deadline), deadline)
        target = tools.call("Target.createTarget", url="about:blank")["targetId"]
        attached = tools.call("Target.attachToTarget", targetId=target, flatten=True)
        tools.session = attached["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            tools.call(f"{domain}.enable")
        width, height = VIEWPORT
        tools.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        tools.events.clear()  # only what the page itself does counts
        navigation = tools.call("Page.navigate", url=page_url)
        if navigation.get("errorText"):
            raise RuntimeError(f"cannot open {page_url}: {navigation['errorText']}")
        tools.wait_for("Page.loadEventFired")
        tools.drain(SETTLE_SECONDS)
        script_errors: list[str] = []
        if script is not None:
            ran = tools.call("Runtime.evaluate", expression=script, awaitPromise=True)
            if "exceptionDetails" in ran:
                details = ran["exceptionDetails"]
                description = details.get("exception", {}).get("description")
                script_errors.append(f"script: {description or details.get('text')}")
            tools.drain(SETTLE_SECONDS)
        evaluated = tools.call(
            "Runtime.evaluate",
            expression="document.body ? document.body.innerText : ''",
            returnByValue=True,
        )
        check = PageCheck(text=evaluated.get("result", {}).get("value") or "", errors=script_errors)
        if screenshot is not None:
            options: dict[str, Any] = {"format": "png"}
            if full_page:
                size = tools.call("Page.getLayoutMetrics")["cssContentSize"]
                options["captureBeyondViewport"] = True
                options["clip"] = {
                    "x": 0,
                    "y": 0,
                    "width": width,
                    "height": max(height, int(size["height"])),
                    "scale": 1,
                }
            shot = tools.call("Page.captureScreenshot", **options)
            screenshot = Path(screenshot)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            check.screenshot = screenshot
        if layout:
            probed = tools.call("Runtime.evaluate", expression=LAYOUT_PROBE, returnByValue=True)
            if "exceptionDetails" in probed:
                raise RuntimeError(f"the layout probe failed: {probed['exceptionDetails']}")
            check.layout = list(probed.get("result", {}).get("value") or [])
        tools.drain(0.05)
        _collect(check, tools.events, page_url)
        return check
    finally:
        if tools is not None:
            with contextlib.suppress(Exception):
                tools.session = None
                tools.socket.settimeout(2)
                tools.call("Browser.close", browser=True)
            tools.close()
        _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)

"""Headless Chromium for tests, driven through chromedriver's W3C WebDriver HTTP API.

Debian's `chromium` and `chromedriver` packages are used as installed (no browser download, no
Python driver package): chromedriver listens on a loopback port and we speak JSON to it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("ASSAY_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ASSAY_CHROMEDRIVER", "/usr/bin/chromedriver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1000"]


def available() -> str | None:
    """None when a browser can be driven here, else why not."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            return f"{path} is not installed"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebDriverError(RuntimeError):
    pass


class Element:
    def __init__(self, browser: Browser, ref: str):
        self.browser = browser
        self.ref = ref

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.browser.call(method, f"/element/{self.ref}{path}", body)

    @property
    def text(self) -> str:
        return str(self._call("GET", "/text"))

    def attr(self, name: str) -> str | None:
        return self._call("GET", f"/attribute/{name}")

    def click(self) -> None:
        self._call("POST", "/click", {})

    def clear(self) -> None:
        self._call("POST", "/clear", {})

    def type(self, text: str) -> None:
        self._call("POST", "/value", {"text": text})

    def find(self, css: str) -> Element:
        return self.browser._element(self._call("POST", "/element", {"using": "css selector", "value": css}))

    def png(self) -> bytes:
        """A screenshot of just this element (scrolled into view first)."""
        self.browser.script("arguments[0].scrollIntoView();", {ELEMENT: self.ref})
        return base64.b64decode(self._call("GET", "/screenshot"))

    def find_all(self, css: str) -> list[Element]:
        found = self._call("POST", "/elements", {"using": "css selector", "value": css})
        return [self.browser._element(e) for e in found]


class Browser:
    """One chromedriver + headless Chromium session; use as a context manager."""

    def __init__(self, artifacts: Path | None = None):
        self.artifacts = artifacts
        self.port = _free_port()
        self.profile = tempfile.mkdtemp(prefix="assay-chromium-")
        self.log = Path(self.profile) / "chromedriver.log"
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}", f"--log-path={self.log}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        self.session: str | None = None
        try:
            self._wait_ready()
            caps = {"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": [*FLAGS, f"--user-data-dir={self.profile}/data"]},
            }}}
            value = self._request("POST", "/session", caps)
            self.session = value["sessionId"]
        except BaseException:
            self.close()
            raise

    def _wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._request("GET", "/status").get("ready"):
                    return
            except (OSError, WebDriverError):
                pass
            time.sleep(0.1)
        raise WebDriverError(f"chromedriver did not start on port {self.port}")

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 60) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                payload = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            payload = json.loads(exc.read() or b"{}")
            value = payload.get("value") or {}
            raise WebDriverError(f"{method} {path}: {value.get('error')}: {value.get('message', '')[:300]}") from None
        return payload.get("value")

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._request(method, f"/session/{self.session}{path}", body)

    def _element(self, value: dict[str, str]) -> Element:
        return Element(self, value[ELEMENT])

    # ---- what tests use ----------------------------------------------------------------------
    def get(self, url: str) -> None:
        self.call("POST", "/url", {"url": url})

    @property
    def title(self) -> str:
        return str(self.call("GET", "/title"))

    @property
    def url(self) -> str:
        return str(self.call("GET", "/url"))

    def find(self, css: str) -> Element:
        return self._element(self.call("POST", "/element", {"using": "css selector", "value": css}))

    def find_all(self, css: str) -> list[Element]:
        return [self._element(e) for e in self.call("POST", "/elements", {"using": "css selector", "value": css})]

    def script(self, source: str, *args: Any) -> Any:
        return self.call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def wait_for(self, css: str, timeout: float = 10) -> Element:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.find(css)
            except WebDriverError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def wait_until(self, js_condition: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not self.script(f"return !!({js_condition});"):
            if time.monotonic() > deadline:
                raise WebDriverError(f"timed out waiting for {js_condition}")
            time.sleep(0.1)

    def screenshot(self, name: str, *, full_page: bool = True) -> Path | None:
        """Save a PNG under the artifacts folder (the whole page height when full_page)."""
        if self.artifacts is None:
            return None
        self.artifacts.mkdir(parents=True, exist_ok=True)
        size = None
        if full_page:
            height = int(self.script("return Math.min(document.documentElement.scrollHeight, 16000);"))
            size = self.call("GET", "/window/rect")
            self.call("POST", "/window/rect", {"width": size["width"], "height": max(height + 40, 600)})
        png = base64.b64decode(self.call("GET", "/screenshot"))
        if size is not None:
            self.call("POST", "/window/rect", {"width": size["width"], "height": size["height"]})
        path = self.artifacts / f"{name}.png"
        path.write_bytes(png)
        return path

    def close(self) -> None:
        try:
            if self.session:
                self._request("DELETE", f"/session/{self.session}", timeout=20)
        except (OSError, WebDriverError):
            pass
        finally:
            self.session = None
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

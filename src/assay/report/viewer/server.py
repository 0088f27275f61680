"""The viewer's HTTP server (stdlib): read-only, loopback by default, Host-checked."""

from __future__ import annotations

import ipaddress
import sys
import threading
import webbrowser
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from assay.errors import AssayError
from assay.report.viewer import pages
from assay.report.viewer.index import RunIndex

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                               "img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ViewerServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, index: RunIndex, host: str, port: int):
        self.index = index
        self.loopback = is_loopback(host)
        family_v6 = ":" in host
        if family_v6:
            import socket

            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), Handler)
        except OSError as exc:
            raise AssayError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                             "choose another --port (0 picks a free one)") from None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"


class Handler(BaseHTTPRequestHandler):
    server: ViewerServer
    server_version = "assay-view"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the URL only
        pass

    def _host_allowed(self) -> bool:
        """With a loopback bind, only loopback names are accepted in Host: a web page elsewhere
        cannot then reach the viewer through a DNS name that resolves to 127.0.0.1."""
        if not self.server.loopback:
            return True
        host = (self.headers.get("Host") or "").strip()
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        return is_loopback(name)

    def _send(self, status: int, body: bytes, ctype: str, head_only: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in SECURITY_HEADERS.items():
            self.send_header(k, v)
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET(head_only=True)

    def do_GET(self, head_only: bool = False) -> None:
        if not self._host_allowed():
            self._send(403, b"forbidden: unexpected Host header", "text/plain; charset=utf-8", head_only)
            return
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        idx = self.server.index
        try:
            if url.path == "/":
                self._send(200, pages.list_page(idx, params).encode(), "text/html; charset=utf-8", head_only)
            elif url.path == "/item":
                page = pages.item_page(idx, pages.find_row(idx, params))
                self._send(200, page.encode(), "text/html; charset=utf-8", head_only)
            elif url.path == "/api/status":
                self._json(asdict(idx.progress), head_only)
            elif url.path == "/api/items":
                res = pages.list_items(idx, params)
                res["query"] = asdict(res["query"])
                self._json(res, head_only)
            elif url.path == "/api/item":
                self._json(pages.item_data(idx, pages.find_row(idx, params)), head_only)
            else:
                self._send(404, pages.not_found_page(idx, f"no page {url.path}").encode(),
                           "text/html; charset=utf-8", head_only)
        except pages.NotFound as exc:
            if url.path.startswith("/api/"):
                self._send(404, orjson.dumps({"error": str(exc)}), "application/json", head_only)
            else:
                self._send(404, pages.not_found_page(idx, str(exc)).encode(), "text/html; charset=utf-8", head_only)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # one bad item must not stop the server
            self._send(500, f"error: {type(exc).__name__}: {exc}".encode(), "text/plain; charset=utf-8", head_only)

    def _json(self, obj: Any, head_only: bool) -> None:
        self._send(200, orjson.dumps(obj, default=str), "application/json", head_only)

    def _refuse(self) -> None:
        self._send(405, b"read-only: only GET", "text/plain; charset=utf-8")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse


def start_server(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8765) -> ViewerServer:
    """Index in the background and serve in a thread (for tests and embedding)."""
    index = RunIndex(run_dir)
    index.start()
    srv = ViewerServer(index, host, port)
    threading.Thread(target=srv.serve_forever, name="assay-view", daemon=True).start()
    return srv


def serve(run_dir: str | Path, *, host: str, port: int, open_browser: bool, console: Any, err_console: Any) -> None:
    index = RunIndex(run_dir)
    index.start()
    srv = ViewerServer(index, host, port)
    if srv.loopback:
        console.print(f"assay view: {index.root} at {srv.url} (read-only; bound to loopback {host}: "
                      "only this machine can connect)", highlight=False, soft_wrap=True)
    else:
        err_console.print(f"[yellow]warning:[/] bound to {host}: anyone who can reach this machine can read every "
                          "record of the run (read-only); use the default 127.0.0.1 unless you mean it",
                          highlight=False, soft_wrap=True)
        console.print(f"assay view: {index.root} at {srv.url} (read-only)", highlight=False, soft_wrap=True)
    console.print("press Ctrl-C to stop", style="dim")
    sys.stdout.flush()
    if open_browser:
        webbrowser.open(srv.url)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        srv.server_close()

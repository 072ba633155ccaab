"""``vaekit explore``'s local web server: the standard library's threading HTTP server, one page and a small JSON
API over the run's real model (:class:`~vaekit.explore.state.Explorer`).

Safe by construction: it binds to 127.0.0.1 unless told otherwise; it answers only requests whose ``Host``
header names it (so a web page elsewhere cannot reach it by DNS rebinding); no request names a file (the page
is served from memory, images by their number); request bodies are bounded; a malformed request is answered
400 with one line, and no request can stop the server or show a traceback.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from .state import BadRequest, Explorer

MAX_BODY = 2 << 20  # bytes a request body may hold


def page_html() -> str:
    return resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")


class Handler(BaseHTTPRequestHandler):
    server_version = "vaekit-explore"
    explorer: Explorer  # set on the class the server makes
    allowed_hosts: frozenset[str]
    page: str

    def log_message(self, format, *args):  # quiet: the terminal shows only the address and errors
        pass

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                                    "style-src 'self' 'unsafe-inline'; img-src 'self' data:")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _host_ok(self) -> bool:
        return (self.headers.get("Host") or "").lower() in self.allowed_hosts

    def do_GET(self):
        self._handle(self._get)

    def do_POST(self):
        self._handle(self._post)

    def _handle(self, fn) -> None:
        try:
            if not self._host_ok():
                return self._error(403, "this server answers only requests addressed to it by its own host and port")
            fn(urlsplit(self.path))
        except BadRequest as e:
            self._error(400, str(e))
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # never a traceback to the page, never a stopped server
            print(f"vaekit explore: error answering {self.command} {self.path[:100]}: {type(e).__name__}: {e}",
                  file=sys.stderr)
            try:
                self._error(500, "the server could not answer this request")
            except OSError:
                pass

    def _get(self, url) -> None:
        if url.path in ("/", "/index.html"):
            return self._send(200, self.page.encode(), "text/html; charset=utf-8")
        if url.path == "/favicon.ico":  # the browser asks; there is none
            return self._send(204, b"", "image/x-icon")
        if url.path == "/api/info":
            return self._json(200, self.explorer.info())
        if url.path == "/api/image":
            return self._json(200, self.explorer.image(parse_qs(url.query)))
        self._error(404, f"no such page: {url.path[:100]}")

    def _post(self, url) -> None:
        routes = {"/api/decode": self.explorer.decode, "/api/encode": self.explorer.encode,
                  "/api/sample": self.explorer.sample}
        if url.path not in routes:
            return self._error(404, f"no such request: {url.path[:100]}")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise BadRequest("a request needs a Content-Length") from None
        if not 0 < length <= MAX_BODY:
            raise BadRequest(f"a request body must hold 1 to {MAX_BODY} bytes")
        try:
            body = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        self._json(200, routes[url.path](body))


def make_server(explorer: Explorer, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """The server, bound (``port=0``: a free port) but not yet serving; ``server.server_address`` says where."""
    handler = type("BoundHandler", (Handler,), {"explorer": explorer, "page": page_html(),
                                                "allowed_hosts": frozenset()})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    bound = server.server_address[1]
    names = {host, "127.0.0.1", "localhost"} if host in ("127.0.0.1", "localhost") else {host}
    handler.allowed_hosts = frozenset(f"{n}:{bound}".lower() for n in names)
    return server


__all__ = ["Handler", "MAX_BODY", "make_server", "page_html"]

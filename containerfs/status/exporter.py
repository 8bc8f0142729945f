"""`status --prometheus --listen`: serve the exposition over HTTP, asking the daemon at each scrape.

Opt-in, and a separate process from the daemon: the FUSE daemon opens no network port.
Whoever can reach the port sees every container's figures, so bind it to an address only
the monitoring system reaches (the default host is 127.0.0.1).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import FrameType

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def parse_listen(text: str) -> tuple[str, int]:
    """`PORT`, `HOST:PORT` or `[IPv6]:PORT`; the host defaults to 127.0.0.1."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen {text!r}: expected [HOST:]PORT")
    return host, int(port)


def serve(address: tuple[str, int], scrape: Callable[[], str]) -> int:
    """Answer GET /metrics with scrape() until SIGTERM or SIGINT; returns the exit code."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/", "/metrics"):
                self.send_error(404)
                return
            body = scrape().encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every 15 s is not news

    try:
        server = HTTPServer(address, Handler)
    except OSError as err:
        print(f"containerfs: cannot listen on {address[0]}:{address[1]}: {err.strerror or err}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    port = server.server_address[1]
    print(f"containerfs: serving metrics on http://{address[0]}:{port}/metrics", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0

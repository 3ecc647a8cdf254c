"""A loopback webhook receiver that records every JSON body POSTed to it, and the path it was sent to."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, url: str) -> None:
        self.url = url
        self.messages: list[dict[str, Any]] = []
        self.paths: list[str] = []
        """The path and query of every POST, as the server received them."""


@contextmanager
def webhook_receiver(*, status: int = 200, path: str = "/hook") -> Iterator[Receiver]:
    """A receiver at ``http://127.0.0.1:<port><path>`` answering every POST with ``status``
    (a webhook whose channel was deleted answers 404), after recording it."""
    received: list[dict[str, Any]] = []
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            paths.append(self.path)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok" if status < 400 else b"no_such_hook")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver = Receiver(f"http://127.0.0.1:{server.server_address[1]}{path}")
    receiver.messages = received
    receiver.paths = paths
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()

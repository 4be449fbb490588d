"""A static file server on 127.0.0.1 in a background thread (the smoke run's only "internet")."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from topkshape.errors import ConfigError


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serving(folder: str | Path, port: int) -> Iterator[str]:
    """Serve ``folder`` at ``http://127.0.0.1:<port>`` while the block runs; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as error:
        raise ConfigError(f"cannot serve on 127.0.0.1:{port} ({error.strerror or error}): choose another --port") from None
    thread = threading.Thread(target=server.serve_forever, name="smoke-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

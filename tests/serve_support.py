"""Helpers for the explorer's tests: a real uvicorn server on a free loopback port, in a thread, and JSON calls."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`bertology serve`'s app under uvicorn, as the command runs it, but in a thread of the test process."""

    def __init__(self, explorer, host: str = "127.0.0.1"):
        import uvicorn

        from bertology.serve import create_app

        self.explorer = explorer
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(explorer, host), host=host, port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def call(self, path: str, body: dict | None = None, headers: dict | None = None, raw: bytes | None = None,
             timeout: float = 120) -> tuple[int, dict]:
        """(status, JSON body) of a GET (no body) or POST."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, headers={"content-type": "application/json",
                                                                          **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                text = r.read()
                try:
                    return r.status, json.loads(text or b"null")
                except ValueError:          # the font's CSS, say
                    return r.status, {"text": text.decode(errors="replace")}
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, {"text": text.decode(errors="replace")}

"""A stub target that redirects, and a trap that counts who followed, for the loopback-guard
test (stdlib only). Run inside a network namespace:

    python redirect_stub.py PORT TRAP_HOST TRAP_PORT COUNTS_FILE [--redirect-models]

- on 127.0.0.1:PORT: `GET /v1/models` answers a model list (so the preflight passes), unless
  `--redirect-models`; every other request is answered 307 to http://TRAP_HOST:TRAP_PORT/<path>
  (307 keeps the method and the body: the strongest invitation to follow);
- on TRAP_HOST:TRAP_PORT: a listener that counts every connection made to it.
COUNTS_FILE gets `{"stub": requests seen, "trap": connections to the trap}` after each event.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COUNTS = {"stub": 0, "trap": 0}
LOCK = threading.Lock()


def bump(key: str, out: Path) -> None:
    with LOCK:
        COUNTS[key] += 1
        out.write_text(json.dumps(COUNTS))


def serve_trap(host: str, port: int, out: Path) -> None:
    srv = socket.create_server((host, port))
    while True:
        conn, _ = srv.accept()
        bump("trap", out)
        conn.settimeout(1.0)
        try:
            first = conn.recv(200).split(b"\r\n", 1)[0].decode("latin-1")
        except OSError:
            first = ""
        with LOCK, out.with_suffix(".log").open("a") as log:
            log.write(first + "\n")  # the request line each follower sent
        conn.close()


def handler(target: str, out: Path, redirect_models: bool) -> type[BaseHTTPRequestHandler]:
    class Redirecting(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            bump("stub", out)
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self.path == "/v1/models" and not redirect_models:
                body = json.dumps({"object": "list", "data": [{"id": "stub-model", "object": "model"}]}).encode()
                self.send_response(200)
            else:
                body = b""
                self.send_response(307)
                self.send_header("Location", target + self.path)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _answer  # noqa: N815

    return Redirecting


def main() -> None:
    port, trap_host, trap_port, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    out.write_text(json.dumps(COUNTS))
    threading.Thread(target=serve_trap, args=(trap_host, trap_port, out), daemon=True).start()
    target = f"http://{trap_host}:{trap_port}"
    ThreadingHTTPServer(("127.0.0.1", port), handler(target, out, "--redirect-models" in sys.argv)).serve_forever()


if __name__ == "__main__":
    main()

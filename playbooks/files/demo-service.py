"""A tiny daemon for the restart example: answers GET /health, keeps a pid file.

Run: demo-service.py --pid-file F --port P [--name N]. It detaches (double fork, stdio to
/dev/null) so the Ansible task that starts it returns at once.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pid-file", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="demo-service")
    args = parser.parse_args()
    server = http.server.HTTPServer(("127.0.0.1", args.port), _handler(args.name))
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    with open(args.pid_file, "w", encoding="ascii") as handle:
        handle.write(f"{os.getpid()}\n")
    server.serve_forever()


def _handler(name: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            body = json.dumps({"service": name, "pid": os.getpid(), "ok": True}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Health


if __name__ == "__main__":
    sys.exit(main())

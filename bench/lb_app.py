"""The app behind the load balancer in `make bench-lb` (bench/lb_load.py): a Marathon command task serving HTTP.

Runs with the system's python3 (no dependencies) on `$PORT0`: `/` answers `version <APP_VERSION> task <task id>`
(so that the load generator sees a roll happen and which tasks serve), `/health` is its HTTP health check and
`/ready` its readiness check, which answers 503 for the first `READY_AFTER` seconds (a warming-up app: Marathon
must not count it deployed, nor the LB send it traffic, before). On SIGTERM it behaves like a well-written
server: it stops accepting connections, answers the requests it holds with `Connection: close`, and exits.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("APP_VERSION", "1")
TASK_ID = os.environ.get("MESOS_TASK_ID", "unknown")
READY_AFTER = float(os.environ.get("READY_AFTER", "2"))
STARTED = time.monotonic()
stopping = threading.Event()
in_flight = 0
in_flight_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as HAProxy's connections to servers are
    # Headers and body go out in two writes: without TCP_NODELAY the body waits for the delayed ACK (40 ms).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        global in_flight
        with in_flight_lock:
            in_flight += 1
        try:
            status = 200
            if self.path == "/ready" and time.monotonic() - STARTED < READY_AFTER:
                status = 503
            body = f"version {VERSION} task {TASK_ID}\n".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            if stopping.is_set():
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)
        finally:
            with in_flight_lock:
                in_flight -= 1

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's listen backlog of 5 drops connections (the client retries after 1 s) when a scale-down
    # leaves one task with the whole load; servers listen with a deeper queue.
    request_queue_size = 128


def main() -> None:
    # `--help` answers without serving (runtime/tests/test_bench_scripts.py runs every bench script so).
    argparse.ArgumentParser(description=__doc__).parse_args()
    server = Server(("127.0.0.1", int(os.environ["PORT0"])), Handler)

    def stop(_signal: int, _frame: object) -> None:
        stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever(poll_interval=0.1)
    server.server_close()  # no new connections from here on
    deadline = time.monotonic() + 2.0
    while in_flight and time.monotonic() < deadline:
        time.sleep(0.01)


if __name__ == "__main__":
    main()

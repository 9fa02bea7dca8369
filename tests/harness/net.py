"""Loopback helpers."""
import socket
import sys
import time
import urllib.request
from typing import Optional
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound then released; the caller binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    """Wait until `url` answers any HTTP status."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError as error:  # not listening yet
            last = error
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s: {last}")


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a client (e.g. a Lambda
    process killed at its deadline) drops its connection."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionResetError, BrokenPipeError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class QuietHandler(BaseHTTPRequestHandler):
    """The request handler every loopback server here subclasses: HTTP/1.1 keep-alive, no access
    log on stderr, and the three things each of them does with a request.

    TCP_NODELAY: an answer goes out in two writes (headers, then body); with Nagle's algorithm on,
    the body waited on a kept-alive connection for the client's delayed ACK, about 40 ms on Linux
    loopback, after some AWS calls through the recording proxy (tests/bench_paths.py measured
    the gaps before CreateVpc, round A, PutMetricAlarm, TagResource)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_bytes(self, status: int, body: bytes = b"", headers: Optional[dict] = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def send_json(self, status: int, payload) -> None:
        self.send_bytes(status, json.dumps(payload, default=str).encode(), {"Content-Type": "application/json"})


def wait_until(condition, what: str = "condition", timeout: float = 30.0, interval: float = 0.1):
    """`condition()`'s first truthy value, polled every `interval`; AssertionError naming `what`
    after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = condition()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout} s")

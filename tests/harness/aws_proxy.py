"""A recording proxy between a provider binary and moto.

moto drops or ignores some request fields (see docs/local-emulator.md), so some tests assert on the
requests a binary sent rather than on moto's state. Every call is recorded with its service,
action, parameters and timing (which also shows how many calls ran concurrently).
"""
import http.client
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Optional
from urllib.parse import parse_qsl, urlparse

from .net import QuietHTTPServer

_SERVICE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/aws4_request")
_SKIP_HEADERS = {"host", "connection", "transfer-encoding", "keep-alive", "content-length"}


@dataclass
class Call:
    service: str
    action: str
    params: dict
    started: float
    finished: float
    status: int


def max_concurrency(calls: list) -> int:
    """The largest number of calls in flight at once, as seen by the proxy."""
    events = sorted([(c.started, 1) for c in calls] + [(c.finished, -1) for c in calls])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


class RecordingProxy:
    def __init__(self, upstream: str):
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.lock = threading.Lock()
        self.calls: list = []
        self.server = QuietHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def clear(self) -> None:
        with self.lock:
            self.calls.clear()

    def recorded(self, service: Optional[str] = None, action: Optional[str] = None) -> list:
        with self.lock:
            return [c for c in self.calls
                    if (service is None or c.service == service) and (action is None or c.action == action)]

    def _handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _relay(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                started = time.monotonic()
                connection = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIP_HEADERS}
                headers["Content-Length"] = str(len(body))
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                finished = time.monotonic()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in _SKIP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                connection.close()
                proxy._record(self.headers, self.path, body, started, finished, response.status)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _relay

        return Handler

    def _record(self, headers, path, body: bytes, started, finished, status) -> None:
        match = _SERVICE.search(headers.get("Authorization", ""))
        service = match.group(1) if match else "?"
        target = headers.get("X-Amz-Target")
        params: dict = {}
        if target:
            action = target.rsplit(".", 1)[-1]
            try:
                params = json.loads(body or b"{}")
            except ValueError:
                params = {}
        else:
            form = dict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
            action = form.pop("Action", None) or f"{headers.get('X-Http-Method', '')}{path}"
            params = form
        with self.lock:
            self.calls.append(Call(service, action, params, started, finished, status))

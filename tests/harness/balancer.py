"""Application Load Balancers of the local engine as loopback HTTP proxies: one proxy per target
group that a load balancer's listener forwards to, its registered targets the running task
processes of the ECS services whose `loadBalancers` name that target group (harness/
task_processes.py registers and deregisters them, as ECS does for a service).

AWS behaviour reproduced (Elastic Load Balancing User Guide for Application Load Balancers):
  * "Health checks for Application Load Balancer target groups": each target is probed on the
    target group's HealthCheckPath (AWS default "/") with its Matcher (default 200); a new target
    is `initial` until HealthyThresholdCount checks in a row pass, a target goes `unhealthy` after
    UnhealthyThresholdCount failures in a row and gets no requests; "If a target group contains
    only unhealthy registered targets, the load balancer routes requests to all those targets,
    regardless of their health status" (fail open).
  * "Deregistration delay": a deregistering target is `draining`; the load balancer stops sending
    it new requests, in-flight requests complete, for at most
    deregistration_delay.timeout_seconds (default 300).
  * the round_robin routing algorithm (load_balancing.algorithm.type, the default); 503 with no
    target to route to, 502 when the target refuses the connection.

Scaled down locally (environment of the engine process): health checks every
LOCAL_ENGINE_HEALTH_INTERVAL seconds (default 0.25) instead of HealthCheckIntervalSeconds, with a
timeout of at most 1 s; the deregistration delay is capped at LOCAL_ENGINE_DEREGISTRATION_DELAY
seconds (default 2). Not reproduced: listener rules (only default actions), weighted forwards
(the first target group of a forward), HTTPS (every listener is served as plain HTTP), slow
start, stickiness, cross-zone settings, one proxy per load balancer node.

Resolving a load balancer's DNS name (DescribeLoadBalancers, the stack output LoadBalancerUrl) to
the loopback URL: `Balancers.urls()`, served by the engine's control API at `GET /balancers`
(`{dns name: url}`) and written to `<log dir>/balancers.json`; EngineProcess.balancer_url(dns)
in harness/engine_process.py reads it.
"""
import collections
import http.client
import json
import os
import threading
import time
from pathlib import Path
from typing import Optional

from .net import QuietHTTPServer, QuietHandler

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade", "content-length", "host"}


def _local_seconds(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def matches(matcher: str, status: int) -> bool:
    """A target group Matcher HttpCode ("200", "200,302", "200-399") against a status."""
    for part in str(matcher or "200").split(","):
        low, _, high = part.strip().partition("-")
        if low and int(low) <= status <= int(high or low):
            return True
    return False


class Target:
    def __init__(self, key: str, host: str, port: int, zone: str = ""):
        self.key, self.host, self.port, self.zone = key, host, port, zone
        self.state = "initial"   # initial | healthy | unhealthy | draining
        self.passes = self.failures = self.in_flight = self.served = self.errors = 0
        self.last_error = ""
        self.ever_healthy = False
        self.idle = threading.Condition()

    def describe(self) -> dict:
        return {"Id": self.key, "Port": self.port, "State": self.state, "Zone": self.zone,
                "InFlight": self.in_flight, "Served": self.served, "Errors": self.errors,
                "LastError": self.last_error}


class TargetGroupProxy:
    """One target group: its targets, their health and a loopback HTTP server routing to them."""

    def __init__(self, arn: str, settings: dict, on_change=None, on_unhealthy=None):
        self.arn, self.settings, self.on_change, self.on_unhealthy = arn, settings, on_change, on_unhealthy
        self.targets: dict = {}
        self.errors: collections.deque = collections.deque(maxlen=20)  # the last 502s, for diagnosis
        self.lock = threading.Lock()
        self.next = 0
        self.closed = threading.Event()
        self.server = QuietHTTPServer(("127.0.0.1", 0), _proxy_handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._health_loop, daemon=True).start()

    # -- registration ---------------------------------------------------------------------
    def register(self, key: str, host: str, port: int, zone: str = "") -> None:
        with self.lock:
            self.targets[key] = Target(key, host, port, zone)
        self._changed()

    def replacing(self, key: str) -> bool:
        """Other targets have not passed their health checks yet (a deployment's new tasks
        starting: `initial`, or `unhealthy` before they ever were healthy)."""
        with self.lock:
            return any(not t.ever_healthy and t.state != "draining" for k, t in self.targets.items() if k != key)

    def wait_for_replacements(self, key: str, timeout: float) -> None:
        """Until every other target passed its health checks once, at most `timeout` s."""
        end = time.monotonic() + timeout
        while self.replacing(key) and time.monotonic() < end and not self.closed.is_set():
            time.sleep(0.05)

    def start_draining(self, key: str) -> None:
        with self.lock:
            if key in self.targets:
                self.targets[key].state = "draining"

    def deregister(self, key: str) -> float:
        """Drain the target: no new requests; returns once its in-flight requests finished or the
        (local) deregistration delay passed. Returns the seconds it drained."""
        with self.lock:
            target = self.targets.get(key)
            if target is None:
                return 0.0
            target.state = "draining"
        started = time.monotonic()
        delay = min(float(self.settings["deregistration_delay"]),
                    _local_seconds("LOCAL_ENGINE_DEREGISTRATION_DELAY", 2.0))
        with target.idle:
            target.idle.wait_for(lambda: target.in_flight == 0, timeout=delay)
        with self.lock:
            self.targets.pop(key, None)
        self._changed()
        return time.monotonic() - started

    def _changed(self) -> None:
        if self.on_change:
            self.on_change()

    def describe(self) -> list:
        with self.lock:
            return [t.describe() for t in self.targets.values()]

    # -- routing --------------------------------------------------------------------------
    def pick(self) -> Optional[Target]:
        """Round robin over healthy targets; all unhealthy ones when none is healthy (fail open);
        none while the rest are initial or draining."""
        with self.lock:
            live = [t for t in self.targets.values() if t.state == "healthy"]
            if not live:
                live = [t for t in self.targets.values() if t.state == "unhealthy"]
                if any(t.state == "initial" for t in self.targets.values()):
                    live = []
            if not live:
                return None
            target = live[self.next % len(live)]
            self.next += 1
            target.in_flight += 1
            target.served += 1
            return target

    def done(self, target: Target) -> None:
        with target.idle:
            target.in_flight -= 1
            target.idle.notify_all()

    # -- health checks --------------------------------------------------------------------
    def _probe(self, target: Target) -> bool:
        timeout = min(float(self.settings["timeout"]), 1.0)
        try:
            connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
            connection.request("GET", self.settings["path"], headers={"User-Agent": "ELB-HealthChecker/2.0"})
            response = connection.getresponse()
            response.read()  # closing with the body unread resets the connection
            status = response.status
            connection.close()
            return matches(self.settings["matcher"], status)
        except OSError:
            return False

    def _health_loop(self) -> None:
        interval = _local_seconds("LOCAL_ENGINE_HEALTH_INTERVAL", 0.25)
        while not self.closed.wait(interval):
            with self.lock:
                targets = [t for t in self.targets.values() if t.state != "draining"]
            for target in targets:
                ok = self._probe(target)
                with self.lock:
                    if target.state == "draining":
                        continue
                    if ok:
                        target.passes, target.failures = target.passes + 1, 0
                        if target.passes >= self.settings["healthy"]:
                            target.state, target.ever_healthy = "healthy", True
                    else:
                        target.passes, target.failures = 0, target.failures + 1
                        if target.failures >= self.settings["unhealthy"]:
                            target.state = "unhealthy"
                    failing = target.state == "unhealthy"
                if failing and self.on_unhealthy:
                    self.on_unhealthy(self.arn, target.key)  # ECS may replace the task

    def close(self) -> None:
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()


def _proxy_handler(group: TargetGroupProxy):
    class Handler(QuietHandler):
        def _forward(self):
            body = self.read_body()
            target = group.pick()
            if target is None:
                return self.send_bytes(503, b"503 Service Temporarily Unavailable\n", {"Content-Type": "text/plain"})
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                headers["X-Forwarded-For"] = self.client_address[0]
                headers["X-Forwarded-Proto"] = "http"
                headers["Host"] = self.headers.get("Host") or ""
                connection = http.client.HTTPConnection(target.host, target.port, timeout=30)
                connection.request(self.command, self.path, body=body or None, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                answer = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
                connection.close()
            except OSError as error:
                target.errors += 1
                target.last_error = f"{type(error).__name__}: {error} (target state {target.state})"
                group.errors.append(f"{target.key}: {target.last_error}")
                return self.send_bytes(502, b"502 Bad Gateway\n", {"Content-Type": "text/plain"})
            finally:
                group.done(target)
            self.send_bytes(response.status, payload, answer)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _forward

    return Handler


def _settings(target_group) -> dict:
    """What the proxy needs of a moto FakeTargetGroup."""
    matcher = (getattr(target_group, "matcher", None) or {}).get("HttpCode") or "200"
    return {
        "path": target_group.health_check_path or "/",
        "matcher": matcher,
        "timeout": float(target_group.health_check_timeout_seconds or 5),
        "healthy": int(target_group.healthy_threshold_count or 5),
        "unhealthy": int(target_group.unhealthy_threshold_count or 2),
        "deregistration_delay": float(
            target_group.attributes.get("deregistration_delay.timeout_seconds", 300)),
    }


def _forwarded(action) -> list:
    data = getattr(action, "data", {}) or {}
    if data.get("Type") != "forward":
        return []
    if data.get("TargetGroupArn"):
        return [data["TargetGroupArn"]]
    return [g["TargetGroupArn"] for g in (data.get("ForwardConfig") or {}).get("TargetGroups", [])][:1]


class Balancers:
    """Every target group proxy of the engine, created when a target first registers or a load
    balancer forwarding to it is looked up."""

    def __init__(self, log_dir: Path, on_unhealthy=None):
        self.log_dir = Path(log_dir)
        self.on_unhealthy = on_unhealthy
        self.groups: dict = {}
        self.lock = threading.RLock()

    def group(self, account: str, region: str, arn: str) -> Optional[TargetGroupProxy]:
        from moto.elbv2.models import elbv2_backends

        with self.lock:
            if arn not in self.groups:
                found = elbv2_backends[account][region].target_groups.get(arn)
                if found is None:
                    return None
                self.groups[arn] = TargetGroupProxy(arn, _settings(found), on_change=self.write,
                                                    on_unhealthy=self.on_unhealthy)
            return self.groups[arn]

    def urls(self) -> dict:
        """{load balancer DNS name: loopback URL of the target group its listener forwards to}."""
        from moto.elbv2.models import elbv2_backends

        found = {}
        for account, regions in list(elbv2_backends.items()):
            for region, backend in list(regions.items()):
                for lb in list(backend.load_balancers.values()):
                    for listener in sorted(lb.listeners.values(), key=lambda item: item.protocol != "HTTP"):
                        arns = [a for action in listener.default_actions for a in _forwarded(action)]
                        proxy = self.group(account, region, arns[0]) if arns else None
                        if proxy and lb.dns_name not in found:
                            found[lb.dns_name] = proxy.url
        return found

    def describe(self) -> dict:
        with self.lock:
            return {arn: {"Url": g.url, "Targets": g.describe(), "Errors": list(g.errors)}
                    for arn, g in self.groups.items()}

    def write(self) -> None:
        try:
            state = {"LoadBalancers": self.urls(), "TargetGroups": self.describe()}
            path = self.log_dir / "balancers.json"
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(state, indent=1))
            temporary.replace(path)
        except Exception:  # noqa: BLE001 - a status file, never fatal to the scheduler
            pass

    def close(self) -> None:
        with self.lock:
            for group in self.groups.values():
                group.close()
            self.groups.clear()

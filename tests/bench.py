"""make bench: where we stand, every figure measured side by side in one run (loopback only).

Writes target/bench/report.json (machine-readable) and target/bench/report.md (the tables
docs/benchmarks.md quotes). Sections, each a count or a ratio against a baseline run in the same
invocation:

- zips: each release zip's size against the 3 MiB budget; the HTTP/TLS crates the Lambda
  binaries link (cargo tree: one hyper, one rustls on ring; no h2, aws-lc, reqwest).
- cold start (tests/bench_coldstart.py): each release binary's time to its first `next` and to
  its first answer, and its peak RSS, beside a Python crhelper + boto3 handler doing the same
  (its own venv, .venv-bench), on the same local Runtime API; medians of 7 and the ratios.
- critical path (tests/bench_paths.py): network, service and scaling operations with a fixed added
  latency per AWS call through the loopback proxy: wall time, calls, rounds, the dependency-depth
  bound and the ratio to it; wait responsiveness; fail-fast times.
- release end to end: the whole `make demo` flow on release zips beside the same flow on the
  debug zips `make test` uses, both passing, and the ratio of their wall times.

Bounded: every step has a timeout. Reproduce: `make bench` (BENCH_LATENCY_MS=50).
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from conftest import ROOT, TARGET  # noqa: E402
import bench_coldstart  # noqa: E402
import stackctl  # noqa: E402

OUT = ROOT / "target" / "bench"
LAMBDA_DIR = Path(os.environ.get("LAMBDA_DIR") or TARGET / "lambda")
ZIP_BUDGET = 3 * 1024 * 1024
LATENCY_MS = int(os.environ.get("BENCH_LATENCY_MS", "50"))
# Crates that are an HTTP client or TLS stack of their own; the binaries should link one each.
HTTP_STACKS = ("hyper", "rustls", "reqwest", "native-tls", "openssl", "isahc", "ureq", "h2",
               "aws-smithy-http-client", "aws-lc-rs", "ring")


def zips() -> dict:
    sizes = {}
    for function in stackctl.FUNCTIONS:
        path = LAMBDA_DIR / function / "bootstrap.zip"
        size = path.stat().st_size
        sizes[function] = {"bytes": size, "mib": round(size / 2**20, 2),
                           "of_budget": round(size / ZIP_BUDGET, 2), "within_budget": size <= ZIP_BUDGET}
    return sizes


def http_stacks() -> dict:
    """Versions of each HTTP/TLS crate in the Lambda binaries' dependency graph (normal edges; the
    sample app, which make build leaves out, excluded: it links the same stack)."""
    tree = subprocess.run(["cargo", "tree", "--workspace", "--exclude", "app", "-e", "normal", "--prefix", "none",
                           "--locked"],
                          cwd=ROOT, capture_output=True, text=True, check=True, timeout=300).stdout
    found: dict = {}
    for line in tree.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in HTTP_STACKS:
            found.setdefault(parts[0], set()).add(parts[1])
    return {name: sorted(versions) for name, versions in sorted(found.items())}


def demo(zips_from: str) -> dict:
    """tests/demo.py on the release zips (LAMBDA_DIR) or on the debug ones (DEMO_ZIPS=debug)."""
    env = dict(os.environ, LAMBDA_DIR=str(LAMBDA_DIR))
    env.pop("DEMO_ZIPS", None)
    if zips_from == "debug":
        env["DEMO_ZIPS"] = "debug"
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "demo.py")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - started
    (OUT / f"demo-{zips_from}.log").write_text(result.stdout + result.stderr)
    steps = result.stdout.count("\n== ")
    return {"passed": result.returncode == 0, "seconds": round(seconds, 1), "steps": steps}


def cold_start() -> dict:
    """tests/bench_coldstart.py's figures, or why a run failed (the bench then fails)."""
    try:
        return bench_coldstart.measure(LAMBDA_DIR, logs=OUT / "coldstart")
    except bench_coldstart.ColdStartFailure as failure:
        return {"failed": str(failure)}


def cold_start_markdown(cold: dict) -> list:
    lines = ["## Cold start (release binary vs Python crhelper + boto3, same Runtime API)", ""]
    if "failed" in cold:
        return lines + [f"FAILED: {cold['failed']}", ""]
    versions = ", ".join(f"{name} {version}" for name, version in cold["python"].items())
    return lines + [f"Medians of {cold['runs']} fresh processes each, one Delete answered without AWS "
                    f"(spot-fallback: an ignored EventBridge event); Python side: {versions}. "
                    "Each cell: median (min-max); times from process start; RSS is VmHWM after the answer.", "",
                    bench_coldstart.table(cold), ""]


def markdown(report: dict) -> str:
    import bench_paths

    lines = ["# make bench", "", f"Run {report['when']} on {report['machine']}; "
             f"command: `{report['command']}`.", ""]
    lines += ["## Zips (release, cargo lambda)", "", "| function | MiB | of the 3 MiB budget |", "|---|---|---|"]
    lines += [f"| {name} | {z['mib']} | {z['of_budget']} |" for name, z in report["zips"].items()]
    lines += ["", "HTTP/TLS stacks linked: " + ", ".join(f"{k} {'/'.join(v)}" for k, v in report["http_stacks"].items()), ""]
    lines += cold_start_markdown(report["cold_start"])
    paths = report.get("critical_path")
    if paths:
        lines += [f"## Critical path ({LATENCY_MS} ms added per AWS call)", "",
                  "```", bench_paths.table(paths), "```", ""]
    release, debug = report["end_to_end"]["release"], report["end_to_end"]["debug"]
    lines += ["## End to end (the make demo flow)", "", "| zips | passed | steps | seconds |", "|---|---|---|---|",
              f"| release | {release['passed']} | {release['steps']} | {release['seconds']} |",
              f"| debug | {debug['passed']} | {debug['steps']} | {debug['seconds']} |",
              "", f"release / debug wall time: {report['end_to_end']['release_over_debug']}", ""]
    return "\n".join(lines)


def main() -> int:
    import platform

    import bench_paths

    OUT.mkdir(parents=True, exist_ok=True)
    report = {"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "command": f"make bench BENCH_LATENCY_MS={LATENCY_MS}",
              "zips": zips(), "http_stacks": http_stacks(), "cold_start": cold_start()}
    report["critical_path"] = bench_paths.measure(OUT / "paths", latency_ms=LATENCY_MS)
    release, debug = demo("release"), demo("debug")
    report["end_to_end"] = {"release": release, "debug": debug,
                            "release_over_debug": round(release["seconds"] / debug["seconds"], 2)}
    (OUT / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (OUT / "report.md").write_text(markdown(report))
    print(markdown(report))
    ok = release["passed"] and debug["passed"] and all(z["within_budget"] for z in report["zips"].values()) \
        and "failed" not in report["cold_start"]
    print(f"\nwrote {OUT / 'report.json'} and {OUT / 'report.md'}" + ("" if ok else " (a check above failed)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""`make soak`: the lifecycles of tests/test_soak.py for SOAK_ROUNDS rounds (default 5, a new
fault seed each round; 35% of AWS calls throttled, 5% answered 500), then the figures: operations,
faults injected by kind, retries, answers per request, resources left behind, operation times.
Bounded: the run stops after SOAK_TIMEOUT seconds (default 3600). Loopback only.

Writes target/soak/report.json (and prints the same as a table)."""
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import LOGS, ROOT, TARGET  # noqa: E402

FIGURES = LOGS / "soak-figures.jsonl"


def percentile(values: list, share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))] if ordered else 0.0


def main() -> int:
    rounds = int(os.environ.get("SOAK_ROUNDS", "5"))
    FIGURES.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "tests/test_soak.py", "-q", "-p", "no:cacheprovider",
               "-k", "lifecycle"]
    print(f"$ SOAK_ROUNDS={rounds} {' '.join(command[2:])}", flush=True)
    try:
        run = subprocess.run(command, cwd=ROOT, env=dict(os.environ, SOAK_ROUNDS=str(rounds)),
                             timeout=int(os.environ.get("SOAK_TIMEOUT", "3600")))
        passed = run.returncode == 0
    except subprocess.TimeoutExpired:
        print("soak stopped: SOAK_TIMEOUT reached", file=sys.stderr)
        passed = False
    lifecycles = [json.loads(line) for line in FIGURES.read_text().splitlines()] if FIGURES.exists() else []
    operations = [op for lc in lifecycles for op in lc["operations"]]
    faults = Counter()
    for lc in lifecycles:
        faults.update(lc["faults"])
    per_resource = defaultdict(list)
    for lc in lifecycles:
        per_resource[lc["resource"]].extend(op["seconds"] for op in lc["operations"])
    answers = Counter(op["answers"] for op in operations)
    report = {
        "rounds": rounds, "mix": {"throttle": 0.35, "server_error": 0.05}, "passed": passed,
        "lifecycles": len(lifecycles), "operations": len(operations),
        "failed": sum(op["status"] != "SUCCESS" for op in operations),
        "aws_calls": sum(lc["calls"] for lc in lifecycles),
        "faults": dict(faults), "retries": sum(lc["retries"] for lc in lifecycles),
        "answers_per_request": {str(k): v for k, v in sorted(answers.items())},
        "double_answers": sum(v for k, v in answers.items() if k > 1),
        "hung": sum(v for k, v in answers.items() if k == 0),
        "left_behind": sum(len(lc["left"]) for lc in lifecycles),
        "seconds": {name: {"p50": percentile(times, 0.5), "p99": percentile(times, 0.99), "n": len(times)}
                    for name, times in sorted(per_resource.items())},
        "command": f"make soak SOAK_ROUNDS={rounds}",
    }
    out = TARGET / "soak"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nsoak: {report['lifecycles']} lifecycles, {report['operations']} operations, "
          f"{report['failed']} FAILED, {report['aws_calls']} AWS calls")
    print(f"faults injected: {dict(faults)} (each one retried by the SDK: {report['retries']} retries)")
    print(f"answers per request: {report['answers_per_request']} · double answers {report['double_answers']}"
          f" · hung {report['hung']} · left behind after Delete {report['left_behind']}")
    print(f"{'resource':<10} {'ops':>4} {'p50 s':>7} {'p99 s':>7}")
    for name, figures in report["seconds"].items():
        print(f"{name:<10} {figures['n']:>4} {figures['p50']:>7.2f} {figures['p99']:>7.2f}")
    print(f"report: {out / 'report.json'}")
    ok = (passed and lifecycles and report["failed"] == 0 and report["double_answers"] == 0
          and report["hung"] == 0 and report["left_behind"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

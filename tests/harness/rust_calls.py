"""What the provider crates' Rust code calls: the AWS operations made on SDK clients, read from the
sources (for tests/test_iam_actions.py, whose docstring describes the method and its limits).

Comments, string literals and #[cfg(test)] items are removed before reading; the client a call is
made on comes from the declared types; the operation must exist in the SDK crate's source under
~/.cargo/registry (version from Cargo.lock). Pure Python: no cargo, no AWS.
"""
import os
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
FUNCTIONS = ROOT / "functions"

# Methods of an SDK Client that are not AWS operations.
CLIENT_METHODS = {"clone", "config", "from_conf", "new", "as_ref", "borrow", "deref", "to_owned"}

_CHAR = re.compile(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]{1,6}\}|.)|[^\\'\n])'")


def strip_rust(text: str) -> str:
    """`text` with comments and the contents of string and char literals blanked (same length, same
    line breaks), so that regexes see code only."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c in "rb" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")) and \
                (m := re.match(r"(?:br|b|r)(#*)\"", text[i:i + 300])):
            prefix = m.group(0)
            start = i + len(prefix)
            if "r" in prefix:
                end = text.find('"' + m.group(1), start)
                end = n if end < 0 else end
                blank(start, end)
                i = end + 1 + len(m.group(1))
            else:
                i = _skip_string(text, start, blank)
        elif c == '"':
            i = _skip_string(text, i + 1, blank)
        elif c == "'":
            m = _CHAR.match(text, i)
            if m:
                blank(i + 1, m.end() - 1)
                i = m.end()
            else:
                i += 1  # a lifetime
        else:
            i += 1
    return "".join(out)


def _skip_string(text, start, blank):
    j, n = start, len(text)
    while j < n and text[j] != '"':
        j += 2 if text[j] == "\\" else 1
    blank(start, min(j, n))
    return j + 1


def _item_end(code: str, start: int) -> int:
    """End of the item starting at `start`: after its `;` or its matching `}`."""
    depth, i = 0, start
    while i < len(code):
        c = code[i]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == ";" and depth == 0:
            return i + 1
        elif c == "{" and depth == 0:
            return _matching_brace(code, i) + 1
        i += 1
    return len(code)


def _matching_brace(code: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(code)):
        if code[i] == "{":
            depth += 1
        elif code[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return len(code) - 1


def without_test_items(code: str) -> tuple[str, set]:
    """`code` with every #[cfg(test)] item blanked; also the names of `#[cfg(test)] mod x;` files."""
    out, test_modules = list(code), set()
    for m in re.finditer(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]", code):
        end = _item_end(code, m.end())
        item = code[m.end():end]
        if (mod := re.match(r"\s*(?:#\s*\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", item)):
            test_modules.add(mod.group(1))
        for k in range(m.start(), end):
            if out[k] != "\n":
                out[k] = " "
    return "".join(out), test_modules


@dataclass
class SourceFile:
    path: Path
    code: str  # stripped, test items blanked

    def line(self, offset: int) -> int:
        return self.code.count("\n", 0, offset) + 1

    @property
    def rel(self) -> str:
        return str(self.path.relative_to(ROOT)) if self.path.is_relative_to(ROOT) else str(self.path)


@lru_cache(maxsize=None)
def crate_sources(crate_dir: Path) -> list[SourceFile]:
    files = []
    for path in sorted((crate_dir / "src").rglob("*.rs")):
        code, _ = without_test_items(strip_rust(path.read_text()))
        files.append(SourceFile(path, code))
    test_modules = set()
    for f in files:
        test_modules |= without_test_items(strip_rust(f.path.read_text()))[1]
    return [f for f in files if f.path.stem not in test_modules and f.path.parent.name not in test_modules]


# --- Cargo ----------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def workspace() -> dict:
    return tomllib.loads((ROOT / "Cargo.toml").read_text())


@lru_cache(maxsize=None)
def locked_versions() -> dict:
    lock = ROOT / "Cargo.lock"
    if not lock.exists():
        return {}
    versions = {}
    for package in tomllib.loads(lock.read_text()).get("package", []):
        versions.setdefault(package["name"], []).append(package["version"])
    return versions


def manifest(crate_dir: Path) -> dict:
    return tomllib.loads((crate_dir / "Cargo.toml").read_text())


def dependencies(crate_dir: Path) -> dict:
    """Normal dependencies (not dev/build) as {package name: path of a path dependency or None}."""
    data = manifest(crate_dir)
    tables = [data.get("dependencies", {})]
    tables += [t.get("dependencies", {}) for t in data.get("target", {}).values()]
    shared = workspace().get("workspace", {}).get("dependencies", {})
    result = {}
    for table in tables:
        for key, spec in table.items():
            spec = spec if isinstance(spec, dict) else {"version": spec}
            if spec.get("workspace"):
                base = shared.get(key, {})
                base = base if isinstance(base, dict) else {"version": base}
                spec = {**base, **{k: v for k, v in spec.items() if k != "workspace"}}
                path = (ROOT / spec["path"]) if "path" in spec else None
            else:
                path = (crate_dir / spec["path"]) if "path" in spec else None
            result[spec.get("package", key)] = path.resolve() if path else None
    return result


def binaries(crate_dir: Path) -> list[str]:
    data = manifest(crate_dir)
    names = [b["name"] for b in data.get("bin", []) if "name" in b]
    if not names and (crate_dir / "src" / "main.rs").exists():
        names = [data["package"]["name"]]
    return names


def crate_closure(crate_dir: Path) -> list[Path]:
    """The crate and its path dependencies, recursively."""
    seen, todo = [], [crate_dir.resolve()]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        todo += [p for p in dependencies(current).values() if p is not None]
    return seen


# --- SDK crates -----------------------------------------------------------------------------------

def _registry_roots() -> list[Path]:
    home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    return sorted((home / "registry" / "src").glob("*"))


def _version_key(version: str):
    return tuple(int(p) if p.isdigit() else 0 for p in re.split(r"[.+-]", version))


@lru_cache(maxsize=None)
def sdk_source(service: str):
    """src/ of aws-sdk-<service> (the Cargo.lock version if present), or None when not downloaded."""
    name = f"aws-sdk-{service}"
    candidates = [d for root in _registry_roots() for d in root.glob(f"{name}-[0-9]*")
                  if re.fullmatch(re.escape(name) + r"-\d[\w.+-]*", d.name) and (d / "src" / "operation").is_dir()]
    if not candidates:
        return None
    locked = locked_versions().get(name, [])
    for d in candidates:
        if d.name[len(name) + 1:] in locked:
            return d / "src"
    return max(candidates, key=lambda d: _version_key(d.name[len(name) + 1:])) / "src"


@lru_cache(maxsize=None)
def sdk_operations(service: str):
    """{snake_case operation: API name} of aws-sdk-<service>, or None when its source is absent."""
    src = sdk_source(service)
    if src is None:
        return None
    ops = {}
    for entry in (src / "operation").iterdir():
        if entry.is_dir():
            api = None
            module = src / "operation" / f"{entry.name}.rs"
            if module.exists():
                m = re.search(r'Metadata::new\(\s*"(\w+)"', module.read_text())
                api = m.group(1) if m else None
            ops[entry.name] = api or pascal(entry.name)
    return ops


@lru_cache(maxsize=None)
def sdk_waiter_operation(service: str, method: str):
    src = sdk_source(service)
    waiter = src and src / "waiters" / f"{method.removeprefix('wait_until_')}.rs"
    if not waiter or not waiter.exists():
        return None
    m = re.search(r"crate::operation::(\w+)::", waiter.read_text())
    return m.group(1) if m else None


def pascal(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


# --- Calls ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Call:
    crate: Path
    service: str  # aws-sdk-<service>
    operation: str  # snake_case
    where: str  # file:line
    receiver: str
    fn_span: tuple  # (file, start, end) of the enclosing fn body
    verified: bool  # the SDK source confirmed it is an operation


_TYPE_PATH = r"(?:::\s*)?aws_sdk_(\w+)\s*::\s*(?:client\s*::\s*)?Client\b"


def client_type_patterns(files: list[SourceFile]) -> list[tuple[str, str]]:
    """(regex of a type spelling, sdk service) pairs: the full path plus `use`/`type` aliases."""
    patterns = [(_TYPE_PATH, None)]
    for f in files:
        for m in re.finditer(r"\buse\s+aws_sdk_(\w+)\s*::\s*(?:client\s*::\s*)?Client\s*(?:as\s+(\w+)\s*)?;", f.code):
            patterns.append((r"\b" + re.escape(m.group(2) or "Client") + r"\b(?!\s*::)", m.group(1)))
        for m in re.finditer(r"\buse\s+aws_sdk_(\w+)\s*::\s*\{([^}]*)\}", f.code):
            for item in re.finditer(r"\bClient\b(?:\s+as\s+(\w+))?", m.group(2)):
                patterns.append((r"\b" + re.escape(item.group(1) or "Client") + r"\b(?!\s*::)", m.group(1)))
        for m in re.finditer(r"\buse\s+aws_sdk_(\w+)\s+as\s+(\w+)\s*;", f.code):
            patterns.append((r"\b" + re.escape(m.group(2)) + r"\s*::\s*(?:client\s*::\s*)?Client\b", m.group(1)))
        for m in re.finditer(r"\btype\s+(\w+)\s*=\s*" + _TYPE_PATH, f.code):
            patterns.append((r"\b" + re.escape(m.group(1)) + r"\b(?!\s*::)", m.group(2)))
    return patterns


def client_bindings(files: list[SourceFile]) -> dict:
    """{identifier: {service}} for fields, parameters, lets and getters whose type is an SDK Client."""
    bindings = {}
    wrapper = r"(?:&\s*(?:'\w+\s+)?(?:mut\s+)?)?(?:(?:std\s*::\s*(?:sync|rc)\s*::\s*)?(?:Arc|Rc|Box)\s*<\s*)?"
    for type_re, fixed in client_type_patterns(files):
        typed = r"(" + type_re + r")"
        forms = [
            r"\b(\w+)\s*:\s*" + wrapper + typed,  # field, parameter, `let x: T`
            r"\blet\s+(?:mut\s+)?(\w+)\s*=\s*" + typed + r"\s*::\s*(?:new|from_conf)\s*\(",
            r"\bfn\s+(\w+)\s*(?:<[^>]*>)?\s*\([^)]*\)\s*->\s*" + wrapper + typed,  # getter
        ]
        for f in files:
            for form in forms:
                for m in re.finditer(form, f.code):
                    service = fixed or re.search(r"aws_sdk_(\w+)", m.group(2)).group(1)
                    bindings.setdefault(m.group(1), set()).add(service)
    return bindings


def fn_spans(f: SourceFile) -> list[tuple[int, int]]:
    spans = []
    for m in re.finditer(r"\bfn\s+\w+", f.code):
        depth, i = 0, m.end()
        while i < len(f.code):
            c = f.code[i]
            if c in "([":
                depth += 1
            elif c in ")]":
                depth -= 1
            elif c == ";" and depth == 0:
                break
            elif c == "{" and depth == 0:
                spans.append((i, _matching_brace(f.code, i)))
                break
            i += 1
    return spans


def _receiver(code: str, dot: int) -> str:
    """The last segment of the expression a `.method(` is called on ('' if it is not a path/getter)."""
    before = code[max(0, dot - 400):dot].rstrip()
    while True:
        m = re.search(r"(\w+)\s*(\(\s*\))?$", before)
        if not m:
            return ""
        if m.group(1) in CLIENT_METHODS and m.group(2):  # x.clone().op()
            before = before[:m.start()].rstrip()
            if before.endswith("."):
                before = before[:-1].rstrip()
                continue
            return ""
        return m.group(1) + ("()" if m.group(2) else "")


def _statement_sends(code: str, start: int) -> bool:
    """Whether the statement from `start` goes on to `.send(` (or a paginator)."""
    depth, i = 0, start
    while i < len(code):
        c = code[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                break
        elif c == ";" and depth == 0:
            break
        i += 1
    return bool(re.search(r"\.\s*(?:send|into_paginator|customize)\s*\(", code[start:i]))


@lru_cache(maxsize=None)
def crate_calls(crate_dir: Path) -> tuple[list[Call], list[str]]:
    """The SDK calls one crate's own src/ makes, and the problems met (unattributable calls...)."""
    files = crate_sources(crate_dir)
    bindings = client_bindings(files)
    dep_services = [d.removeprefix("aws-sdk-") for d in dependencies(crate_dir) if d.startswith("aws-sdk-")]
    any_op = {}
    for service in dep_services:
        for op in sdk_operations(service) or {}:
            any_op.setdefault(op, set()).add(service)
    calls, problems = [], []
    for f in files:
        spans = fn_spans(f)
        for m in re.finditer(r"\.\s*(\w+)\s*(?:::\s*<[^>]*>\s*)?\(", f.code):
            method = m.group(1)
            receiver = _receiver(f.code, m.start())
            name = receiver.removesuffix("()")
            where = f"{f.rel}:{f.line(m.start(1))}"
            inside = [s for s in spans if s[0] <= m.start() <= s[1]]
            span = (f.rel, *min(inside, key=lambda s: s[1] - s[0])) if inside else (f.rel, 0, len(f.code))
            services = bindings.get(name) if name and name not in ("self", "Self") else None
            if not services:
                if method in any_op and name not in ("", "self", "Self") and _statement_sends(f.code, m.end() - 1):
                    problems.append(f"{where}: cannot tell which client `{receiver}.{method}()` is called on "
                                    f"(declare it with an aws_sdk_*::Client type)")
                continue
            if method in CLIENT_METHODS:
                continue
            resolved = []
            for service in sorted(services):
                ops = sdk_operations(service)
                op = method
                if method.startswith("wait_until_") and ops is not None:
                    op = sdk_waiter_operation(service, method)
                if ops is None:
                    resolved.append(Call(crate_dir, service, method, where, receiver, span, verified=False))
                elif op in ops:
                    resolved.append(Call(crate_dir, service, op, where, receiver, span, verified=True))
            if len(resolved) == 1:
                calls.append(resolved[0])
            elif len(resolved) > 1:
                problems.append(f"{where}: `{receiver}` is declared as a client of several SDKs "
                                f"({', '.join(sorted(services))}), each having `{method}`; rename one")
    return calls, problems

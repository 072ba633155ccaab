"""The package's shape: no import circle among vaekit's modules, no rule that tests a part by its name, and the
configuration a plain description."""

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "vaekit"


def _module(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path) -> set[str]:
    """vaekit modules imported when ``path`` is imported (module level, not inside functions)."""
    tree = ast.parse(path.read_text())
    here = _module(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    out = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("vaekit"):
                out.add(target)
                for alias in node.names:  # "from . import fitted" imports a module
                    if (SRC.parent / (target.replace(".", "/") + "/" + alias.name + ".py")).exists():
                        out.add(f"{target}.{alias.name}")
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("vaekit")}
    return out


def test_no_import_circle_among_the_modules():
    modules = {_module(p): p for p in SRC.rglob("*.py")}
    graph = {m: {t for t in _top_level_imports(p) if t in modules and t != m} for m, p in modules.items()}
    # importing a package's submodule runs the package first: a submodule importing its own package's
    # __init__ is how Python works, not a circle of ours
    for m in graph:
        graph[m] = {t for t in graph[m] if not m.startswith(t + ".")}
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_rules_test_capabilities_not_names():
    pattern = re.compile(r"(arch|variant|prior|objective) *(==|!=) *['\"]")
    hits = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits


def test_the_configuration_stays_a_plain_description():
    assert len((SRC / "config.py").read_text().splitlines()) <= 300

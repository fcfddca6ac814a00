"""The package's layout rules (issue 13): no import cycles between singvc's modules, no
function-level imports of singvc modules (the way cycles used to be hidden), no module importing
another's underscore names, and the library never imports the CLI."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "singvc"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(path: Path) -> list[tuple[str, list[str], bool, int]]:
    """``(module imported, names, at module level, line)`` for every import of a singvc module in ``path``."""
    tree = ast.parse(path.read_text())
    module, is_package = module_name(path), path.name == "__init__.py"
    found = []
    top = set()
    for node in tree.body:
        top.add(id(node))
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks are not run
            continue
        if isinstance(node, ast.Try):
            for sub in node.body + [h for handler in node.handlers for h in handler.body]:
                top.add(id(sub))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = resolve(module, is_package, node)
            if target == "singvc" or target.startswith("singvc."):
                names = [a.name for a in node.names]
                # "from . import x" imports the submodule x
                if target in ("singvc", module if is_package else "") and all(
                        (PACKAGE / f"{n}.py").exists() or (PACKAGE / n).is_dir() for n in names):
                    for n in names:
                        found.append((f"singvc.{n}", [], id(node) in top, node.lineno))
                else:
                    found.append((target, names, id(node) in top, node.lineno))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("singvc"):
                    found.append((a.name, [], id(node) in top, node.lineno))
    return found


def type_checking_lines(path: Path) -> set[int]:
    lines = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in ast.walk(node):
                if hasattr(sub, "lineno"):
                    lines.add(sub.lineno)
    return lines


FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(p): p for p in FILES}


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for m, path in MODULES.items():
        skip = type_checking_lines(path)
        for target, _, top, line in imports(path):
            if line in skip or target == m:
                continue
            # importing singvc.a.b runs singvc.a (its __init__) first
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in MODULES and target != "singvc" and target != m:
                edges[m].add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_function_level_imports_of_singvc_modules():
    """Every import of a singvc module is at the top of its module (heavy third-party packages may
    still be imported where they are needed)."""
    late = [f"{module_name(p)}:{line} imports {target}" for p in FILES
            for target, _, top, line in imports(p) if not top and line not in type_checking_lines(p)]
    assert not late, "\n".join(late)


def test_no_module_imports_another_modules_underscore_names():
    bad = [f"{module_name(p)}:{line} imports {target}.{name}" for p in FILES
           for target, names, _, line in imports(p) for name in names
           if name.startswith("_") and not name.startswith("__")]
    assert not bad, "\n".join(bad)


def test_the_library_never_imports_the_cli():
    bad = [f"{module_name(p)}:{line}" for p in FILES if p.name not in ("cli.py", "__main__.py")
           for target, names, _, line in imports(p) if target == "singvc.cli" or (target == "singvc" and "cli" in names)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", sorted(set(MODULES) - {"singvc.__main__"}))
def test_every_module_imports_on_its_own(module):
    """Each module imports cleanly in a fresh interpreter (no hidden order dependence)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                          cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_subpackage_is_installed():
    """pyproject lists its packages by hand: a new subpackage (a converter backend, say) must be
    listed, or a non-editable install would lack it."""
    from singvc.config import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    assert found - listed == set()

"""The package's structure, read from its own source: imports point down the layers, without cycles; the run
directory's file names are spelled in one module; the CLI's help and ``study status`` start without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "pvm_mbrl"

# Lowest first. A module may import from its own layer or a lower one; a module not listed fails the test, so a new
# part of the package must be given its place here.
LAYERS = [
    {"pvm_mbrl", "pvm_mbrl.atomic", "pvm_mbrl.locks", "pvm_mbrl.rundir", "pvm_mbrl.nets", "pvm_mbrl.checkpoint",
     "pvm_mbrl.resources", "pvm_mbrl.errors", "pvm_mbrl.memory"},
    {"pvm_mbrl.dreamer", "pvm_mbrl.envs", "pvm_mbrl.replay", "pvm_mbrl.encoders"},
    {"pvm_mbrl.rollout"},
    {"pvm_mbrl.training", "pvm_mbrl.evaluation"},
    {"pvm_mbrl.analysis"},
    {"pvm_mbrl.study"},
    {"pvm_mbrl.cli"},
]
RUN_DIR_NAMES = ("config.yaml", "status.json", "metrics.jsonl", "checkpoint.pt", "job.json", "job.log",
                 "episodes.csv", "analysis.json", "samples_", "evaluations")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Every package module ``name`` imports, at module level or inside functions."""
    found = set()
    package = name if name in known and any(k.startswith(name + ".") for k in known) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t.startswith("pvm_mbrl") and t != name}
    return found


def layer_of(module: str) -> int:
    for index, layer in enumerate(LAYERS):
        if any(module == part or module.startswith(part + ".") for part in layer if part != "pvm_mbrl"):
            return index
    if module == "pvm_mbrl":
        return 0
    raise AssertionError(f"{module} has no layer in tests/test_structure.py's LAYERS")


def import_graph() -> dict[str, set[str]]:
    trees = modules()
    known = set(trees)
    return {name: imported_modules(name, tree, known) for name, tree in trees.items()}


def test_imports_point_down_the_layers():
    upward = [f"{name} (layer {layer_of(name)}) imports {dep} (layer {layer_of(dep)})"
              for name, deps in import_graph().items() for dep in sorted(deps) if layer_of(dep) > layer_of(name)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle_between_modules_or_parts():
    graph = import_graph()

    def part(module: str) -> str:
        return ".".join(module.split(".")[:2])

    parts: dict[str, set[str]] = {}
    for name, deps in graph.items():
        parts.setdefault(part(name), set()).update(part(d) for d in deps if part(d) != part(name))
    for edges in (graph, parts):
        cycle = find_cycle(edges)
        assert cycle is None, " -> ".join(cycle)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(edges):
        if root in state:
            continue
        path, stack = [root], [iter(sorted(edges.get(root, ())))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(edges.get(nxt, ()))))
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a"}}) is None


def string_literals(tree: ast.Module) -> list[tuple[int, str]]:
    """String constants that are not documentation (a string standing alone as a statement: docstrings)."""
    docstrings = {id(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_run_directory_file_names_are_spelled_only_in_rundir():
    spelled = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, text in string_literals(ast.parse(path.read_text())):
            for file_name in RUN_DIR_NAMES:
                if file_name in text:
                    spelled.setdefault(file_name, []).append(f"{path.relative_to(PACKAGE)}:{line}")
    outside = {name: places for name, places in spelled.items() if any(not p.startswith("rundir.py") for p in places)}
    assert not outside, outside
    assert set(spelled) == set(RUN_DIR_NAMES)  # the test reads literals at all


def torch_imported(code: str, tmp_path: Path) -> tuple[bool, str]:
    result = subprocess.run([sys.executable, "-c", "import sys\n" + code + "\nprint('TORCH', 'torch' in sys.modules)"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return "TORCH True" in result.stdout, result.stdout


def test_help_starts_without_torch(tmp_path):
    imported, out = torch_imported("from pvm_mbrl.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
                                   "    pass", tmp_path)
    assert "usage" in out and not imported


@pytest.mark.slow
def test_study_status_starts_without_torch(tmp_path):
    from pvm_mbrl.study.plan import make_plan
    from pvm_mbrl.study.state import write_plan

    study = tmp_path / "study"
    plan, _ = make_plan("quick", [], study)
    study.mkdir(parents=True, exist_ok=True)
    write_plan(study, plan.to_dict())
    imported, out = torch_imported(f"from pvm_mbrl.cli import main\nassert main(['study', 'status', {str(study)!r}]) "
                                   f"== 0", tmp_path)
    assert "pending" in out and not imported

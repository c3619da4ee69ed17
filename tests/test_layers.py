"""The package's layers, read from its source: every ``import`` statement of every module, the ones inside
functions included, so that a cycle or an upward import cannot hide behind a late import.

Layers, lowest first. A module may import from its own layer and from the layers below it, never from a
layer above, and the module graph has no cycle at all (inside a layer neither).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ftrecipes"

LAYERS = [
    "ftrecipes.config",  # recipes, durations, timeline, schedules, scaling, priors, explain: no torch
    "ftrecipes.report",  # figures and a finished run's files
    "ftrecipes.data",  # loading, streaming, tasks, metrics
    "ftrecipes.models",  # names and sources, build, LoRA, the small CNN
    "ftrecipes.testing",  # tiny models and data for tests and smoke runs
    "ftrecipes.training",  # Trainer integration, callbacks, optimizer groups, precision, preemption
    "ftrecipes.tuning",  # the LR range test
    "ftrecipes.job",  # the main job: parse, check, run
    "ftrecipes.baselines",  # baseline cards
    "ftrecipes.sweeps",  # sweeps over the job
    "ftrecipes.train",  # the main job as a module, for launchers (python -m ftrecipes.train)
    "ftrecipes.cli",  # the ftrecipes command
    "ftrecipes.__main__",
    "ftrecipes",  # the lazy public namespace, above everything it re-exports
]
# What the config layer may import besides the standard library and itself.
CONFIG_THIRD_PARTY = {"yaml"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """Every module (of this package or not) that ``name``'s source imports, at any depth of its code."""
    path = MODULES[name]
    return imports_in(path.read_text(), name if path.name == "__init__.py" else name.rpartition(".")[0])


def imports_in(source: str, package: str) -> set[str]:
    """The modules ``source`` (a module of ``package``) imports: top-level, in functions, under ``if``."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # "from pkg import module" imports that module
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return targets


def _internal(target: str) -> str | None:
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _layer(name: str) -> int:
    best = max((prefix for prefix in LAYERS if name == prefix or name.startswith(prefix + ".")), key=len)
    return LAYERS.index(best)


GRAPH = {name: {t for t in map(_internal, _imports(name)) if t and t != name} for name in MODULES}


def test_every_module_belongs_to_a_layer():
    loose = [name for name in MODULES if _layer(name) == LAYERS.index("ftrecipes") and name != "ftrecipes"]
    assert not loose, f"modules outside every layer (add them to a layer subpackage): {loose}"


def test_no_module_imports_from_a_higher_layer():
    upward = sorted(
        f"{name} -> {target}" for name, targets in GRAPH.items() for target in targets if _layer(target) > _layer(name)
    )
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_no_import_cycles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(MODULES):
        if name not in index:
            visit(name)
    assert not cycles, f"import cycles: {cycles}"


def test_config_layer_imports_no_third_party_library_but_yaml():
    import sys

    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    offending = sorted(
        f"{name} imports {target}"
        for name in MODULES
        if _layer(name) == 0
        for target in _imports(name)
        if target.split(".")[0] not in stdlib | CONFIG_THIRD_PARTY and not target.startswith("ftrecipes")
    )
    assert not offending, "the config layer must stay light:\n" + "\n".join(offending)


def test_the_checker_sees_late_and_relative_imports():
    source = "import os\nif True:\n    import json\ndef f():\n    from ..job.run import run\n    from . import recipe\n"
    assert imports_in(source, "ftrecipes.config") == {"os", "json", "ftrecipes.job.run", "ftrecipes.config.recipe"}

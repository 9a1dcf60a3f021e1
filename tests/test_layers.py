"""Imports point one way (the README's Layout): which layer may import which, no cycles, and each
service's SDK imported only by its adapter.

Every import counts, those inside functions too: a lazy import hides a dependency from a reader
but not from DVC's stage deps (`tests/test_dvc_deps.py` follows them) nor from a cycle. An edge
goes to the module an import names (`from a.b import c`: `a.b`, and `a.b.c` when that is a
module), not to the packages above it, whose `__init__` Python runs first but which name nothing
back here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from tests.test_dvc_deps import (
    PROJECT_PACKAGES,
    imported_names,
    is_trivial,
    load_yaml,
    module_file,
    parse_source,
    stage_modules,
    write_tree,
)

REPO = Path(__file__).resolve().parents[1]

# Modules that combine the core with an adapter (MLflow) for one use; nothing in the core or
# the adapters imports them.
APPLICATION = ("esgar.promotion.decide", "esgar.promotion.leaderboard", "esgar.inference.publish",
               "esgar.inference.pyfunc")

# layer -> the layers it may import (itself included where listed)
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},                                     # esgar's library: no adapter
    "adapter": {"core", "adapter"},                       # esgar.integrations.*
    "application": {"core", "adapter", "application"},
    "params": {"core", "params"},                         # pipeline.params.*: section models
    "stage support": {"core"},                            # pipeline.common
    "stage": {"core", "adapter", "application", "params", "stage support"},  # DVC runs these
    "flows": {"core", "adapter", "application", "params", "flows"},
    "entry": {"core", "adapter", "application"},          # esgar.cli
}

# third-party package -> the only project modules that may import it (prefixes)
SDK_OWNERS: dict[str, tuple[str, ...]] = {
    "mlflow": ("esgar.integrations.tracking", "esgar.integrations.registry",
               "esgar.integrations.store_copy", "esgar.inference.pyfunc"),
    "label_studio_sdk": ("esgar.integrations.labelstudio",),
    "prefect": ("flows",),
    "dvc": (),
}


def layer_of(module: str, stages: Iterable[str]) -> str:
    """The layer of a project module; `stages`: the modules dvc.yaml runs."""
    if module == "esgar.cli":
        return "entry"
    if module == "flows" or module.startswith("flows."):
        return "flows"
    if module in set(stages):
        return "stage"
    if module == "pipeline.params" or module.startswith("pipeline.params."):
        return "params"
    if module.startswith("pipeline"):
        return "stage support"
    if module in APPLICATION:
        return "application"
    if module.startswith("esgar.integrations"):
        return "adapter"
    return "core"


def project_modules(repo: Path) -> dict[str, str]:
    """Dotted name -> repo-relative file, for every Python file of the project packages."""
    out = {}
    for pkg in PROJECT_PACKAGES:
        for path in sorted((repo / pkg).rglob("*.py")):
            rel = path.relative_to(repo)
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = rel.as_posix()
    return out


def _runs_code(repo: Path, module: str) -> bool:
    """`module` is a project module that runs something (not an empty or docstring-only
    package `__init__`, which imports nothing and so can close no cycle)."""
    rel = module_file(repo, module)
    if rel is None:
        return False
    return not (rel.endswith("__init__.py") and is_trivial(parse_source(
        (repo / rel).read_text(encoding="utf-8"))))


def import_graph(repo: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(project module -> project modules it imports, project module -> top-level third-party
    packages it imports)."""
    graph, external = {}, {}
    for module, rel in project_modules(repo).items():
        source = (repo / rel).read_text(encoding="utf-8")
        names = imported_names(source, module, rel.endswith("__init__.py"))
        graph[module] = {n for n in names if n != module and _runs_code(repo, n)}
        external[module] = {n.split(".")[0] for n in names
                            if n.split(".")[0] not in PROJECT_PACKAGES}
    return graph, external


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def violations(repo: Path, stages: Iterable[str]) -> list[str]:
    """Every forbidden import, cycle and SDK import outside its owner, one line each."""
    stages = list(stages)
    graph, external = import_graph(repo)
    problems = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module, stages)
        for target in sorted(targets):
            theirs = layer_of(target, stages)
            if target in stages and module not in stages:
                problems.append(f"{module} imports the stage script {target} (only DVC runs "
                                "stage scripts)")
            elif theirs not in ALLOWED[mine]:
                problems.append(f"{module} ({mine}) imports {target} ({theirs}); {mine} "
                                f"modules may import only {', '.join(sorted(ALLOWED[mine]))}")
    for component in cycles(graph):
        problems.append("import cycle: " + " <-> ".join(component))
    for module, packages in sorted(external.items()):
        for package, owners in SDK_OWNERS.items():
            if package in packages and not module.startswith(owners or ("\0",)):
                who = ", ".join(owners) or "no project module"
                problems.append(f"{module} imports {package}, which only {who} may import")
    return problems


def repo_stages() -> list[str]:
    return list(stage_modules(load_yaml(REPO / "dvc.yaml")).values())


def test_imports_point_one_way_in_the_repository():
    problems = violations(REPO, repo_stages())
    assert not problems, "\n".join(problems)


def test_every_stage_of_dvc_yaml_is_a_stage_layer_module():
    stages = repo_stages()
    assert "pipeline.train" in stages and "pipeline.push" in stages
    assert layer_of("pipeline.push", stages) == "stage"
    assert layer_of("pipeline.params.model", stages) == "params"
    assert layer_of("esgar.integrations.registry", stages) == "adapter"
    assert layer_of("esgar.inference.predict", stages) == "core"


# --- the checker, on a small tree whose answers are known ------------------------------------

TREE = {
    "esgar/__init__.py": "",
    "esgar/core.py": "import numpy\n",
    "esgar/other.py": "from esgar import core\n",
    "esgar/integrations/__init__.py": "",
    "esgar/integrations/tracking.py": "import mlflow\n\nfrom esgar import core\n",
    "pipeline/__init__.py": "",
    "pipeline/common.py": "from esgar import core\n",
    "pipeline/params/__init__.py": "",
    "pipeline/params/base.py": "from esgar import core\n",
    "pipeline/train.py": ("from esgar.integrations import tracking\nfrom pipeline import common\n"
                          "from pipeline.params import base\n"),
    "pipeline/push.py": "from pipeline.params import base\n",
    "flows/__init__.py": "",
    "flows/retrain.py": "import prefect\n\nfrom pipeline.params.base import load\n",
}
STAGES = ["pipeline.train", "pipeline.push"]


def test_a_clean_tree_passes(tmp_path):
    assert violations(write_tree(tmp_path, TREE), STAGES) == []


def test_a_lazy_cycle_is_found(tmp_path):
    tree = {**TREE, "esgar/core.py": "def f():\n    from esgar import other\n    return other\n"}
    problems = violations(write_tree(tmp_path, tree), STAGES)
    assert problems == ["import cycle: esgar.core <-> esgar.other"]


def test_the_core_importing_an_adapter_is_refused(tmp_path):
    tree = {**TREE, "esgar/other.py": "def f():\n    from esgar.integrations import tracking\n"}
    problems = violations(write_tree(tmp_path, tree), STAGES)
    assert len(problems) == 1 and "esgar.other (core) imports esgar.integrations.tracking" \
        in problems[0]


def test_importing_a_stage_script_is_refused(tmp_path):
    tree = {**TREE, "flows/retrain.py": "import prefect\n\nfrom pipeline.push import main\n"}
    problems = violations(write_tree(tmp_path, tree), STAGES)
    assert problems == ["flows.retrain imports the stage script pipeline.push (only DVC runs "
                        "stage scripts)"]


def test_an_sdk_outside_its_adapter_is_refused(tmp_path):
    tree = {**TREE, "esgar/other.py": "import mlflow\n", "pipeline/push.py": "import prefect\n"}
    problems = violations(write_tree(tmp_path, tree), STAGES)
    assert sorted(problems) == [
        "esgar.other imports mlflow, which only esgar.integrations.tracking, "
        "esgar.integrations.registry, esgar.integrations.store_copy, esgar.inference.pyfunc "
        "may import",
        "pipeline.push imports prefect, which only flows may import"]


@pytest.mark.parametrize("graph,expected", [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}}, [["a", "b", "c"]]),
])
def test_cycles(graph, expected):
    assert cycles(graph) == expected

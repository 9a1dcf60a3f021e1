"""dvc.yaml must list every project code file a stage's command imports.

DVC does not follow Python imports: a code file missing from a stage's `deps` means editing it
does not rerun the stage. The imports are found statically with `ast` (nothing is imported), so
imports done through strings (`importlib.import_module("...")`) are not followed, on purpose.
"""

from __future__ import annotations

import ast
import copy
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("esgar", "pipeline", "flows")
STAGE_CMD = re.compile(r"^\s*python3?\s+-m\s+(pipeline(?:\.\w+)+)(?:\s|$)")
TEMPLATE = re.compile(r"\$\{\s*([\w.-]+)\s*\}")


# --- imports --------------------------------------------------------------------------------


def module_file(repo: Path, module: str) -> str | None:
    """Dotted `module` -> its repo-relative POSIX file (`a/b/__init__.py` or `a/b.py`, the
    package first, as Python looks), or None when it is not a project module file of `repo`."""
    parts = module.split(".")
    if parts[0] not in PROJECT_PACKAGES or not all(p.isidentifier() for p in parts):
        return None
    base = "/".join(parts)
    for rel in (f"{base}/__init__.py", f"{base}.py"):
        if (repo / rel).is_file():
            return rel
    return None


def is_trivial(tree: ast.Module) -> bool:
    """True when the parsed module `tree` runs nothing: it is empty or holds only a docstring."""
    body = tree.body
    if not body:
        return True
    first = body[0]
    is_doc = (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )
    return len(body) == 1 and is_doc


def parse(repo: Path, rel: str) -> ast.Module:
    """The syntax tree of the repo-relative file `rel` (shared: do not modify it)."""
    return parse_source((repo / rel).read_text(encoding="utf-8"))


@functools.cache
def parse_source(source: str) -> ast.Module:
    """The syntax tree of Python `source`; cached on the text, so an edited file is parsed anew."""
    return ast.parse(source)


def from_base(node: ast.ImportFrom, package: str) -> str | None:
    """The absolute module that `from <...> import` `node` imports from, written in `package`
    (the package the file belongs to); None for a relative import beyond the top package."""
    if node.level == 0:
        return node.module
    parts = package.split(".") if package else []
    keep = len(parts) - (node.level - 1)
    if keep <= 0:
        return None
    return ".".join(parts[:keep] + ([node.module] if node.module else []))


@functools.cache
def imported_names(source: str, module: str, is_package: bool) -> tuple[str, ...]:
    """Dotted names that module `module`, of text `source`, imports anywhere in its code, function
    bodies included. `from a import b` gives `a` and `a.b`, as `b` may be a submodule."""
    package = module if is_package else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(parse_source(source)):
        if isinstance(node, ast.Import):
            names += (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (base := from_base(node, package)):
            names.append(base)
            names += (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return tuple(names)


def prefixes(module: str) -> Iterator[str]:
    """`a.b.c` -> `a`, `a.b`, `a.b.c`: importing a module first runs each package above it."""
    parts = module.split(".")
    for end in range(1, len(parts) + 1):
        yield ".".join(parts[:end])


def import_closure(repo: Path, module: str) -> set[str]:
    """Repo-relative POSIX paths of the project files that running `module` executes: the module
    itself and every project module it imports, transitively, with the packages above each.
    An `__init__.py` that is empty or holds only a docstring is left out (it runs nothing)."""
    closure: set[str] = set()
    seen: set[str] = set()
    todo = [module]
    while todo:
        for name in prefixes(todo.pop()):
            if name in seen:
                continue
            seen.add(name)
            rel = module_file(repo, name)
            if rel is None:
                continue
            source = (repo / rel).read_text(encoding="utf-8")
            is_package = rel.endswith("/__init__.py")
            if is_package and is_trivial(parse_source(source)):
                continue
            closure.add(rel)
            todo.extend(imported_names(source, name, is_package))
    return closure


# --- dvc.yaml -------------------------------------------------------------------------------


@dataclass
class StageProblems:
    """What is wrong with one stage's code deps: `missing` are files its command runs that no
    dep covers (lines to add), `unused` maps each dep to remove to the reason, `errors` are
    problems no dep line fixes (the stage's module has no file)."""

    missing: list[str] = field(default_factory=list)
    unused: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unused or self.errors)


def resolve_templates(text: str, params: Mapping[str, Any]) -> str:
    """`text` with each `${a.b}` replaced by params[a][b]; lookups that fail are left as is."""

    def lookup(match: re.Match[str]) -> str:
        value: Any = params
        for key in match.group(1).split("."):
            if not isinstance(value, Mapping) or key not in value:
                return match.group(0)
            value = value[key]
        return str(value)

    return TEMPLATE.sub(lookup, text)


def is_code_dep(path: str) -> bool:
    """True when the dep `path` (normalised) lies in a project package."""
    return any(path == pkg or path.startswith(f"{pkg}/") for pkg in PROJECT_PACKAGES)


def dep_path(dep: str | Mapping[str, Any], params: Mapping[str, Any]) -> str:
    """The normalised path of one `deps` entry (a string, or a one-key mapping), templates
    resolved from `params`."""
    raw = dep if isinstance(dep, str) else next(iter(dep))
    return PurePosixPath(resolve_templates(raw, params)).as_posix()


def code_deps(stage: Mapping[str, Any], params: Mapping[str, Any]) -> list[str]:
    """The deps of `stage` that lie in a project package; ones still templated are dropped."""
    paths = (dep_path(dep, params) for dep in stage.get("deps") or [])
    return [path for path in paths if is_code_dep(path) and "${" not in path]


def stage_modules(dvc: Mapping[str, Any]) -> dict[str, str]:
    """Stage name -> module its cmd runs, for the stages in `dvc` (dvc.yaml, parsed) whose cmd is
    `python -m pipeline.<name>` (flags after the module are ignored)."""
    modules: dict[str, str] = {}
    for name, stage in (dvc.get("stages") or {}).items():
        cmds = stage.get("cmd", [])
        for cmd in [cmds] if isinstance(cmds, str) else cmds:
            if match := STAGE_CMD.match(cmd):
                modules[name] = match.group(1)
                break
    return modules


def python_files(repo: Path, directory: str) -> set[str]:
    """Repo-relative POSIX paths of the .py files under the repo-relative `directory`."""
    return {path.relative_to(repo).as_posix() for path in (repo / directory).rglob("*.py")}


def check_stage(repo: Path, module: str, deps: list[str]) -> StageProblems:
    """Compare the files that running `module` executes with the code `deps` of its stage.

    A directory dep covers the .py files under it, and must be fully used: each non-trivial .py
    under it must be executed, else it is over-broad (reported unused, so covering nothing).
    Non-Python files are not compared (data read at runtime)."""
    closure = import_closure(repo, module)
    problems = StageProblems()
    covered: set[str] = set()
    for dep in deps:
        path = repo / dep
        if path.is_dir():
            unused = sorted(
                rel
                for rel in python_files(repo, dep)
                if rel not in closure and not is_trivial(parse(repo, rel))
            )
            if unused:
                problems.unused[dep] = f"over-broad: {', '.join(unused)} not imported"
            else:
                covered |= python_files(repo, dep)
        elif not path.exists():
            problems.unused[dep] = "no such file or directory"
        elif dep.endswith(".py"):
            if dep in closure:
                covered.add(dep)
            else:
                problems.unused[dep] = "not imported"
    problems.missing = sorted(closure - covered)
    if module_file(repo, module) is None:
        problems.errors.append(f"its cmd runs {module}, which has no file in the repo")
    return problems


def check_dvc(
    repo: Path, dvc: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, StageProblems]:
    """Stage name -> its problems, for each `python -m pipeline.<name>` stage of `dvc` (dvc.yaml,
    parsed), with `params` (params.yaml, parsed) resolving `${...}` in deps."""
    return {
        name: check_stage(repo, module, code_deps(dvc["stages"][name], params))
        for name, module in stage_modules(dvc).items()
    }


def format_problems(problems: Mapping[str, StageProblems]) -> str:
    """A readable report of every stage's problems, with the exact dvc.yaml lines to change."""
    lines = ["dvc.yaml code deps differ from what the stages import (DVC does not follow imports):"]
    for name, stage in problems.items():
        if not stage:
            continue
        lines.append(f"stage {name!r} (stages.{name}.deps):")
        lines += [f"  error: {error}" for error in stage.errors]
        if stage.missing:
            lines.append("  missing: imported but not covered by any dep; add these lines:")
            lines += [f"      - {rel}" for rel in stage.missing]
        if stage.unused:
            lines.append("  not imported: declared but not used; remove these lines:")
            lines += [f"      - {dep}    # {why}" for dep, why in stage.unused.items()]
    return "\n".join(lines)


def load_yaml(path: Path) -> dict[str, Any]:
    """The parsed YAML file `path` ({} when empty or absent)."""
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def corrected(repo: Path, dvc: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `dvc` where each checked stage's code deps are exactly its import closure."""
    fixed = copy.deepcopy(dict(dvc))
    for name, module in stage_modules(dvc).items():
        stage = fixed["stages"][name]
        kept = [dep for dep in stage.get("deps") or [] if not is_code_dep(dep_path(dep, params))]
        stage["deps"] = kept + sorted(import_closure(repo, module))
    return fixed


# --- tests on the real repository ----------------------------------------------------------


def test_each_stage_declares_exactly_the_code_it_imports() -> None:
    dvc, params = load_yaml(REPO / "dvc.yaml"), load_yaml(REPO / "params.yaml")
    problems = check_dvc(REPO, dvc, params)
    assert problems, "no `python -m pipeline.<name>` stage found in dvc.yaml"
    if any(problems.values()):
        pytest.fail(format_problems(problems), pytrace=False)


def test_checker_catches_a_removed_and_an_unrelated_dep() -> None:
    dvc, params = load_yaml(REPO / "dvc.yaml"), load_yaml(REPO / "params.yaml")
    fixed = corrected(REPO, dvc, params)
    assert not any(check_dvc(REPO, fixed, params).values())

    modules = stage_modules(fixed)
    name = "train" if "train" in modules else min(modules)
    closure = import_closure(REPO, modules[name])
    own = module_file(REPO, modules[name])
    removed = min(closure - {own}, default=own)
    fixed["stages"][name]["deps"].remove(removed)
    problems = check_dvc(REPO, fixed, params)
    assert problems[name].missing == [removed] and not problems[name].unused
    assert removed in format_problems(problems)
    assert not any(stage for other, stage in problems.items() if other != name)

    project = set().union(*(python_files(REPO, pkg) for pkg in PROJECT_PACKAGES))
    unrelated = sorted(rel for rel in project - closure if not is_trivial(parse(REPO, rel)))
    assert unrelated, "every project file is imported by the stage: nothing unrelated to add"
    fixed["stages"][name]["deps"].append(unrelated[0])
    problems = check_dvc(REPO, fixed, params)
    assert problems[name].unused == {unrelated[0]: "not imported"}


# --- tests on a tiny fake package tree ------------------------------------------------------


FAKE_TREE = {
    "esgar/__init__.py": "",
    "esgar/core/__init__.py": '"""Only a docstring."""\n',
    "esgar/core/a.py": "from . import b\nfrom .sub import c\n",
    "esgar/core/b.py": "def f():\n    import esgar.lazy\n    return esgar.lazy\n",
    "esgar/core/sub/__init__.py": "from esgar.core.sub.d import X\n",
    "esgar/core/sub/c.py": "from ...util import helper\nimport esgar.core.a\n",
    "esgar/core/sub/d.py": "X = 1\n",
    "esgar/lazy.py": "import importlib\n\nHIDDEN = importlib.import_module('esgar.hidden')\n",
    "esgar/hidden.py": "Y = 2\n",
    "esgar/util.py": "import os\n\nimport numpy\n\nfrom esgar import gone\n\nhelper = os.sep\n",
    "esgar/unused.py": "Z = 3\n",
    "esgar/models/__init__.py": "",
    "esgar/models/net.py": "W = 4\n",
    "esgar/models/words.json": "{}\n",
    "pipeline/run.py": "from esgar.core import a\nfrom esgar.models import net\n",
}


def write_tree(root: Path, files: Mapping[str, str]) -> Path:
    """Write `files` (repo-relative path -> text) under `root`; returns `root`."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def test_closure_follows_relative_submodule_and_lazy_imports(tmp_path: Path) -> None:
    repo = write_tree(tmp_path, FAKE_TREE)
    assert import_closure(repo, "esgar.core.a") == {
        "esgar/core/a.py",
        "esgar/core/b.py",  # from . import b: a submodule
        "esgar/core/sub/__init__.py",  # runs before sub.c, and imports sub.d
        "esgar/core/sub/c.py",
        "esgar/core/sub/d.py",
        "esgar/lazy.py",  # imported inside a function
        "esgar/util.py",  # from ...util, three levels up
    }


def test_closure_skips_trivial_inits_string_imports_and_outside_modules(tmp_path: Path) -> None:
    repo = write_tree(tmp_path, FAKE_TREE)
    closure = import_closure(repo, "pipeline.run")
    assert "esgar/__init__.py" not in closure and "esgar/core/__init__.py" not in closure
    assert "esgar/models/__init__.py" not in closure
    assert "esgar/hidden.py" not in closure  # importlib.import_module("esgar.hidden")
    assert "esgar/unused.py" not in closure
    assert all(rel.startswith(("esgar/", "pipeline/")) for rel in closure)  # no os, numpy


def test_closure_includes_a_nontrivial_init_of_an_imported_package(tmp_path: Path) -> None:
    repo = write_tree(tmp_path, {**FAKE_TREE, "esgar/__init__.py": '"""Doc."""\nV = "1"\n'})
    assert "esgar/__init__.py" in import_closure(repo, "esgar.core.sub.d")
    assert "esgar/core/__init__.py" not in import_closure(repo, "esgar.core.sub.d")


def test_checker_handles_directories_templates_and_flags(tmp_path: Path) -> None:
    repo = write_tree(tmp_path, {**FAKE_TREE, "esgar/core/extra.py": "E = 5\n"})
    params = {"code": {"models": "esgar/models"}}
    deps = ["pipeline/run.py", "esgar/core", "${code.models}", "${nowhere.x}", "data/in"]
    dvc = {
        "stages": {
            "run": {"cmd": "python -m pipeline.run --fast", "deps": deps},
            "other": {"cmd": "dvc exp show", "deps": ["esgar/unused.py"]},
        }
    }
    problems = check_dvc(repo, dvc, params)
    assert list(problems) == ["run"]
    # esgar/models is fully used (its json and empty __init__ do not count); esgar/core is not,
    # so it covers nothing and each file of it that runs is missing.
    assert problems["run"].unused == {"esgar/core": "over-broad: esgar/core/extra.py not imported"}
    assert problems["run"].missing == [
        "esgar/core/a.py",
        "esgar/core/b.py",
        "esgar/core/sub/__init__.py",
        "esgar/core/sub/c.py",
        "esgar/core/sub/d.py",
        "esgar/lazy.py",
        "esgar/util.py",
    ]
    message = format_problems(problems)
    assert "stage 'run'" in message and "      - esgar/lazy.py" in message

    dvc["stages"]["gone"] = {"cmd": "python -m pipeline.gone", "deps": []}
    assert check_dvc(repo, dvc, params)["gone"].errors


# --- paths named once ------------------------------------------------------------------------

OUTPUT_KEYS = ("out", "metrics", "report", "plot", "plots", "history", "bacc", "confusion",
               "predictions", "work", "snapshot", "answers")
SECTION_OF_STAGE = {"download": "data"}  # otherwise a stage's own section has its name


def stage_outputs(stage: Mapping[str, Any]) -> list[str]:
    """The raw (unresolved) paths of a stage's outs, metrics and plots."""
    entries = [e for key in ("outs", "metrics", "plots") for e in stage.get(key) or []]
    return [e if isinstance(e, str) else next(iter(e)) for e in entries]


def param_paths(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Every string value of params.yaml that looks like a path ({dotted key: value})."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            out.update(param_paths(value, f"{prefix}{key}."))
        elif isinstance(value, str) and "/" in value:
            out[f"{prefix}{key}"] = value
    return out


def test_no_output_repeats_a_params_path() -> None:
    dvc, params = load_yaml(REPO / "dvc.yaml"), load_yaml(REPO / "params.yaml")
    named = {v: k for k, v in param_paths(params).items()}
    repeated = [f"stages.{name}: {path} is params.yaml's {named[path]}: write ${{{named[path]}}}"
                for name, stage in dvc["stages"].items() for path in stage_outputs(stage)
                if "${" not in path and path in named]
    assert not repeated, "\n".join(repeated)


def test_every_output_setting_is_inside_its_stages_outputs() -> None:
    dvc, params = load_yaml(REPO / "dvc.yaml"), load_yaml(REPO / "params.yaml")
    problems = []
    for name, stage in dvc["stages"].items():
        section = params.get(SECTION_OF_STAGE.get(name, name)) or {}
        outs = [resolve_templates(p, params).rstrip("/") for p in stage_outputs(stage)]
        for key in OUTPUT_KEYS:
            value = section.get(key)
            if isinstance(value, str) and not any(value == o or value.startswith(f"{o}/")
                                                  for o in outs):
                problems.append(f"stages.{name}: {key} = {value} is not inside its outputs "
                                f"{outs}")
    assert not problems, "\n".join(problems)

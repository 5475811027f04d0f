"""dvc.yaml's code deps, from the import graph, so that editing any code a stage runs reruns it.

A stage's command is ``pix2pix NAME ...``: stages/NAME.py (``pix2pix cgan train``: stages/cgan.py).
From that module the walk follows the imports of the repo's own modules, those inside functions
too (stage modules import the heavy ones lazily), down to the def or class each one names, with the
packages they run and the files they read. It starts at the stage's module, not at stages/cli.py,
which imports every stage only to register it; and it leaves out the option models that
stages/params.py imports by name to validate all of params.yaml: they accept or refuse the file but
change no output, and would make every stage depend on every other's options.

Lab colorization's code (pix2pix/color.py) runs only for experiments with ``lab_colorization``.
DVC interpolates no lists into deps, so an experiment stage that reaches it names one path per
experiment instead, ``${item.task_code}``, which dvc.yaml's ``vars`` set from params.yaml: color.py
for Lab experiments, task.py (a dep of theirs anyway) for the others. Rewrite dvc.yaml's code deps
(tests/unit/test_deps.py checks them) with:

    python -m workflow.deps
"""

from __future__ import annotations

import ast
import io
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pix2pix", "stages")  # the repo's own code; a dep under one of them is a code dep
READS = {"pix2pix/apps/pages.py": ("pix2pix/apps/templates",)}  # read at run time (Jinja2's PackageLoader): no import shows them
LAB_CODE = "pix2pix/color.py"
TASK_CODE = "pix2pix/task.py"  # what RGB experiments name for ${item.task_code}
TASK_CODE_DEP = "${item.task_code}"
EXPERIMENTS = "${experiments}"  # the foreach of the experiment stages


def module_path(name: str) -> str | None:
    """The repo file of module ``name`` (a/b.py or a/b/__init__.py); None for other packages' modules and for names that are not modules."""
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    for candidate in (Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py")):
        if (ROOT / candidate).is_file():
            return candidate.as_posix()
    return None


ALL = "*"  # every def and class of a module: the stage's own module, or one used as an object (import m, from p import m)


class Module:
    """A file's uses split by when they run: its module-level code's, and each top-level def's or class's.

    A use is a module to import (module, "") or everything in one (module, ALL), a def or class of
    another module that the code names (module, name), or one of this module's own (None, name).
    """

    def __init__(self, path: str):
        self.package = Path(path).parent.parts
        tree = ast.parse((ROOT / path).read_text(), path)
        units = {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        self.names = set(units)
        self.imported = {  # local name -> (module, name) of each `from module import name`, wherever it is
            alias.asname or alias.name: (self._absolute(node), alias.name)
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
        self.module_code = self._uses([node for node in tree.body if node not in units.values()])
        self.units = {name: self._uses([node]) for name, node in units.items()}

    def _absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        # relative: from the importing file's package, or one above per extra dot
        return ".".join([*self.package[: len(self.package) - node.level + 1], *filter(None, [node.module])])

    def _uses(self, nodes: list[ast.AST]) -> list[tuple[str | None, str]]:
        uses: list[tuple[str | None, str]] = []
        for node in (inner for outer in nodes for inner in ast.walk(outer)):
            if isinstance(node, ast.Import):
                uses += [(alias.name, ALL) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = self._absolute(node)
                uses += [(base, "")]
                uses += [(base, alias.name) for alias in node.names if alias.name == ALL or module_path(f"{base}.{alias.name}")]
            elif isinstance(node, ast.Name) and node.id in self.names:
                uses.append((None, node.id))
            elif isinstance(node, ast.Name) and node.id in self.imported:
                uses.append(self.imported[node.id])
        return uses


def code(module: str) -> set[str]:
    """The repo files that running all of ``module`` executes or reads.

    Importing a module runs its packages' __init__ files and its module-level code; a def or class
    adds its own uses (imports inside functions too) only where code that runs names it: a stage
    that uses pix2pix.options' Flags does not run DeviceOptions' lazy import of torch.
    """
    parsed: dict[str, Module] = {}
    done: set[tuple[str, str]] = set()
    todo: list[tuple[str, str]] = [(module, ALL)]
    while todo:
        name, key = todo.pop()
        if key not in ("", ALL) and module_path(f"{name}.{key}"):  # from package import module
            name, key = f"{name}.{key}", ALL
        path = module_path(name)
        if path is None or (path, key) in done:
            continue
        done.add((path, key))
        parts = name.split(".")
        todo += [(".".join(parts[:end]), "") for end in range(1, len(parts) + 1)]  # the packages' and the module's own code
        if path not in parsed:
            parsed[path] = Module(path)
        source = parsed[path]
        if key == ALL:
            todo += [(name, unit) for unit in source.names]
            continue
        uses = source.module_code if key == "" else source.units.get(key, [])  # a module-level value: in its module code
        todo += [(name if imported is None else imported, attribute) for imported, attribute in uses]
    files = {path for path, _ in done}
    return files | {read for path in files for read in READS.get(path, ())}


def command_module(cmd: str) -> str:
    """The stage module of a ``pix2pix NAME ...`` command."""
    words = cmd.split()
    if words[:1] != ["pix2pix"] or len(words) < 2:
        raise ValueError(f"not a pix2pix command: {cmd!r}")
    return f"stages.{words[1].replace('-', '_')}"


def is_code(dep: str) -> bool:
    return dep == TASK_CODE_DEP or dep.split("/")[0] in PACKAGES


def stage_code(cmd: str, experiment_stage: bool) -> list[str]:
    """The code deps of a stage definition (per-experiment ones as ``${item.task_code}``)."""
    files = code(command_module(cmd))
    if experiment_stage and LAB_CODE in files:
        files = (files - {LAB_CODE}) | {TASK_CODE_DEP}
    return sorted(files)


def task_code(params: dict) -> dict[str, dict[str, str]]:
    """dvc.yaml's vars entry: each experiment's ``task_code``."""
    return {
        name: {"task_code": LAB_CODE if experiment.get("train", {}).get("lab_colorization") else TASK_CODE}
        for name, experiment in params["experiments"].items()
    }


def rewrite(pipeline_text: str, params: dict) -> str:
    """dvc.yaml with its code deps generated; data deps, comments and everything else kept."""
    from ruamel.yaml import YAML

    rt = YAML()
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.width = 4096
    rt.preserve_quotes = True
    pipeline = rt.load(pipeline_text)
    for stage in pipeline["stages"].values():
        experiment_stage = stage.get("foreach") == EXPERIMENTS
        definition = stage.get("do", stage)
        definition["deps"][:] = [dep for dep in definition["deps"] if not is_code(dep)] + stage_code(definition["cmd"], experiment_stage)
    if pipeline["vars"][0]["experiments"] != task_code(params):  # replaced only when it changes: keeps the blank line after it
        pipeline["vars"][0]["experiments"] = task_code(params)
    out = io.StringIO()
    rt.dump(pipeline, out)
    return out.getvalue()


if __name__ == "__main__":
    path = ROOT / "dvc.yaml"
    path.write_text(rewrite(path.read_text(), yaml.safe_load((ROOT / "params.yaml").read_text())))

"""The repo files a stage's command runs, from the import graph: dvc.yaml's code deps (workflow/deps.py
writes them) and what `pix2pix train --restart-if-changed` digests, so that the two agree.

From a stage module the walk follows the imports of the repo's own modules, those inside functions
too (stage modules import the heavy ones lazily), down to the def or class each one names, with the
packages they run and the files they read. It starts at the stage's module, not at stages/cli.py,
which imports every stage only to register it; and a def or class counts only where running code
names it, which leaves out the option models that stages/params.py imports to validate all of
params.yaml: they accept or refuse the file but change no output.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout, or site-packages for an installed wheel
PACKAGES = ("pix2pix", "stages")  # the repo's own code; a dep under one of them is a code dep
TEMPLATES = "pix2pix/apps/templates"  # read at run time by name (Jinja2's PackageLoader): no import shows them
TEMPLATE = "<template>"  # the module of a use that names a file of TEMPLATES
INLINE = "inline_file"  # the templates' own function that reads another file of TEMPLATES (pix2pix/apps/pages.py)
LAB_CODE = "pix2pix/color.py"  # run only by experiments with lab_colorization


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
    another module that the code names (module, name), one of this module's own (None, name), or a
    template the code names as a string, (TEMPLATE, file name).
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
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in template_names():
                uses.append((TEMPLATE, node.value))
        return uses


def code(module: str) -> set[str]:
    """The repo files that running all of ``module`` executes or reads.

    Importing a module runs its packages' __init__ files and its module-level code; a def or class
    adds its own uses (imports inside functions too) only where code that runs names it: a stage
    that uses pix2pix.options' Flags does not run DeviceOptions' lazy import of torch.
    """
    parsed: dict[str, Module] = {}
    done: set[tuple[str, str]] = set()
    templates: set[str] = set()
    todo: list[tuple[str, str]] = [(module, ALL)]
    while todo:
        name, key = todo.pop()
        if name == TEMPLATE:
            templates.add(key)
            continue
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
    return {path for path, _ in done} | {f"{TEMPLATES}/{name}" for name in template_closure(templates)}


@functools.cache
def template_names() -> frozenset[str]:
    folder = ROOT / TEMPLATES
    return frozenset(path.name for path in folder.iterdir() if path.is_file()) if folder.is_dir() else frozenset()


def template_closure(names: set[str]) -> set[str]:
    """``names`` and every file of TEMPLATES they extend, include or inline, however deep."""
    import jinja2
    from jinja2 import meta, nodes

    environment = jinja2.Environment()
    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        tree = environment.parse((ROOT / TEMPLATES / name).read_text())
        todo += [referenced for referenced in meta.find_referenced_templates(tree) if referenced]
        todo += [
            call.args[0].value
            for call in tree.find_all(nodes.Call)
            if isinstance(call.node, nodes.Name) and call.node.name == INLINE and call.args and isinstance(call.args[0], nodes.Const)
        ]
    return found


def experiment_code(module: str, lab_colorization: bool) -> set[str]:
    """The files an experiment's stage runs: ``code(module)``, Lab colorization's only for Lab experiments."""
    files = code(module)
    return files if lab_colorization else files - {LAB_CODE}


def source_files(paths: set[str]) -> list[tuple[str, Path]]:
    """``(name, path)`` of each file of ``paths`` (from `code`), a folder's files one by one, in a fixed order."""
    found = []
    for name in sorted(paths):
        path = ROOT / name
        children = sorted(child for child in path.rglob("*") if child.is_file()) if path.is_dir() else [path]
        found += [(child.relative_to(ROOT).as_posix(), child) for child in children]
    return found

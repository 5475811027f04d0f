"""params.yaml: every section holds option values for one stage command.

A stage started with ``--params params.yaml [--section KEY]`` takes its option defaults from
that section (options given on the command line still win). Before that, the whole file is
validated against the stage commands themselves: an unknown key or a value of the wrong type
is one line naming the key and what was expected. The commands are the single source of
truth for names, types and help texts; nothing is declared twice.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pix2pix.errors import UserError

# The shape of params.yaml: a string leaf is the command whose options the section holds,
# a type leaf is a plain value, "*" is any name (a dataset, an experiment).
SCHEMA: dict = {
    "data": {"*": "download"},
    "resize": "resize",
    "blank": "blank",
    "split": {"*": "split"},
    "experiments": {"*": {"dataset": str, "train": "train", "evaluate": "evaluate"}},
    "cgan": {"*": "cgan train"},
}


def load_yaml(path: Path) -> dict:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such params file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}: not valid YAML{where} ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of sections at the top level")
    return data


def command(name: str):
    """The click command behind ``pix2pix NAME`` (``"cgan train"``: a subcommand of a group)."""
    module, *subcommands = name.split()
    cmd = typer.main.get_command(importlib.import_module(f"stages.{module}").app)
    for subcommand in subcommands:
        cmd = cmd.commands[subcommand]
    return cmd


def _check_section(path: Path, key: str, values: Any, command_name: str) -> None:
    if not isinstance(values, dict):
        raise UserError(f"{path}: {key}: expected a mapping of `pix2pix {command_name}` options, got {values!r}")
    cmd = command(command_name)
    options = {p.name: p for p in cmd.params if p.name not in ("params_file", "section", "help")}
    ctx = typer.Context(cmd)
    for name, value in values.items():
        if name not in options:
            raise UserError(f"{path}: {key}.{name}: unknown key; `pix2pix {command_name}` takes {', '.join(sorted(options))}")
        param = options[name]
        if value is None:
            continue
        try:
            param.process_value(ctx, value)
        except typer.BadParameter as exc:
            raise UserError(f"{path}: {key}.{name}: {value!r} is not valid ({exc.message})") from None


def validate(path: Path, params: dict) -> None:
    """Check every section of a params file against the command that reads it."""
    _walk(Path(path), params, "", SCHEMA)


def _walk(path: Path, node: Any, key: str, schema: Any) -> None:
    if isinstance(schema, str):
        _check_section(path, key, node, schema)
        return
    if isinstance(schema, type):
        if not isinstance(node, schema):
            raise UserError(f"{path}: {key}: expected a {schema.__name__}, got {node!r}")
        return
    if not isinstance(node, dict):
        raise UserError(f"{path}: {key or 'top level'}: expected a mapping, got {node!r}")
    for name, value in node.items():
        child = schema.get(name, schema.get("*"))
        if child is None:
            raise UserError(f"{path}: {key + '.' if key else ''}{name}: unknown key; expected {', '.join(sorted(schema))}")
        _walk(path, value, f"{key}.{name}" if key else str(name), child)


def section(params: dict, key: str, path: Path) -> dict:
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise UserError(f"{path}: no section {key!r}")
        node = node[part]
    if not isinstance(node, dict):
        raise UserError(f"{path}: {key} is not a section of options")
    return node


def _remember(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
    """Eager callback of --params / --section: once both are known, set the option defaults."""
    ctx.meta[f"pix2pix.{param.name}"] = value
    if {"pix2pix.params_file", "pix2pix.section"} <= ctx.meta.keys():
        path = ctx.meta["pix2pix.params_file"]
        if path is not None:
            try:
                params = load_yaml(path)
                validate(path, params)
                key = ctx.meta["pix2pix.section"] or ctx.command.name
                ctx.default_map = {**(ctx.default_map or {}), **section(params, key, path)}
            except UserError as exc:
                from stages.common import fail

                raise fail(str(exc)) from None
    return value


ParamsFile = Annotated[
    Optional[Path],
    typer.Option("--params", is_eager=True, callback=_remember, help="Take option defaults from this params.yaml (validated first)."),
]
ParamsSection = Annotated[
    Optional[str],
    typer.Option("--section", is_eager=True, callback=_remember, help="Dotted key of the section to use \\[default: the command's name]."),
]

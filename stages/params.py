"""params.yaml: every section holds option values for one stage command.

A stage started with ``--params params.yaml [--section KEY]`` takes its option defaults from
that section (options given on the command line still win). Before that, the whole file is
validated against the config models the commands' options are generated from: an unknown key,
a value of the wrong type or out of range is one line naming the file, the key, the value and
what is allowed. Keys the pipeline sets itself (input and output paths, run names) are not
options of the models, so params.yaml cannot hold them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pydantic import BaseModel, ValidationError

from pix2pix.errors import UserError
from stages.options import describe

# The shape of params.yaml: a string leaf names the config model ("module:Class") whose options
# the section holds, a type leaf is a plain value, "*" is any name (a dataset, an experiment).
SCHEMA: dict = {
    "data": {"*": "stages.download:DownloadOptions"},
    "resize": "stages.imageop_options:ResizeOptions",
    "blank": "stages.imageop_options:BlankOptions",
    "split": {"*": "stages.split:SplitOptions"},
    "experiments": {"*": {"dataset": str, "train": "stages.train:TrainOptions", "evaluate": "stages.evaluate:EvaluateOptions"}},
    "cgan": {"*": "pix2pix.train.config:CGANConfig"},
}


def model(name: str) -> type[BaseModel]:
    """The config model a SCHEMA leaf names (imported on use: stage modules import this one)."""
    module, attribute = name.split(":")
    return getattr(importlib.import_module(module), attribute)


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


def _check_section(path: Path, key: str, values: Any, model_name: str) -> None:
    options = model(model_name)
    if not isinstance(values, dict):
        raise UserError(f"{path}: {key}: expected a mapping of options, got {values!r}")
    unknown = sorted(set(map(str, values)) - set(options.model_fields))
    if unknown:
        raise UserError(f"{path}: {key}.{unknown[0]}: unknown key; allowed: {', '.join(options.model_fields)}")
    try:
        options(**values)
    except ValidationError as exc:
        raise UserError(describe(exc, f"{path}: {key}.", across=f"{path}: {key}: ")) from None


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

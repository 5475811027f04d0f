"""params.yaml: every section holds option values for one stage command.

A stage started with ``--params params.yaml [--section KEY]`` takes its option defaults from
that section (options given on the command line still win). Before that, the whole file is
validated against the config models the commands' options are generated from: an unknown key,
a value of the wrong type or out of range is one line naming the file, the key, the value and
what is allowed. A key given twice, or a file that is not YAML text, is one line too. Keys the pipeline sets itself (input and output paths, run names) are not
options of the models, so params.yaml cannot hold them.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Hashable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pydantic import BaseModel, ValidationError

from pix2pix.errors import UserError
from stages.options import PARAMS_ORIGIN, describe

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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such params file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not a params file") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a text file (byte {exc.start} is not UTF-8); expected a params.yaml") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the params file ({exc.strerror or exc})") from None
    try:
        data = yaml.load(text, Loader=_strict_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
        raise UserError(f"{path}: not valid YAML{where} ({reason})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of sections at the top level")
    return data


@functools.cache
def _strict_loader() -> type:
    """yaml's safe loader, except that a key given twice in one mapping is an error: YAML would
    silently keep the last value, and an experiment would run with a setting its author did not see."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
            first_lines: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may repeat keys on purpose
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, Hashable):  # the base class says what is wrong with it
                    continue
                if key in first_lines:
                    problem = f"duplicate key {key!r}, first given at line {first_lines[key]}"
                    raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
                first_lines[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep)

    return StrictLoader


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
                ctx.meta[PARAMS_ORIGIN] = f"{path}: {key}"
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

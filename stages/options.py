"""Typer options generated from a config model, so each option is declared once (in the model).

``@with_options(Model)`` replaces a command's ``options: Model`` parameter by one ``--name``
option per field (type, default, help, choices and panel from the model) and hands the command
a validated ``Model``. The help shows one spelling per option; underscores and the original
project's spellings (``Flags`` aliases) are accepted by token normalisation.
"""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Any, Literal, get_args, get_origin

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from pix2pix.errors import UserError
from pix2pix.options import Flags

# --help shows the panels in this order, whatever order the model declares its fields in
PANELS = ("Paths", "Data", "Model", "Loss", "Optimiser", "Schedule", "Checkpoints", "Samples", "Built-in data", "Server", "Speed", "Tracking", "Options")
BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))  # pydantic's range constraints and how --help shows them


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def normalized(token: str) -> str:
    """How click compares option names: ``--max_epochs`` is ``--max-epochs``."""
    return token.replace("_", "-")


def is_short(alias: str) -> bool:
    """``-j``: shown in --help beside the long name, not normalised."""
    return not alias.startswith("--")


def flags_of(field: FieldInfo) -> Flags:
    return next((item for item in field.metadata if isinstance(item, Flags)), Flags("Options"))


def panel_of(parameter: inspect.Parameter) -> str:
    info = next((item for item in get_args(parameter.annotation)[1:] if isinstance(item, typer.models.OptionInfo)), None)
    return (info and info.rich_help_panel) or "Options"


def bounds(field: FieldInfo) -> str:
    """The field's range as help text, e.g. ``>0`` or ``>=0, <1``."""
    parts = [
        f"{symbol}{getattr(item, attribute)}"
        for item in field.metadata
        for attribute, symbol in BOUNDS
        if getattr(item, attribute, None) is not None
    ]
    return ", ".join(parts)


def choices(annotation: Any) -> tuple:
    return get_args(annotation) if get_origin(annotation) is Literal else ()


def cli_type(annotation: Any) -> Any:
    """The type typer reads: ``int | None`` as ``Optional[int]``, a list of constrained ints as
    ``list[int]``, a choice as its plain type, so the model (not click) refuses a wrong one, in
    one line like every other bad value."""
    if choices(annotation):
        return type(choices(annotation)[0])
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return cli_type(args[0])
    if origin is list:
        return list[cli_type(args[0])]
    if origin is not None and type(None) in args and len(args) == 2:
        return cli_type(next(arg for arg in args if arg is not type(None))) | None
    return annotation


def model_parameters(model: type[BaseModel]) -> list[inspect.Parameter]:
    parameters = []
    fields = sorted(model.model_fields.items(), key=lambda item: PANELS.index(flags_of(item[1]).panel))
    for name, field in fields:
        spelling = flags_of(field)
        help_text = field.description or ""
        if (limits := bounds(field)):
            help_text += f" \\[{limits}]"
        if choices(field.annotation):
            help_text += f" \\[{'|'.join(map(str, choices(field.annotation)))}]"
        declarations = (f"{flag(name)}/--no-{flag(name)[2:]}",) if field.annotation is bool else (flag(name),)
        declarations += tuple(alias for alias in spelling.aliases if is_short(alias))
        option = typer.Option(*declarations, help=help_text, rich_help_panel=spelling.panel, show_default=field.default is not None)
        parameters.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=field.default, annotation=Annotated[cli_type(field.annotation), option])
        )
    return parameters


def aliases(model: type[BaseModel]) -> dict[str, str]:
    """Normalised alias -> normalised option name, for click's ``token_normalize_func``."""
    table = {}
    for name, field in model.model_fields.items():
        for alias in flags_of(field).aliases:
            if is_short(alias):
                continue
            table[normalized(alias.lstrip("-"))] = normalized(name)
            if field.annotation is bool:
                table["no-" + normalized(alias.lstrip("-"))] = "no-" + normalized(name)
    return table


def token_normalizer(table: dict[str, str]):
    def normalize(token: str) -> str:
        token = normalized(token)
        return table.get(token, token)

    return normalize


# ctx.meta key: "FILE: SECTION" when stages.params took the option defaults from a params file
PARAMS_ORIGIN = "pix2pix.params_origin"


def validated(model: type[BaseModel], values: dict, params_origin: str | None = None) -> BaseModel:
    """Build ``model``; an invalid value is one line naming the option, the value and what is allowed.

    A check across options failing on values from a params section (valid there on its own) and from
    the command line names that section too: ``params_origin``, "FILE: SECTION"."""
    try:
        return model(**values)
    except ValidationError as exc:
        across = f"{params_origin} (with the options given on the command line): " if params_origin else ""
        raise UserError(describe(exc, "option ", lambda where: flag(where.split(".")[0]), across)) from None


def describe(exc: ValidationError, prefix: str, name=str, across: str = "") -> str:
    """The first error as one line: ``prefix`` + the named key, or ``across`` for a check that spans keys
    (its message names them)."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if not where:
        return f"{across}{message}"
    if error["type"] == "extra_forbidden":
        return f"{prefix}{name(where)}: unknown option"
    return f"{prefix}{name(where)}: {error.get('input')!r} is not allowed ({message})"


def with_options(model: type[BaseModel], parameter: str = "options"):
    """Decorate a command whose ``parameter`` takes a ``model``: its fields become the command's options."""

    def decorate(command):
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != parameter]
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        fields = set(model.model_fields)

        @functools.wraps(command)
        def wrapper(_context: typer.Context, **kwargs):
            values = {name: kwargs.pop(name) for name in list(kwargs) if name in fields}
            return command(**kwargs, **{parameter: validated(model, values, _context.meta.get(PARAMS_ORIGIN))})

        context = inspect.Parameter("_context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)  # typer passes it
        parameters = sorted([*keyword, *model_parameters(model)], key=lambda p: PANELS.index(panel_of(p)))
        wrapper.__signature__ = signature.replace(parameters=[context, *parameters])
        wrapper.__annotations__ = {}
        wrapper.token_normalize_func = token_normalizer(aliases(model))
        del wrapper.__wrapped__  # typer must read the new signature, not the command's
        return wrapper

    return decorate

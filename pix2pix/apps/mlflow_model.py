"""The generator as an MLflow model: a pyfunc around ``Translator``, so ``mlflow models serve`` and
``mlflow.pyfunc.load_model`` translate images like ``pix2pix translate``.

Input: a DataFrame with column ``image`` (base64 PNG or JPEG) and, for a hint model, an optional ``hints``
column (the JSON list ``pix2pix translate --hints`` reads, as a string). Output: column ``image``, the
translation as base64 PNG. Each row is translated alone with torch seeded 0, as ``pix2pix translate``
translates one image, so an answer does not depend on the rows beside it.

The model imports this package instead of carrying its code: serve it from the project's environment
(``--env-manager local``); its pip requirement names ``pix2pix-pipeline`` for other environments.
"""

from __future__ import annotations

import base64
import binascii
import json
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch

from pix2pix.data.hints import check_hints_fit, parse_hints
from pix2pix.data.images import encode_png, read_rgb
from pix2pix.errors import UserError
from pix2pix.infer.translate import Translator

ARTIFACT = "generator"  # the generator file among the model's artifacts
MODEL_NAME = "model"  # the logged model's name in its run
SEED = 0  # test-time dropout, as `pix2pix translate --seed 0`


class TranslatorModel(mlflow.pyfunc.PythonModel):
    """base64 images (and a hint model's JSON hints) in, base64 PNG translations out; see the module docstring."""

    def load_context(self, context) -> None:
        self.translator = Translator.from_checkpoint(Path(context.artifacts[ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if "image" not in model_input.columns:
            raise ValueError(f"expected a column 'image' of base64 PNG or JPEG images, got columns {list(model_input.columns)}")
        hints = model_input["hints"] if "hints" in model_input.columns else [None] * len(model_input)
        outputs = [self.translate_row(number, image, row_hints) for number, (image, row_hints) in enumerate(zip(model_input["image"], hints), 1)]
        return pd.DataFrame({"image": outputs})

    def translate_row(self, number: int, image: object, hints: object) -> str:
        """Row ``number`` (from 1, named in errors) -> its translation as base64 PNG."""
        rgb = decode_image(image, f"row {number}: image")
        parsed = None
        if hints is not None and not (isinstance(hints, float) and np.isnan(hints)):  # a missing cell reads as NaN
            source = f"row {number}: hints"
            if not self.translator.task.hints:
                raise ValueError(f"{source}: this model takes no colour hints (it was trained without --hints)")
            try:
                parsed = parse_hints(json.loads(hints), source)
                check_hints_fit(parsed, rgb.shape[:2], source)
            except (TypeError, ValueError, RecursionError) as exc:  # json.loads: not a string, or not JSON
                raise ValueError(f"{source}: not a readable JSON list of hints ({exc})") from None
            except UserError as exc:
                raise ValueError(str(exc)) from None
        torch.manual_seed(SEED)
        output = self.translator.translate([rgb], None if parsed is None else [parsed])[0]
        return base64.b64encode(encode_png(output)).decode("ascii")


def decode_image(value: object, source: str) -> np.ndarray:
    """A base64 PNG/JPEG -> ``(H, W, 3)`` uint8; anything else is a one-line ``ValueError`` starting with ``source``."""
    if not isinstance(value, str):
        raise ValueError(f"{source}: expected a base64 string, got {type(value).__name__}")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{source}: not valid base64 ({exc})") from None
    try:
        return read_rgb(data, formats=("PNG", "JPEG"))
    except UserError as exc:
        raise ValueError(f"{source}: {exc}") from None


def signature(hints: bool):
    """Strings in, strings out; a hint model's ``hints`` column is optional (without it, it colorizes alone)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = [ColSpec("string", "image")] + ([ColSpec("string", "hints", required=False)] if hints else [])
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("string", "image")]))


def input_example(translator: Translator) -> pd.DataFrame:
    """A mid-grey image of the trained crop size (and one red hint at its corner, for a hint model)."""
    side = translator.config.get("crop_size", 256)
    example = {"image": [base64.b64encode(encode_png(np.full((side, side, 3), 128, np.uint8))).decode("ascii")]}
    if translator.task.hints:
        example["hints"] = [json.dumps([{"x": 0, "y": 0, "color": "#ff0000"}])]
    return pd.DataFrame(example)


def log_translator_model(generator: Path, registered_name: str | None = None):
    """Log ``generator`` (best.pt or generator.pt) to the active run as the pyfunc model ``model``, with its
    signature and input example, and register it as a new version of ``registered_name`` if given.

    Requirements are given, not inferred: inferring them loads the model in a subprocess and may ask PyPI."""
    translator = Translator.from_checkpoint(generator)
    return mlflow.pyfunc.log_model(
        name=MODEL_NAME,
        python_model=TranslatorModel(),
        artifacts={ARTIFACT: str(generator)},
        signature=signature(translator.task.hints),
        input_example=input_example(translator),
        pip_requirements=[f"pix2pix-pipeline=={version('pix2pix-pipeline')}"],
        registered_model_name=registered_name,
    )

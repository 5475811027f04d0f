"""Import generators trained with junyanz/pytorch-CycleGAN-and-pix2pix (``latest_net_G.pth``).

The reference saves a bare state dict of its recursive ``UnetGenerator`` (``unet_256``: 8
levels, ``unet_128``: 7). The generator's ``model`` attribute is the outermost
``UnetSkipConnectionBlock``; every block keeps its layers in a Sequential called ``model`` and
nests the next block inside it:

=========== ======================================================================
outermost   [0 downconv, 1 next block, 2 ReLU, 3 upconv (bias), 4 Tanh]
middle      [0 LeakyReLU, 1 downconv, 2 downnorm, 3 next block, 4 ReLU, 5 upconv, 6 upnorm, (7 Dropout)]
innermost   [0 LeakyReLU, 1 downconv, 2 ReLU, 3 upconv, 4 upnorm]
=========== ======================================================================

so the outermost down-conv is ``model.model.0.weight``, the next level's
``model.model.1.model.1.weight``, the one below ``model.model.1.model.3.model.1.weight``, and so
on. Level k of that nesting is level k of this project's encoder and level k from the top of
its decoder, with the same widths, biases, norms, dropout placement and skip order, so the
weights map one to one. The reference's in-place LeakyReLU also rewrites the skip tensor, but
the skip only ever feeds a ReLU, which gives the same result either way.

Input/output channels, ngf, depth and the norm (batch: norm weights and running statistics;
instance: no norm parameters, biased convs) are read from the tensor shapes. The direction,
and whether a 3 -> 3 model is meant for anything in particular, are not in the file.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from pix2pix import checkpoint as ckpt
from pix2pix.errors import UserError
from pix2pix.files import atomic_write_text
from pix2pix.train.config import TrainConfig

# The reference's load_size/crop_size ratio (286/256), for the recorded (informational) load size.
LOAD_RATIO = 286 / 256
OUTERMOST_DOWN = "model.model.0.weight"
OUTERMOST_UP = "model.model.3.weight"


def block_prefix(level: int) -> str:
    """Key prefix of the block ``level`` deep in the nesting (0 = outermost)."""
    if level == 0:
        return "model.model."
    return f"{block_prefix(level - 1)}{1 if level == 1 else 3}.model."


def layer_map(depth: int) -> dict[str, str]:
    """This project's module path -> the reference's, for every layer that holds tensors."""
    mapping = {}
    for level in range(depth):
        prefix, up = block_prefix(level), f"decoder.{depth - 1 - level}"
        if level == 0:
            mapping |= {"encoder.0.0": prefix + "0", f"{up}.1": prefix + "3"}
        elif level == depth - 1:
            mapping |= {f"encoder.{level}.1": prefix + "1", f"{up}.1": prefix + "3", f"{up}.2": prefix + "4"}
        else:
            mapping |= {f"encoder.{level}.1": prefix + "1", f"encoder.{level}.2": prefix + "2",
                        f"{up}.1": prefix + "5", f"{up}.2": prefix + "6"}  # fmt: skip
    return mapping


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a reference ``.pth`` file, ``module.`` (DataParallel) prefixes removed."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UserError(f"{path}: not a readable PyTorch state dict ({ckpt.first_line(exc)})") from None
    if isinstance(payload, dict) and payload.get("format") == ckpt.FORMAT:
        raise UserError(f"{path}: already a pix2pix-pipeline checkpoint; use it directly")
    if not isinstance(payload, dict) or not payload or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise UserError(f"{path}: not a generator state dict (expected a mapping of parameter names to tensors)")
    return {key.removeprefix("module."): value for key, value in payload.items()}


def infer_architecture(state: dict[str, torch.Tensor], source: Path) -> dict:
    """Depth, channels, ngf and norm of a reference U-Net, from its key names and shapes."""
    if OUTERMOST_DOWN not in state or OUTERMOST_UP not in state:
        raise UserError(
            f"{source}: not a pytorch-CycleGAN-and-pix2pix U-Net generator (no {OUTERMOST_DOWN}); "
            "only unet_* generators can be imported (not resnet_* or discriminators)"
        )
    depth = 1
    while block_prefix(depth) + "1.weight" in state:
        depth += 1
    if depth < 2:
        raise UserError(f"{source}: a U-Net needs at least two levels, found one")
    if block_prefix(1) + "2.weight" in state:
        norm = "batch"
    elif block_prefix(1) + "1.bias" in state:
        norm = "instance"
    else:
        raise UserError(f"{source}: a U-Net without normalisation layers (--norm none) is not supported")
    ngf, in_channels = state[OUTERMOST_DOWN].shape[:2]
    out_channels = state[OUTERMOST_UP].shape[1]
    return {"depth": depth, "ngf": int(ngf), "in_channels": int(in_channels), "out_channels": int(out_channels), "norm": norm}


def choose_task(in_channels: int, out_channels: int, direction: str | None, lab_colorization: bool, source: Path) -> tuple[str, bool]:
    """(direction, lab_colorization): 1 -> 2 and 2 -> 1 channels can only be Lab colorization."""
    lab_direction = {(1, 2): "AtoB", (2, 1): "BtoA"}.get((in_channels, out_channels))
    if lab_direction:
        if direction not in (None, lab_direction):
            raise UserError(f"{source}: {in_channels} -> {out_channels} channels is Lab colorization {lab_direction}, not {direction}")
        return lab_direction, True
    if (in_channels, out_channels) != (3, 3):
        raise UserError(
            f"{source}: {in_channels} -> {out_channels} channels; only RGB -> RGB (3 -> 3) and "
            "Lab colorization (1 -> 2, 2 -> 1) generators can be imported"
        )
    if lab_colorization:
        raise UserError(f"{source}: maps 3 -> 3 channels, so it is not a colorization model (that maps L -> ab, 1 -> 2)")
    return direction or "AtoB", False


def convert(
    source: Path, direction: str | None = None, lab_colorization: bool = False, dropout: float = 0.5
) -> tuple[nn.Module, TrainConfig]:
    """The reference generator as this project's ``UNetGenerator``, and the config that rebuilds it."""
    from pix2pix.nn.networks import build_generator

    state = read_state_dict(source)
    found = infer_architecture(state, source)
    direction, lab_colorization = choose_task(found["in_channels"], found["out_channels"], direction, lab_colorization, source)
    crop_size = 2 ** found["depth"]
    config = TrainConfig(
        direction=direction, lab_colorization=lab_colorization, crop_size=crop_size, load_size=round(crop_size * LOAD_RATIO),
        unet_depth=found["depth"], ngf=found["ngf"], norm=found["norm"], dropout=dropout,
    )  # fmt: skip
    generator = build_generator(config.architecture())
    mapping = layer_map(found["depth"])
    converted, used = {}, set()
    for name, tensor in generator.state_dict().items():
        module, _, field = name.rpartition(".")
        key = f"{mapping[module]}.{field}"
        if key not in state:
            if field == "num_batches_tracked":  # files from PyTorch < 0.4.1 lack the counter
                converted[name] = torch.zeros_like(tensor)
                continue
            raise UserError(f"{source}: missing {key} (expected for a {found['depth']}-level U-Net with {found['norm']} norm)")
        if state[key].shape != tensor.shape:
            raise UserError(
                f"{source}: {key} has shape {tuple(state[key].shape)}, expected {tuple(tensor.shape)} "
                f"for a {found['depth']}-level U-Net with ngf {found['ngf']}"
            )
        converted[name] = state[key].to(tensor.dtype)
        used.add(key)
    # Instance norm keeps no statistics; files from PyTorch < 0.4 still carry them: harmless.
    unexpected = [k for k in state if k not in used and not (found["norm"] == "instance" and k.endswith(("running_mean", "running_var", "num_batches_tracked")))]
    if unexpected:
        raise UserError(f"{source}: unexpected keys for a {found['depth']}-level U-Net: {', '.join(unexpected[:3])}")
    generator.load_state_dict(converted)
    return generator, config


def import_reference(
    source: Path, output_dir: Path, direction: str | None = None, lab_colorization: bool = False, dropout: float = 0.5
) -> tuple[nn.Module, TrainConfig]:
    """Write ``output_dir/generator.pt`` (and ``options.json``) so translate, evaluate and export use it."""
    output_dir = Path(output_dir)
    existing = [name for name in (ckpt.GENERATOR_NAME, ckpt.CHECKPOINT_NAME) if (output_dir / name).exists()]
    if existing:
        raise UserError(f"{output_dir}: already holds {existing[0]}; import into a new folder")
    generator, config = convert(source, direction, lab_colorization, dropout)
    payload = {
        "config": config.model_dump(mode="json"),
        "architecture": config.architecture(),
        "generator": generator.state_dict(),
        "step": 0,
        "epoch": 0,
        "imported_from": str(source),
    }
    ckpt.save(payload, output_dir / ckpt.GENERATOR_NAME)
    atomic_write_text(output_dir / "options.json", config.model_dump_json(indent=2) + "\n")
    return generator, config

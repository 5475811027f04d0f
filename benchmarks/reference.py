"""The reference implementation (pytorch-CycleGAN-and-pix2pix), driven the way its train.py / test.py do.

Used by ``run.py --reference DIR`` to time the reference's own networks and optimisation step in
the same process and torch as ours. DIR is an extracted checkout (its ``models/`` and ``util/``);
nothing of it is copied into this project. Only the parts that need no torchvision are used:
the data loading of test.py is re-stated here with PIL and numpy (same resize, same scaling).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

PRESETS = {256: "unet_256", 128: "unet_128"}  # define_G has no 64 preset: UnetGenerator(num_downs=6) then


class Reference:
    """Handles on the reference's modules, imported from ``ref_dir``."""

    def __init__(self, ref_dir: Path):
        ref_dir = Path(ref_dir).resolve()
        if not (ref_dir / "models" / "pix2pix_model.py").is_file():
            raise SystemExit(f"{ref_dir}: not a pytorch-CycleGAN-and-pix2pix checkout (no models/pix2pix_model.py)")
        sys.path.insert(0, str(ref_dir))
        from models import networks
        from models.pix2pix_model import Pix2PixModel
        from util import util

        self.networks, self.model_class, self.util = networks, Pix2PixModel, util

    def options(self, size: int) -> argparse.Namespace:
        """The fields Pix2PixModel and BaseModel.setup read, at train.py's pix2pix defaults."""
        return argparse.Namespace(
            isTrain=True, checkpoints_dir="/nonexistent", name="bench", device=torch.device("cpu"), preprocess="resize_and_crop",
            input_nc=3, output_nc=3, ngf=64, ndf=64, netG=PRESETS.get(size, "unet_128"), netD="basic", n_layers_D=3,
            norm="batch", no_dropout=False, init_type="normal", init_gain=0.02, gan_mode="vanilla", lr=2e-4, beta1=0.5,
            lambda_L1=100.0, direction="AtoB", lr_policy="linear", n_epochs=100, n_epochs_decay=100, epoch_count=1,
            continue_train=False, verbose=False, load_iter=0, epoch="latest",
        )  # fmt: skip

    def unet(self, size: int) -> torch.nn.Module:
        """A generator of the depth that brings ``size`` to 1x1, as define_G builds it (not yet initialised)."""
        depth = min(8, size.bit_length() - 1)
        norm_layer = self.networks.get_norm_layer("batch")
        return self.networks.UnetGenerator(3, 3, depth, 64, norm_layer=norm_layer, use_dropout=True)

    def training_model(self, size: int):
        """Pix2PixModel after ``setup()`` (normal init 0.02, Adam, schedulers), as train.py makes it."""
        opt = self.options(size)
        with contextlib.redirect_stdout(io.StringIO()):  # setup() prints the networks
            model = self.model_class(opt)
            if size not in PRESETS:
                model.netG = self.unet(size)
                model.optimizer_G = torch.optim.Adam(model.netG.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
                model.optimizers[0] = model.optimizer_G
            model.setup(opt)
        return model

    def generator(self, size: int) -> torch.nn.Module:
        """G alone with the reference initialisation: what test.py runs."""
        with contextlib.redirect_stdout(io.StringIO()):  # init_weights prints
            return self.networks.init_net(self.unet(size), "normal", 0.02)

    @staticmethod
    def train_step(model, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        model.set_input({"A": inputs, "B": targets, "A_paths": [""]})
        model.optimize_parameters()

    def test_images(self, generator: torch.nn.Module, paths: list[Path], output_dir: Path, size: int = 256) -> None:
        """What test.py does per A|B file at batch 1, minus the HTML page: load, resize, G, three PNGs.

        Its default is train mode (no ``--eval``): batch statistics and dropout, like ours.
        """
        for path in paths:
            with Image.open(path) as image:
                pair = image.convert("RGB")
            half = pair.width // 2
            a, b = (
                _to_tensor(pair.crop(box).resize((size, size), Image.Resampling.BICUBIC))
                for box in ((0, 0, half, pair.height), (half, 0, 2 * half, pair.height))
            )
            with torch.no_grad():
                fake = generator(a)
            for suffix, tensor in (("real_A", a), ("fake_B", fake), ("real_B", b)):
                self.util.save_image(self.util.tensor2im(tensor), str(output_dir / f"{path.stem}_{suffix}.png"))


def _to_tensor(image: Image.Image) -> torch.Tensor:
    """torchvision's ToTensor + Normalize((0.5,) * 3, (0.5,) * 3), batch of one."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy((array.transpose(2, 0, 1) - 0.5) / 0.5).unsqueeze(0)

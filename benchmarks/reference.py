"""The reference implementation (pytorch-CycleGAN-and-pix2pix), driven the way its train.py / test.py do.

``run.py --reference DIR`` uses it two ways. Imported into the harness, it times the reference's
own networks and optimisation step in the same process and torch as ours. Run as a command, it
is the reference as users run it: a process of its own with stock settings (nothing of
``pix2pix.perf``: glibc malloc and OpenMP defaults), which imports nothing of this project:

    python benchmarks/reference.py train_step --ref DIR --size 64 [--repeats 20] [--warmup 2] [--result FILE]
    python benchmarks/reference.py infer --ref DIR [--size 256] [--batch 8] [--repeats 8] [--warmup 2] [--result FILE]
    python benchmarks/reference.py test --ref DIR --input_dir PAIRS [--checkpoint CKPTS/NAME/latest_net_G.pth] \\
        [--size 256] --results_dir OUT

``train_step`` and ``infer`` print (or write to FILE) {"seconds": median seconds per call after
warm-up}; ``test`` is test.py on a folder of A|B images (see ``Reference.test_images``).

DIR is an extracted checkout (its ``models/`` and ``util/``); nothing of it is copied into this
project. Only the parts that need no torchvision are used: the data loading of test.py is
re-stated here with PIL and numpy (same resize, same scaling).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

PRESETS = {256: "unet_256", 128: "unet_128"}  # define_G has no 64 preset: UnetGenerator(num_downs=6) then
TEST_SIZE = 256  # test.py: load_size = crop_size = 256
CPU = torch.device("cpu")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff")  # data/image_folder.py's


class Reference:
    """Handles on the reference's modules, imported from ``ref_dir``."""

    def __init__(self, ref_dir: Path):
        self.root = Path(ref_dir).resolve()
        if not (self.root / "models" / "pix2pix_model.py").is_file():
            raise SystemExit(f"{self.root}: not a pytorch-CycleGAN-and-pix2pix checkout (no models/pix2pix_model.py)")
        sys.path.insert(0, str(self.root))
        from models.pix2pix_model import Pix2PixModel
        from util import util

        from models import networks

        self.networks, self.model_class, self.util = networks, Pix2PixModel, util

    def options(self, size: int, device: torch.device = CPU) -> argparse.Namespace:
        """The fields Pix2PixModel and BaseModel.setup read, at train.py's pix2pix defaults.

        On a CUDA machine its init_net puts every network on the GPU whatever ``device`` says;
        ``device`` is where set_input moves the batches.
        """
        return argparse.Namespace(
            isTrain=True, checkpoints_dir="/nonexistent", name="bench", device=device, preprocess="resize_and_crop",
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

    def training_model(self, size: int, device: torch.device = CPU):
        """Pix2PixModel after ``setup()`` (normal init 0.02, Adam, schedulers), as train.py makes it, on ``device``."""
        opt = self.options(size, device)
        with contextlib.redirect_stdout(io.StringIO()):  # setup() prints the networks
            model = self.model_class(opt)
            if size not in PRESETS:
                model.netG = self.unet(size).to(device)
                model.optimizer_G = torch.optim.Adam(model.netG.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
                model.optimizers[0] = model.optimizer_G
            model.setup(opt)
        return model

    def test_model(self, checkpoint: Path | None = None, size: int = TEST_SIZE):
        """Pix2PixModel as test.py makes it (G only), with the weights of ``checkpoint`` if given, else freshly initialised.

        test.py finds a checkpoint as CHECKPOINTS_DIR/NAME/EPOCH_net_G.pth; ``setup()`` initialises
        G, loads that file and prints the network.
        """
        opt = self.options(size)
        opt.isTrain = False
        if checkpoint is not None:
            opt.checkpoints_dir, opt.name = str(checkpoint.parent.parent), checkpoint.parent.name
            opt.epoch = checkpoint.name.removesuffix("_net_G.pth")
        with contextlib.redirect_stdout(io.StringIO()):
            model = self.model_class(opt)
            if checkpoint is None:
                model.netG = self.networks.init_net(model.netG, opt.init_type, opt.init_gain)
            else:
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

    def train_step_call(self, size: int, inputs: torch.Tensor, targets: torch.Tensor) -> Callable[[], None]:
        """One ``optimize_parameters()`` on fixed inputs, of a model made after ``torch.manual_seed(0)``."""
        torch.manual_seed(0)
        model = self.training_model(size)
        return lambda: self.train_step(model, inputs, targets)

    def inference_call(self, batch: torch.Tensor) -> Callable[[], None]:
        """G on ``batch`` as test.py ``--eval`` runs it: eval mode, under ``no_grad``."""
        generator = self.generator(batch.shape[-1]).eval()

        def call() -> None:
            with torch.no_grad():
                generator(batch)

        return call

    def test_images(self, model, paths: list[Path], results_dir: Path, size: int = TEST_SIZE) -> None:
        """test.py's loop over A|B files: batch 1, ``set_input``, ``test()``, and its visualizer's ``save_images``.

        The model stays in its default train mode (no ``--eval``): batch statistics and dropout,
        like ours. Re-stated rather than called: the loading (test.py's dataset needs
        torchvision) and ``save_images`` (util/visualizer.py imports wandb), whose HTML page
        (index.html, via dominate) is not written. The PNGs go straight into ``results_dir``,
        not RESULTS/NAME/test_latest/images/. All the files are done, not test.py's default
        ``--num_test 50``.
        """
        for path in paths:
            a, b = _load_pair(path, size)
            model.set_input({"A": a, "B": b, "A_paths": [str(path)], "B_paths": [str(path)]})
            model.test()
            name = Path(model.get_image_paths()[0]).stem
            for label, image in model.get_current_visuals().items():
                self.util.save_image(self.util.tensor2im(image), results_dir / f"{name}_{label}.png", aspect_ratio=1.0)


def _load_pair(path: Path, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """AlignedDataset's A and B at test time: split the halves, bicubic resize to size x size, no crop or flip."""
    with Image.open(path) as image:
        pair = image.convert("RGB")
    half = pair.width // 2
    return tuple(
        _to_tensor(pair.crop(box).resize((size, size), Image.Resampling.BICUBIC))
        for box in ((0, 0, half, pair.height), (half, 0, 2 * half, pair.height))
    )


def _to_tensor(image: Image.Image) -> torch.Tensor:
    """torchvision's ToTensor + Normalize((0.5,) * 3, (0.5,) * 3), batch of one."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy((array.transpose(2, 0, 1) - 0.5) / 0.5).unsqueeze(0)


def synthetic_batch(batch_size: int, size: int) -> torch.Tensor:
    """Uniform noise in [-1, 1]: what the networks see after Normalize, without data loading."""
    return torch.rand(batch_size, 3, size, size) * 2 - 1


def median_seconds(function: Callable[[], object], repeats: int, warmup: int) -> float:
    """Median wall seconds of ``repeats`` calls after ``warmup`` untimed ones (both sides' own-process timing)."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, about in (("train_step", "seconds per optimize_parameters(), batch 1, synthetic inputs"),
                        ("infer", "seconds per generator call in eval mode under no_grad, synthetic inputs")):  # fmt: skip
        command = commands.add_parser(name, help=about)
        command.add_argument("--ref", type=Path, required=True, help="pytorch-CycleGAN-and-pix2pix checkout")
        command.add_argument("--size", type=int, required=name == "train_step", default=TEST_SIZE)
        if name == "infer":
            command.add_argument("--batch", type=int, default=1)
        command.add_argument("--repeats", type=int, default=8)
        command.add_argument("--warmup", type=int, default=2)
        command.add_argument("--result", type=Path, help="write the JSON here instead of stdout")
    test = commands.add_parser("test", help="test.py on a folder of A|B images (batch 1, train mode, three PNGs each)")
    test.add_argument("--ref", type=Path, required=True, help="pytorch-CycleGAN-and-pix2pix checkout")
    test.add_argument("--input_dir", type=Path, required=True)
    test.add_argument("--checkpoint", type=Path, help="an EPOCH_net_G.pth [default: a freshly initialised G]")
    test.add_argument("--size", type=int, choices=list(PRESETS), default=TEST_SIZE)
    test.add_argument("--results_dir", type=Path, required=True)
    args = parser.parse_args()
    ref = Reference(args.ref)

    if args.command == "test":
        args.results_dir.mkdir(parents=True, exist_ok=True)
        # as its make_dataset lists them (sorted), which cannot be imported: data/__init__.py needs torchvision
        paths = sorted(path for path in args.input_dir.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
        ref.test_images(ref.test_model(args.checkpoint, args.size), paths, args.results_dir, args.size)
        return
    time_and_report(args, ref.train_step_call, ref.inference_call)


def time_and_report(args: argparse.Namespace, train_step_call: Callable, inference_call: Callable) -> None:
    """Time what ``args.command`` names with one side's call builders (this file's or ours.py's);
    print {"seconds": median} or write it to ``args.result``."""
    if args.command == "train_step":
        call = train_step_call(args.size, synthetic_batch(1, args.size), synthetic_batch(1, args.size))
    else:
        call = inference_call(synthetic_batch(args.batch, args.size))
    report = json.dumps({"seconds": median_seconds(call, args.repeats, args.warmup)})
    if args.result:
        args.result.write_text(report)
    else:
        print(report)


if __name__ == "__main__":
    main()

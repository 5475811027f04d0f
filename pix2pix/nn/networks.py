"""The two pix2pix networks: a U-Net generator and a PatchGAN discriminator, in plain torch layers.

Layer for layer the same as pytorch-CycleGAN-and-pix2pix (``unet_256`` / ``basic`` D), so the
parameter counts match the reference: 54,413,955 for G (256 px, ngf 64, batch norm, 3->3) and
2,768,705 for D (6 input channels). Convolutions that feed a batch norm carry no bias. On the
CPU, ``pix2pix.nn.cpu_kernels`` swaps faster forms into some of the convolutions of a built
network, parameters and state dict unchanged (``pix2pix.nn.device.Acceleration`` does it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pix2pix.errors import UserError
from pix2pix.nn.sizes import PATCH_LAYERS, unet_depth
from pix2pix.task import Task

NORMS = ("batch", "instance")


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    raise UserError(f"unknown norm {kind!r}: expected one of {', '.join(NORMS)}")


class UNetGenerator(nn.Module):
    """Encoder-decoder with skip connections; each level halves (doubles) the resolution.

    Encoder widths are ngf * (1, 2, 4, 8, 8, ...). Dropout follows the reference: on the
    ``depth - 5`` decoder blocks just above the innermost one (4, 8, 16 px at 256).
    Activations work in place, as the reference's do, which saves a copy of every feature map:
    a level's LeakyReLU rewrites the skip tensor it reads, which changes nothing, because the
    skip only ever feeds the decoder's ReLU and ReLU(LeakyReLU(x)) = ReLU(x).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        depth: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        dropout: float = 0.5,
    ):
        super().__init__()
        self.depth = depth
        widths = [ngf * min(2**level, 8) for level in range(depth)]
        bias = norm == "instance"  # batch norm has its own shift

        self.encoder = nn.ModuleList()
        for level, width in enumerate(widths):
            outermost, innermost = level == 0, level == depth - 1
            layers: list[nn.Module] = [] if outermost else [nn.LeakyReLU(0.2, inplace=True)]
            layers.append(nn.Conv2d(in_channels if outermost else widths[level - 1], width, 4, 2, 1, bias=bias))
            if not (outermost or innermost):
                layers.append(norm_layer(norm, width))
            self.encoder.append(nn.Sequential(*layers))

        # decoder[0] is the innermost block; its input is the bottleneck alone, the others
        # take [skip, previous output] concatenated.
        self.decoder = nn.ModuleList()
        dropout_blocks = range(1, max(depth - 5, 0) + 1)
        for index, level in enumerate(reversed(range(depth))):
            innermost, outermost = index == 0, level == 0
            in_width = widths[level] * (1 if innermost else 2)
            if outermost:
                self.decoder.append(
                    nn.Sequential(nn.ReLU(inplace=True), nn.ConvTranspose2d(in_width, out_channels, 4, 2, 1), nn.Tanh())
                )
                continue
            out_width = widths[level - 1]
            layers = [nn.ReLU(inplace=True), nn.ConvTranspose2d(in_width, out_width, 4, 2, 1, bias=bias), norm_layer(norm, out_width)]
            if dropout > 0 and index in dropout_blocks:
                layers.append(nn.Dropout(dropout))
            self.decoder.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottleneck feeds the innermost decoder block directly
        for block in self.decoder:
            x = block(x)
            if skips:
                x = torch.cat([skips.pop(), x], dim=1)
        return x


class PatchDiscriminator(nn.Module):
    """Scores every ``patch`` x ``patch`` window of an (input, output) pair as real or fake.

    Returns logits (no sigmoid), one per patch: the vanilla loss is BCE-with-logits.
    """

    def __init__(self, in_channels: int = 6, ndf: int = 64, patch: int = 70, norm: str = "batch"):
        super().__init__()
        if patch not in PATCH_LAYERS:
            raise UserError(f"unknown patch size {patch}: expected one of {', '.join(map(str, PATCH_LAYERS))}")
        self.n_layers = n_layers = PATCH_LAYERS[patch]
        bias = norm == "instance"
        if n_layers == 0:
            layers = [
                nn.Conv2d(in_channels, ndf, 1), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf, ndf * 2, 1, bias=bias), norm_layer(norm, ndf * 2), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 2, 1, 1, bias=bias),
            ]  # fmt: skip
        else:
            layers = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            width = ndf
            for layer in range(1, n_layers + 1):
                next_width = ndf * min(2**layer, 8)
                stride = 2 if layer < n_layers else 1  # the last one at stride 1, as in the reference
                conv = nn.Conv2d(width, next_width, 4, stride, 1, bias=bias)
                layers += [conv, norm_layer(norm, next_width), nn.LeakyReLU(0.2, inplace=True)]
                width = next_width
            layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([condition, image], dim=1))


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """The reference initialisation: conv weights N(0, gain), batch-norm scale N(1, gain), biases 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, gain)
            nn.init.zeros_(layer.bias)


def replace_batch_norms(module: nn.Module, replacement: Callable[[nn.BatchNorm2d], nn.Module]) -> None:
    """Swap every ``BatchNorm2d`` inside ``module`` (subclasses included) for ``replacement(it)``, in place."""
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, name, replacement(child))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_generator(architecture: dict) -> UNetGenerator:
    task = Task.of(architecture)
    in_channels, out_channels = task.channels
    return UNetGenerator(
        in_channels,
        out_channels,
        depth=unet_depth(architecture["crop_size"], architecture["unet_depth"]),
        ngf=architecture["ngf"],
        norm=architecture["norm"],
        dropout=architecture["dropout"],
    )


def build_discriminator(architecture: dict) -> PatchDiscriminator:
    in_channels, out_channels = Task.of(architecture).channels
    return PatchDiscriminator(in_channels + out_channels, architecture["ndf"], architecture["patch"], architecture["norm"])

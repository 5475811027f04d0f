"""The hand-made CPU convolutions as a backend: the networks read as plain torch, the speed-up is one swap.

``use_cpu_kernels`` turns the layers of a built network where the fast forms were measured
faster into their subclasses from ``gemm_conv`` and ``winograd``: the U-Net's 4x4 stride-2
convolutions (matrix products on tiny images) and the PatchGAN's 4x4 stride-1 ones (Winograd's
algorithm; tap products for the score layer). The PatchGAN's stride-2 layers keep torch's op:
the matrix form's limits were measured on the U-Net's layers. A swapped layer keeps its identity
and its Parameter objects, so state dicts, optimisers, hooks and DDP see no change, and it still
runs torch's op outside the cases it was measured in (GPU, autocast, float64, channels_last,
tracing, compiling, images outside its size limits). ``pix2pix.nn.device.Acceleration`` decides
when to swap.
"""

from __future__ import annotations

from torch import nn

from pix2pix.nn.gemm_conv import DownConv, ScoreConv, UpConv
from pix2pix.nn.networks import PatchDiscriminator, UNetGenerator
from pix2pix.nn.winograd import PatchConv


def _is_plain_4x4(layer: nn.Module, stride: int) -> bool:
    """A torch (transposed) convolution with the geometry the fast forms compute: 4x4 taps, padding 1, ``stride``."""
    return (
        type(layer) in (nn.Conv2d, nn.ConvTranspose2d)
        and layer.kernel_size == (4, 4)
        and layer.stride == (stride, stride)
        and layer.padding == (1, 1)
        and layer.output_padding == (0, 0)
        and layer.dilation == (1, 1)
        and layer.groups == 1
        and layer.padding_mode == "zeros"
    )


def _fast_class(network: nn.Module, layer: nn.Module) -> type[nn.Module] | None:
    """The fast subclass for ``layer`` of ``network``, or None where torch's op stays."""
    if isinstance(network, UNetGenerator) and _is_plain_4x4(layer, stride=2):
        return DownConv if type(layer) is nn.Conv2d else UpConv
    if isinstance(network, PatchDiscriminator) and _is_plain_4x4(layer, stride=1) and type(layer) is nn.Conv2d:
        return ScoreConv if layer.out_channels == 1 else PatchConv
    return None


def use_cpu_kernels(model: nn.Module) -> nn.Module:
    """Swap the fast CPU convolutions into every U-Net and PatchGAN inside ``model``, in place; returns it.

    The subclasses add no state, so each layer only changes class. Swapping twice changes nothing.
    """
    for network in model.modules():
        for layer in network.modules():
            fast_class = _fast_class(network, layer)
            if fast_class is not None:
                layer.__class__ = fast_class
    return model

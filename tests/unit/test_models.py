"""Network shapes and sizes match the reference implementation exactly."""

import pytest
import torch

from pix2pix.errors import UserError
from pix2pix.nn.losses import GANLoss
from pix2pix.nn.networks import (
    PatchDiscriminator,
    UNetGenerator,
    count_parameters,
    init_weights,
)
from pix2pix.nn.sizes import unet_depth


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, 54_413_955),  # unet_256, batch norm, 3 -> 3
        ({"norm": "instance"}, 54_409_603),
        ({"in_channels": 1, "out_channels": 2}, 54_409_858),  # colorization
        ({"depth": 7}, 41_828_995),  # unet_128
    ],
)
def test_generator_parameter_count_matches_reference(kwargs, expected):
    assert count_parameters(UNetGenerator(**kwargs)) == expected


@pytest.mark.parametrize(("in_channels", "expected"), [(6, 2_768_705), (3, 2_765_633)])
def test_discriminator_parameter_count_matches_reference(in_channels, expected):
    assert count_parameters(PatchDiscriminator(in_channels)) == expected


@pytest.mark.parametrize("size", [32, 64, 256])
def test_generator_output_shape_follows_input(size):
    generator = UNetGenerator(3, 3, depth=unet_depth(size), ngf=4)
    assert generator(torch.zeros(2, 3, size, size)).shape == (2, 3, size, size)


def test_unet_depth_from_crop_size():
    assert [unet_depth(s) for s in (32, 64, 128, 256, 512)] == [5, 6, 7, 8, 8]
    with pytest.raises(UserError, match="not divisible by 2\\^8 = 256"):
        unet_depth(300)
    with pytest.raises(UserError, match="not divisible"):
        unet_depth(48, 5)


@pytest.mark.parametrize(("patch", "side"), [(1, 256), (16, 126), (34, 62), (70, 30), (142, 14), (286, 6)])
def test_patchgan_output_map(patch, side):
    discriminator = PatchDiscriminator(6, ndf=4, patch=patch)
    out = discriminator(torch.zeros(1, 3, 256, 256), torch.zeros(1, 3, 256, 256))
    assert out.shape == (1, 1, side, side)


def test_patchgan_receptive_field_is_the_named_patch():
    """One output logit depends on exactly a patch x patch window of the input."""
    for patch in (16, 34, 70):
        discriminator = PatchDiscriminator(2, ndf=2, patch=patch).eval()  # running stats: a local op
        image = torch.zeros(1, 1, 160, 160, requires_grad=True)
        out = discriminator(torch.zeros(1, 1, 160, 160), image)
        out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
        row_weights = image.grad[0, 0].abs().sum(1)
        rows = row_weights.nonzero()
        assert rows.max() - rows.min() + 1 <= patch
        assert rows.max() - rows.min() + 1 > patch - 4  # borders of the window may carry zero weight


def test_unknown_patch_or_norm_is_a_user_error():
    with pytest.raises(UserError, match="patch size 50"):
        PatchDiscriminator(patch=50)
    with pytest.raises(UserError, match="unknown norm"):
        UNetGenerator(norm="group")


def test_dropout_sits_on_the_inner_decoder_blocks_only():
    dropouts = [i for i, block in enumerate(UNetGenerator().decoder) if any(isinstance(m, torch.nn.Dropout) for m in block)]
    assert dropouts == [1, 2, 3]  # 4, 8 and 16 px at 256, as in the reference
    assert not any(isinstance(m, torch.nn.Dropout) for m in UNetGenerator(depth=5, ngf=4).modules())


def test_init_follows_reference_statistics():
    torch.manual_seed(0)
    generator = UNetGenerator(ngf=16, depth=6)
    init_weights(generator)
    conv = generator.encoder[2][1].weight
    assert abs(conv.std().item() - 0.02) < 0.002 and abs(conv.mean().item()) < 0.002
    norm = generator.encoder[2][2]
    assert abs(norm.weight.mean().item() - 1.0) < 0.01 and torch.count_nonzero(norm.bias) == 0


def test_gan_losses():
    logits = torch.tensor([[0.0, 2.0]])
    vanilla = GANLoss("vanilla")
    assert torch.isclose(vanilla(logits, True), torch.nn.functional.softplus(-logits).mean())
    assert torch.isclose(vanilla(logits, False), torch.nn.functional.softplus(logits).mean())
    assert torch.isclose(GANLoss("lsgan")(logits, True), torch.tensor((1.0 + 1.0) / 2))

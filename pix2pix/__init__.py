"""pix2pix: conditional-GAN image-to-image translation (U-Net generator, PatchGAN discriminator).

The library holds models, losses, data, colour, metrics, training and image operations.
It knows nothing about command lines, params.yaml or pipeline paths: see ``stages/`` for that.
"""

__version__ = "0.1.0"

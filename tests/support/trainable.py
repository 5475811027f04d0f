"""Stand-in models for ``pix2pix.train.loop.fit``: one weight, no samples, a state that is that weight."""

from __future__ import annotations

import torch
from torch import nn


class OneWeight:
    """A ``Trainable``'s parts a scripted test model does not vary: its one weight (``generator``, also
    the discriminator), no end of epoch, samples or last outputs, a state that is the weight alone."""

    loss_names = ("loss",)
    lr = 0.1
    device = torch.device("cpu")

    def __init__(self):
        self.generator = self.discriminator = nn.Linear(1, 1, bias=False)

    def end_epoch(self, epoch: int) -> None:
        return None

    def sample(self) -> None:
        return None

    def finish(self) -> None:
        return None

    def state(self) -> dict:
        return {"generator": self.generator.state_dict()}

    def load_state(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])

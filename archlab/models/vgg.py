"""VGG-13 (Simonyan & Zisserman, 2015, config B) for small images, plus a batch-norm variant."""

from __future__ import annotations

from torch import Tensor, nn

# Five blocks of two 3x3 convolutions each; "M" is a 2x2 max-pool.
VGG13_LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M",
                                       512, 512, "M")  # fmt: skip


class VGG(nn.Module):
    """VGG feature extractor + 4096-4096-1000-classes head.

    An adaptive average pool to 2x2 sits before the head, so any input of at least 32x32 works
    (a 64x64 input already is 2x2 after five pools, making the pool an identity there).
    """

    def __init__(
        self,
        layout: tuple[int | str, ...] = VGG13_LAYOUT,
        in_channels: int = 1,
        num_classes: int = 3,
        dropout: float = 0.5,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in layout:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            assert isinstance(v, int)
            layers.append(nn.Conv2d(c, v, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            c = v
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(
            nn.Linear(c * 2 * 2, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 1000),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(1000, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # Kaiming (fan-out) init: with PyTorch's default init the 13-layer plain VGG stays at
        # chance for epochs; He et al. (2015) scaling keeps activations alive through ReLUs.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.features(x))
        return self.classifier(x.flatten(1))


def vgg13(in_channels: int = 1, num_classes: int = 3, dropout: float = 0.5) -> VGG:
    """The study's VGG-13: 38,677,859 parameters at 1 channel / 3 classes."""
    return VGG(VGG13_LAYOUT, in_channels, num_classes, dropout, batch_norm=False)


def vgg13_bn(in_channels: int = 1, num_classes: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-13 with batch norm after every convolution (not in the study; trains far easier)."""
    return VGG(VGG13_LAYOUT, in_channels, num_classes, dropout, batch_norm=True)

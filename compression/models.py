"""The model architectures of the registry (compression.catalog.MODELS): every model is built for any input
shape and class count."""

import math

import torch
from torch import nn
from torch.nn import functional as F
from torchvision import models as tvm
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock

from compression.catalog import MODELS, check_model
from compression.errors import CompressionError

InputShape = tuple[int, int, int]


def _scaled(channels: int, width: float) -> int:
    """A channel count times the width multiplier, rounded, at least 1."""
    return max(1, round(channels * width))


class SmallCNN(nn.Module):
    """The article's small CNN: two conv + max-pool blocks (32, 64 channels), then two fully connected layers
    (128 hidden), every count times `width`."""

    def __init__(self, input_shape: InputShape, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        channels, height, breadth = input_shape
        if height < 4 or breadth < 4:
            raise CompressionError(f"cnn needs inputs of at least 4x4 pixels, got {height}x{breadth}")
        first, second, hidden = (_scaled(c, width) for c in (32, 64, 128))
        self.features = nn.Sequential(
            nn.Conv2d(channels, first, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(first, second, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        flat = second * (height // 4) * (breadth // 4)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _downsample(inplanes: int, planes: int, stride: int) -> nn.Module | None:
    """The 1x1 projection shortcut a residual block needs when its shape changes."""
    if stride == 1 and inplanes == planes:
        return None
    return nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))


class SmallResNet(nn.Module):
    """A CIFAR-style ResNet-8: a 3x3 stem, three stages of torchvision BasicBlocks (16, 32, 64 channels times
    `width`)."""

    def __init__(self, input_shape: InputShape, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        widths, strides = tuple(_scaled(c, width) for c in (16, 32, 64)), (1, 2, 2)
        layers: list[nn.Module] = [
            nn.Conv2d(input_shape[0], widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True),
        ]
        inplanes = widths[0]
        for planes, stride in zip(widths, strides):
            layers.append(BasicBlock(inplanes, planes, stride, _downsample(inplanes, planes, stride)))
            inplanes = planes
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class SmallMobileNet(nn.Module):
    """A small MobileNetV2: 16-channel stride-1 stem, torchvision inverted-residual blocks, 256-wide head; every
    channel count times `width`."""

    # (expansion t, output channels c, repeats n, first stride s), as in the MobileNetV2 paper
    SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 1, 2))

    def __init__(self, input_shape: InputShape, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        inp, head = _scaled(16, width), _scaled(256, width)
        layers: list[nn.Module] = [
            nn.Conv2d(input_shape[0], inp, 3, padding=1, bias=False), nn.BatchNorm2d(inp), nn.ReLU6(inplace=True),
        ]
        for t, c, n, s in self.SETTING:
            for i in range(n):
                layers.append(InvertedResidual(inp, _scaled(c, width), s if i == 0 else 1, t))
                inp = _scaled(c, width)
        layers += [nn.Conv2d(inp, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class Jitter(nn.Module):
    """Shifts each training image by up to `pixels` in each direction, its edge pixels replicated into the gap
    (Hinton et al. 2015 jittered MNIST by up to two pixels); the identity in eval mode, so the exported file
    has no trace of it."""

    def __init__(self, pixels: int) -> None:
        super().__init__()
        self.pixels = pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.pixels == 0:
            return x
        p, (height, breadth) = self.pixels, x.shape[-2:]
        padded = F.pad(x, (p, p, p, p), mode="replicate")
        offsets = torch.randint(0, 2 * p + 1, (2, len(x)), device=x.device)
        shifted = torch.empty_like(x)
        for dy in range(2 * p + 1):
            for dx in range(2 * p + 1):
                rows = (offsets[0] == dy) & (offsets[1] == dx)
                shifted[rows] = padded[rows, :, dy:dy + height, dx:dx + breadth]
        return shifted


class MLP(nn.Module):
    """A fully connected ReLU network on the flattened image: `hidden` layer sizes, then the classes; optional
    dropout on the input and after each hidden layer, and training-time jitter (the classic MNIST nets)."""

    def __init__(self, input_shape: InputShape, num_classes: int, hidden: tuple[int, ...], input_dropout: float = 0.0,
                 hidden_dropout: float = 0.0, jitter: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = [Jitter(jitter)] if jitter else []
        layers.append(nn.Flatten())
        if input_dropout:
            layers.append(nn.Dropout(input_dropout))
        width = math.prod(input_shape)
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if hidden_dropout:
                layers.append(nn.Dropout(hidden_dropout))
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def hinton_teacher(input_shape: InputShape, num_classes: int, pretrained: bool) -> nn.Module:
    """Hinton et al. 2015's big MNIST net: two hidden layers of 1200 ReLU units, dropout (20 % of the inputs,
    50 % of the hidden units) and inputs jittered by up to two pixels."""
    return MLP(input_shape, num_classes, (1200, 1200), input_dropout=0.2, hidden_dropout=0.5, jitter=2)


def hinton_student(input_shape: InputShape, num_classes: int, pretrained: bool) -> nn.Module:
    """Hinton et al. 2015's small MNIST net: two hidden layers of 800 ReLU units, no regularisation."""
    return MLP(input_shape, num_classes, (800, 800))


def lenet_300_100(input_shape: InputShape, num_classes: int, pretrained: bool) -> nn.Module:
    """LeNet-300-100 (LeCun et al. 1998; Han et al.'s Deep Compression): hidden layers of 300 and 100 ReLU units."""
    return MLP(input_shape, num_classes, (300, 100))


def _adapt_first_conv(conv: nn.Conv2d, channels: int) -> nn.Conv2d:
    """A copy of an RGB stem conv for `channels` inputs; 1-channel gets the RGB kernels summed."""
    if conv.in_channels == channels:
        return conv
    new = nn.Conv2d(channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=conv.bias is not None)
    if channels == 1:
        with torch.no_grad():
            new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
    return new


def _load_weights(weights: tvm.WeightsEnum, name: str) -> dict:
    """Download (or read from torch's hub cache) pretrained weights; one-line error offline."""
    try:
        return weights.get_state_dict(progress=False)
    except OSError as exc:  # URLError is an OSError
        target = torch.hub.get_dir() + "/checkpoints/" + weights.url.rsplit("/", 1)[-1]
        raise CompressionError(
            f"pretrained {name} weights could not be downloaded ({exc.__class__.__name__}): put the file at {target}"
        ) from exc


def torchvision_resnet18(input_shape: InputShape, num_classes: int, pretrained: bool) -> nn.Module:
    model = tvm.resnet18()
    if pretrained:
        model.load_state_dict(_load_weights(tvm.ResNet18_Weights.DEFAULT, "resnet18"))
    model.conv1 = _adapt_first_conv(model.conv1, input_shape[0])
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def torchvision_mobilenet_v3_small(input_shape: InputShape, num_classes: int, pretrained: bool) -> nn.Module:
    model = tvm.mobilenet_v3_small()
    if pretrained:
        model.load_state_dict(_load_weights(tvm.MobileNet_V3_Small_Weights.DEFAULT, "mobilenet_v3_small"))
    model.features[0][0] = _adapt_first_conv(model.features[0][0], input_shape[0])
    model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, num_classes)
    return model


def build_model(name: str, input_shape: InputShape, num_classes: int, pretrained: bool = False,
                width: float = 1.0) -> nn.Module:
    """A fresh model `name` for inputs of `input_shape` (C, H, W) and `num_classes` outputs; `width` multiplies
    the channel counts of a scalable family (a distillation student)."""
    check_model(name, pretrained)
    if width <= 0:
        raise CompressionError(f"width multiplier must be positive, got {width}")
    family = MODELS[name]
    if family.imported:
        if width != 1.0:
            raise CompressionError(f"an imported model has no width multiplier: distil '{name}' into a built-in "
                                   f"student ({', '.join(MODELS.where(scalable=True))})")
        return family.load()(name, tuple(input_shape), num_classes)
    if family.scalable:
        return family.load()(tuple(input_shape), num_classes, width)
    if width != 1.0:
        raise CompressionError(f"a width multiplier applies to {', '.join(MODELS.where(scalable=True))}, not to {name}")
    return family.load()(tuple(input_shape), num_classes, pretrained)

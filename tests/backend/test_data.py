"""compression.data on real files: sklearn digits, and tiny files in torchvision's on-disk formats."""

import math
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from compression.catalog import DATASETS, check_dataset
from compression.data import Splits, load_dataset
from compression.errors import CompressionError


def _indices_disjoint(*parts: torch.Tensor) -> None:
    """Rows of different splits must never be the same sample (images are distinct here)."""
    seen = [{tuple(row.tolist()) for row in p.flatten(1)} for p in parts]
    for i in range(len(seen)):
        for j in range(i + 1, len(seen)):
            assert not seen[i] & seen[j]


def _unnormalise(s: Splits, x: torch.Tensor) -> torch.Tensor:
    """Back to 0..1 pixels."""
    mean = torch.tensor(s.mean).view(1, -1, 1, 1)
    std = torch.tensor(s.std).view(1, -1, 1, 1)
    return x * std + mean


def _all_pixels_and_labels(s: Splits, parts: tuple[str, ...]) -> dict[bytes, int]:
    """uint8 image bytes -> label, over the given splits, after undoing the normalisation."""
    out = {}
    for part in parts:
        split = getattr(s, part)
        pixels = (_unnormalise(s, split.x) * 255).round().to(torch.uint8)
        for img, label in zip(pixels, split.y.tolist()):
            out[img.numpy().tobytes()] = label
    return out


def _distinct_images(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """n random uint8 images, all different (the first bytes carry the row number)."""
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    flat = images.reshape(n, -1)
    flat[:, 0], flat[:, 1] = np.arange(n) // 256, np.arange(n) % 256
    return images


# ---------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> Splits:
    return load_dataset("digits", seed=0)


def test_digits_shapes_and_classes(digits):
    assert digits.name == "digits"
    assert digits.input_shape == (1, 8, 8)
    assert digits.num_classes == 10 and digits.classes == [str(d) for d in range(10)]
    for split in (digits.train, digits.val, digits.test):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.x.shape[1:] == (1, 8, 8) and len(split.x) == len(split.y)
    assert len(digits.train.y) + len(digits.val.y) + len(digits.test.y) == 1797
    assert len(digits.test.y) == 360  # 20 %
    assert set(digits.test.y.tolist()) == set(range(10))  # stratified


def test_digits_train_normalised(digits):
    x = digits.train.x
    assert x.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    assert (x.std(dim=(0, 2, 3), correction=0) - 1).abs().max() < 1e-4
    assert 0 < digits.std[0] < 1 and 0 < digits.mean[0] < 1  # stats of 0..1 pixels


def test_digits_splits_disjoint(digits):
    from sklearn.datasets import load_digits

    # Every sample appears exactly once across the splits (by its pixels and label).
    raw = load_digits()
    original = sorted((img.astype(np.uint8).tobytes(), int(t)) for img, t in zip(raw.images, raw.target))
    loaded = []
    for split in (digits.train, digits.val, digits.test):
        pixels = (_unnormalise(digits, split.x) * 16).round().to(torch.uint8)
        loaded += [(img.numpy().tobytes(), label) for img, label in zip(pixels[:, 0], split.y.tolist())]
    assert sorted(loaded) == original


def test_digits_deterministic_by_seed(digits):
    again = load_dataset("digits", seed=0)
    assert torch.equal(again.train.x, digits.train.x) and torch.equal(again.test.y, digits.test.y)
    other = load_dataset("digits", seed=1)
    assert not torch.equal(other.test.x, digits.test.x)
    assert len(other.test.y) == len(digits.test.y)


def test_val_fraction_is_honoured():
    s = load_dataset("digits", val_fraction=0.25)
    assert len(s.val.y) == math.ceil(0.25 * (1797 - 360))
    with pytest.raises(CompressionError):
        load_dataset("digits", val_fraction=0)


# ---------------------------------------------------------------- MNIST-style IDX files


def _write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """The IDX format of the MNIST distribution: big-endian magic and sizes, then uint8 payload."""
    n, h, w = images.shape
    header = struct.pack(">IIII", 2051, n, h, w)
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_like_from_idx_files(tmp_path, name, folder):
    rng = np.random.default_rng(0)
    images = _distinct_images(rng, 50, (28, 28))
    labels = (np.arange(50) % 10).astype(np.uint8)
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    _write_idx(raw, "train", images[:40], labels[:40])
    _write_idx(raw, "t10k", images[40:], labels[40:])

    s = load_dataset(name, seed=3, root=tmp_path, download=False)

    assert s.input_shape == (1, 28, 28) and s.num_classes == 10 and len(s.classes) == 10
    assert (len(s.train.y), len(s.val.y), len(s.test.y)) == (36, 4, 10)
    expected_train = {img.tobytes(): int(t) for img, t in zip(images[:40], labels[:40])}
    expected_test = {img.tobytes(): int(t) for img, t in zip(images[40:], labels[40:])}
    assert _all_pixels_and_labels(s, ("train", "val")) == expected_train
    assert _all_pixels_and_labels(s, ("test",)) == expected_test  # the official test set, untouched
    _indices_disjoint(s.train.x, s.val.x, s.test.x)
    assert abs(s.mean[0] - images[:40].mean() / 255) < 0.02  # train statistics, not the whole pool


def test_mnist_offline_missing_files_one_line_error(tmp_path):
    with pytest.raises(CompressionError) as info:
        load_dataset("mnist", root=tmp_path, download=False)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "MNIST" / "raw") in message and message.startswith("mnist:")
    assert "train-images-idx3-ubyte" in message


# ---------------------------------------------------------------- CIFAR-10 python batches


def _pickle(path: Path, obj: dict) -> None:
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=2)


class _Python2Pickler(pickle._Pickler):
    """Pickles as Python 2 wrote CIFAR-10's official batches: strings and bytes as Python 2 str (BINSTRING),
    numpy's functions under numpy 1's module names."""

    def save_bytes(self, obj: bytes) -> None:
        n = len(obj)
        header = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(header + obj)

    def save_str(self, obj: str) -> None:
        self.save_bytes(obj.encode("latin-1"))

    def save_global(self, obj, name=None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())

    dispatch = {**pickle._Pickler.dispatch, bytes: save_bytes, str: save_str}


def _pickle_as_python2(path: Path, obj: dict) -> None:
    with path.open("wb") as f:
        _Python2Pickler(f, protocol=2).dump(obj)


@pytest.mark.parametrize("write", [_pickle, _pickle_as_python2])
def test_cifar10_from_python_batches(tmp_path, write):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    images = _distinct_images(rng, 60, (3, 32, 32))
    labels = [i % 10 for i in range(60)]
    for b in range(5):  # 5 train batches of 10, then the test batch
        rows = slice(10 * b, 10 * b + 10)
        batch = {"data": images[rows].reshape(10, 3072), "labels": labels[rows]}
        write(folder / f"data_batch_{b + 1}", batch)
    write(folder / "test_batch", {"data": images[50:].reshape(10, 3072), "labels": labels[50:]})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    write(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": 10, "num_vis": 3072})

    s = load_dataset("cifar10", root=tmp_path, download=False)

    assert s.input_shape == (3, 32, 32) and s.classes == names and len(s.mean) == 3
    assert (len(s.train.y), len(s.val.y), len(s.test.y)) == (45, 5, 10)
    expected = {img.tobytes(): t for img, t in zip(images, labels)}
    assert _all_pixels_and_labels(s, ("train", "val")) == dict(list(expected.items())[:50])
    assert _all_pixels_and_labels(s, ("test",)) == dict(list(expected.items())[50:])  # official test set
    _indices_disjoint(s.train.x, s.val.x, s.test.x)


# ---------------------------------------------------------------- image folders


def _image_folder(root: Path, classes=("cat", "dog", "owl"), per_class: int = 6) -> Path:
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            size = (10 + 3 * i, 12 + c)
            mode = "L" if i % 2 else "RGB"  # grey images become RGB
            colour = 40 * c + 5 * i if mode == "L" else (40 * c, 5 * i, 200)
            Image.new(mode, size, colour).save(root / name / f"{i}.png")
    return root


def test_imagefolder_loads_resized_rgb(tmp_path):
    folder = _image_folder(tmp_path / "pets")

    s = load_dataset(f"imagefolder:{folder}", seed=0, image_size=16)

    assert s.input_shape == (3, 16, 16) and s.classes == ["cat", "dog", "owl"] and s.num_classes == 3
    assert len(s.train.y) + len(s.val.y) + len(s.test.y) == 18
    assert min(len(s.val.y), len(s.test.y)) >= 1
    assert set(s.test.y.tolist()) == {0, 1, 2}  # stratified
    # each image is one flat colour: pixel (0, 0) of a cat in the test split is a value we wrote
    cat = _unnormalise(s, s.test.x[s.test.y == 0])[0]
    assert torch.allclose(cat, cat[:, :1, :1].expand_as(cat), atol=1e-5)
    assert torch.equal(load_dataset(f"imagefolder:{folder}", seed=0, image_size=16).test.x, s.test.x)


def test_imagefolder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "noimages" / "a").mkdir(parents=True)
    (tmp_path / "noimages" / "b").mkdir()
    _image_folder(tmp_path / "one", classes=("only",))
    (tmp_path / "file.txt").write_text("x")
    cases = {
        "missing": "does not exist",
        "file.txt": "neither a folder nor a .zip",
        "empty": "no class folders",
        "noimages": "no images",
        "one": "at least 2",
    }
    for folder, expected in cases.items():
        with pytest.raises(CompressionError) as info:
            load_dataset(f"imagefolder:{tmp_path / folder}")
        assert expected in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- names


def test_check_dataset():
    for name in DATASETS:
        check_dataset(name)
    with pytest.raises(CompressionError) as info:
        load_dataset("foo")
    message = str(info.value)
    assert "'foo'" in message and "\n" not in message
    assert all(name in message for name in DATASETS) and "imagefolder:PATH" in message
    with pytest.raises(CompressionError):
        check_dataset("imagefolder:")

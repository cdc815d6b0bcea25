"""The pixel cache and streamed splits on real image folders: decoded once, keyed by the folder's files, the same
rows and values as in memory, trained on through DataLoader workers, and a bad image refused in one line even
when a worker decodes it."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from compression import pixels
from compression.data import Normalisation, load_dataset
from compression.errors import CompressionError
from compression.train import evaluate, fit

STREAM = "COMPRESSION_STREAM_ABOVE_BYTES"


def _folder(root: Path, per_class: int = 40, classes: int = 3) -> Path:
    """Noisy images whose mean brightness tells the class (learnable), of varied sizes."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels_ = np.clip(rng.normal(60 + 70 * c, 25, (12 + i % 5, 14, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels_).save(root / f"c{c}" / f"{i}.png")
    return root


def _caches(home: Path) -> list[Path]:
    return sorted((home / "cache" / "pixels").glob("*.npy"))


def test_streamed_splits_hold_the_rows_and_values_of_the_in_memory_ones(tmp_path, home, monkeypatch):
    folder = _folder(tmp_path / "images")
    in_memory = load_dataset(f"imagefolder:{folder}", seed=3, image_size=16)
    monkeypatch.setenv(STREAM, "1000")
    streamed = load_dataset(f"imagefolder:{folder}", seed=3, image_size=16)

    assert isinstance(streamed.train.x, pixels.StreamedImages) and isinstance(in_memory.train.x, torch.Tensor)
    assert len(_caches(home)) == 1  # decoded once: the second load read the cache
    np.testing.assert_allclose(streamed.mean, in_memory.mean, rtol=1e-5)  # histogram vs torch.var_mean
    np.testing.assert_allclose(streamed.std, in_memory.std, rtol=1e-5)
    for part in ("train", "val", "test"):
        a, b = getattr(streamed, part), getattr(in_memory, part)
        assert torch.equal(a.y, b.y) and a.x.shape == b.x.shape and a.x.dtype == torch.float32
        torch.testing.assert_close(a.x[:], b.x, rtol=1e-4, atol=1e-4)
    # indexed like a tensor: int, positions, boolean mask
    torch.testing.assert_close(streamed.test.x[2], in_memory.test.x[2], rtol=1e-4, atol=1e-4)
    mask = streamed.test.y == 1
    torch.testing.assert_close(streamed.test.x[mask], in_memory.test.x[mask], rtol=1e-4, atol=1e-4)


def test_with_the_models_normalisation_streamed_values_are_bit_identical(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "images", per_class=10)
    norm = Normalisation((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    in_memory = load_dataset(f"imagefolder:{folder}", seed=0, image_size=8, norm=norm)
    monkeypatch.setenv(STREAM, "1")
    streamed = load_dataset(f"imagefolder:{folder}", seed=0, image_size=8, norm=norm)
    assert torch.equal(streamed.train.x[torch.arange(len(streamed.train.y))], in_memory.train.x)


def test_a_model_trains_on_a_streamed_split_through_dataloader_workers(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "images")
    monkeypatch.setenv(STREAM, "1")
    splits = load_dataset(f"imagefolder:{folder}", seed=0, image_size=8)
    assert pixels.WORKERS >= 1
    batches = list(splits.train.x.batches(torch.arange(len(splits.train.y)), 16))
    assert [len(idx) for _, idx in batches][:-1] == [16] * (len(batches) - 1)
    assert torch.equal(torch.cat([x for x, _ in batches]), splits.train.x[:])  # workers keep the order

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    fit(model, splits.train, epochs=15, seed=0, batch_size=16)
    assert evaluate(model, splits.test) >= 0.9  # brightness separates the classes: chance is 0.33


def test_the_cache_follows_the_folder_and_a_failed_decode_leaves_none(tmp_path, home, monkeypatch):
    folder = _folder(tmp_path / "images", per_class=10)
    load_dataset(f"imagefolder:{folder}", image_size=8)
    first = _caches(home)
    load_dataset(f"imagefolder:{folder}", image_size=10)  # another size: another cache
    assert len(_caches(home)) == 2
    image = folder / "c0" / "0.png"
    Image.new("RGB", (9, 9), (255, 0, 0)).save(image)
    os.utime(image, ns=(1, 1))  # an edited image (its time set far off, so the edit shows even within a tick)
    edited = load_dataset(f"imagefolder:{folder}", image_size=8)
    assert len(_caches(home)) == 3 and first[0].exists()
    assert edited.num_classes == 3

    (folder / "c1" / "bad.png").write_bytes(b"not an image")
    monkeypatch.setattr(pixels, "PARALLEL_FROM", 1)  # decoded by DataLoader workers
    with pytest.raises(CompressionError) as info:
        load_dataset(f"imagefolder:{folder}", image_size=8)
    assert "cannot read image" in str(info.value) and "bad.png" in str(info.value)
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
    assert len(_caches(home)) == 3 and not list((home / "cache" / "pixels").glob(".*partial"))


def test_a_cache_file_that_is_not_one_is_refused(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(CompressionError, match="not a decoded image cache"):
        pixels.MappedPixels(path)


def test_the_cache_keeps_the_most_recently_used_decodes_within_its_bound(tmp_path, home, monkeypatch):
    folders = [_folder(tmp_path / f"set{i}", per_class=4) for i in range(3)]
    one = 12 * 3 * 8 * 8 + 128  # a decode of 12 images at 8x8 with its .npy header
    monkeypatch.setenv("COMPRESSION_MAX_PIXEL_CACHE_BYTES", str(2 * one))
    load_dataset(f"imagefolder:{folders[0]}", image_size=8)
    [set0] = _caches(home)
    load_dataset(f"imagefolder:{folders[1]}", image_size=8)
    [set1] = set(_caches(home)) - {set0}
    os.utime(set0, (1, 1))
    os.utime(set1, (2, 2))
    load_dataset(f"imagefolder:{folders[0]}", image_size=8)  # a use refreshes set0's: set1's is the oldest now
    partial = home / "cache" / "pixels" / ".dead.1.partial"
    partial.write_bytes(b"left by a killed decode")
    os.utime(partial, (1, 1))

    load_dataset(f"imagefolder:{folders[2]}", image_size=8)

    kept = _caches(home)
    assert len(kept) == 2 and set0 in kept and set1 not in kept and not partial.exists()
    assert sum(p.stat().st_size for p in kept) <= 2 * one


def test_a_cache_folder_that_cannot_be_written_is_one_line(tmp_path, home):
    folder = _folder(tmp_path / "images", per_class=4)
    home.mkdir(parents=True, exist_ok=True)
    (home / "cache").write_text("a file where the cache folder goes")
    with pytest.raises(CompressionError) as info:
        load_dataset(f"imagefolder:{folder}", image_size=8)
    assert "cannot write the decoded images" in str(info.value) and "\n" not in str(info.value)

"""Classic experiments (compression/classic.py): the sparse-layout and Huffman arithmetic on hand-computed cases,
the requests' checks, the offline message naming the files to fetch, and both experiments run end to end for real
on a tiny MNIST written in the IDX format torchvision reads (scikit-learn's digits, enlarged to 28 × 28)."""

import struct
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from sklearn.datasets import load_digits

from compression import classic, data, pipeline
from compression.__main__ import main
from compression.errors import CompressionError
from compression.settings import data_dir
from compression.store import Store

MNIST_GZ = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz")


def write_mnist(raw: Path, train: int = 300, test: int = 100) -> None:
    """A tiny MNIST in the distribution's IDX format (big-endian magic and sizes, uint8 payload): scikit-learn's
    8 × 8 digits enlarged three times and padded to 28 × 28, the first `train` as the train files, the next `test`
    as t10k."""
    digits = load_digits()
    images = np.pad(np.kron(digits.images / 16 * 255, np.ones((3, 3))).astype(np.uint8), ((0, 0), (2, 2), (2, 2)))
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, rows in (("train", slice(0, train)), ("t10k", slice(train, train + test))):
        x, y = images[rows], digits.target[rows].astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, len(x), 28, 28) + x.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, len(y)) + y.tobytes())


@pytest.fixture
def one_thread():
    """Train on one thread: two threads on two cores others share run these tiny nets several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_mnist(home, one_thread):
    """This test's data folder holds the tiny MNIST; no split cached from another test's."""
    write_mnist(data_dir() / "MNIST" / "raw")
    pipeline.load_splits.cache_clear()
    yield
    pipeline.load_splits.cache_clear()


def test_huffman_bits_by_hand():
    # counts 5, 2, 1, 1: merges 1+1=2, 2+2=4, 4+5=9; code lengths 1, 2, 3, 3 → 5 + 4 + 3 + 3 = 15 bits
    assert classic.huffman_bits([5, 2, 1, 1]) == 15
    assert classic.huffman_bits([7]) == 7  # one symbol: a bit each
    assert classic.huffman_bits([4, 4, 4, 4]) == 32  # four equal symbols: 2 bits each


def test_sparse_layout_counts_non_zeros_filler_zeros_and_other_tensors(tmp_path):
    weights = np.zeros((1, 100), np.int8)
    weights[0, [0, 40, 99]] = [3, -2, 3]  # gaps 1, 40, 59: the last two each pass a 5-bit index's 32 once
    bias = np.ones(3, np.float32)
    graph = helper.make_graph([], "g", [], [], initializer=[numpy_helper.from_array(weights, "w"),
                                                            numpy_helper.from_array(bias, "b")])
    onnx.save(helper.make_model(graph), tmp_path / "m.onnx")

    layout = classic.sparse_layout(tmp_path / "m.onnx", index_bits=5)

    assert (layout.nonzero, layout.entries, layout.matrices, layout.dense_weights) == (3, 5, 1, 100)
    assert layout.other_bytes == 12  # the float bias as stored
    assert layout.size_bytes(8) == 5 * (8 + 5) / 8 + 12
    assert layout.size_bytes(6, 64) == (5 * (6 + 5) + 64 * 32) / 8 + 12  # a 64-entry float32 codebook
    # values 3, -2, 3 and two filler 0s → counts 2, 1, 2: merges 1+2=3, 2+3=5 → 8 bits; distances 1, 32+8, 32+27
    # → counts 1, 1, 1, 2: merges 1+1=2, 1+2=3, 2+3=5 → 10 bits
    assert layout.huffman_bits == 8 + 10


def test_requests_are_checked_in_one_line(capsys):
    for bad, words in ((classic.ClassicRequest("lenet"), "unknown experiment"),
                       (classic.ClassicRequest("hinton", "weekend"), "unknown setting"),
                       (classic.ClassicRequest("hinton", epochs_scale=0), "--epochs-scale"),
                       (classic.ClassicRequest("hinton", seed=-1), "seed")):
        with pytest.raises(CompressionError, match=words) as info:
            bad.validate()
        assert "\n" not in str(info.value)
    request = classic.ClassicRequest("deep-compression", "paper", 0.5)
    assert request.epochs == {"baseline": 20, "finetune": 10}
    recipes = request.recipes()
    assert recipes["pruned"].prune.ratio == classic.PRUNE_RATIO and recipes["pruned-int8"].quant.mode == "int8-static"
    assert recipes["pruned"].baseline() == recipes["baseline"]  # one baseline, shared by the stages
    keys = {classic.ClassicRequest("hinton").key, classic.ClassicRequest("hinton", "paper").key, request.key}
    assert len(keys) == 3
    assert main(["classic", "hinton", "--epochs-scale", "0"]) == 2  # the CLI: one line, exit 2, nothing run
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_offline_the_message_names_the_folder_and_the_four_files(home):
    folder = data_dir() / "MNIST" / "raw"
    message = data.missing_files("mnist")
    assert message is not None and "\n" not in message
    assert str(folder) in message and all(name in message for name in MNIST_GZ)
    with pytest.raises(CompressionError) as info:  # what a run says once the download has failed
        data.load_dataset("mnist", download=False)
    assert str(info.value).startswith(f"mnist: files not found in {folder}")
    assert all(name in str(info.value) for name in MNIST_GZ)
    write_mnist(folder)
    assert data.missing_files("mnist") is None


@pytest.mark.slow
def test_deep_compression_classroom_runs_end_to_end_and_is_stored(tiny_mnist, capsys):
    request = classic.ClassicRequest("deep-compression", "classroom", 0.01)  # one epoch each
    store = Store()

    result = classic.run(request, store)

    rows = {row.what: row for row in result.rows}
    base, pruned, int8 = (store.get_result(result.recipes[role]) for role in ("baseline", "pruned", "pruned-int8"))
    assert result.test_images == 100 and result.epochs == {"baseline": 1, "finetune": 1}
    assert rows["Weights kept after pruning"].ours_value == pytest.approx(1 - classic.PRUNE_RATIO, abs=0.01)
    assert rows["Weights kept after pruning"].published.startswith("8 %")
    assert rows["Pruned: file size"].ours_value == pytest.approx(1.0, abs=0.02)  # dense zeros: no smaller
    assert 3.5 < rows["Pruned + INT8: file size"].ours_value < 4.1  # 1 byte a weight instead of 4
    assert rows["Baseline LeNet-300-100: test error"].ours_value == pytest.approx((1 - base.accuracy) * 100)
    assert rows["Pruned + INT8: test error"].source.startswith("measured")
    low, high = (float(v) for v in rows["Pruned + INT8: test error"].interval.removesuffix(" %").split(" – "))
    assert low <= (1 - int8.accuracy) * 100 <= high
    sparse = rows[f"Sparse layout: INT8 values + {classic.INDEX_BITS}-bit relative indices"]
    assert sparse.source == "computed, not deployed"
    assert sparse.ours_value > rows["Pruned + INT8: file size"].ours_value * 3  # ~8 % of the weights stored
    assert pruned.params_nonzero < 0.1 * pruned.params_total
    assert result.epoch_seconds.keys() == {"train", "fine-tune"}
    assert result.paper_seconds == pytest.approx(40 * result.epoch_seconds["train"]
                                                 + 3 * 20 * result.epoch_seconds["fine-tune"])
    assert any("computed, not deployed" in line for line in result.why)
    assert any("McNemar p = " in line for line in result.why)  # baseline and INT8 file on the same test images
    assert classic.stored(request, store) == result  # a reload shows it

    assert main(["classic", "deep-compression", "--epochs-scale", "0.01", "--json"]) == 0  # from the store
    out = capsys.readouterr()
    assert '"experiment":"deep-compression"' in out.out and "Weights kept after pruning: ours" in out.err


@pytest.mark.slow
def test_hinton_classroom_runs_teacher_kd_student_and_control(tiny_mnist):
    result = classic.run(classic.ClassicRequest("hinton", "classroom", 0.1), Store())

    students = Store().get_result(result.recipes["students"])
    n, report = result.test_images, students.distill
    big, small, kd = (row.ours_value for row in result.rows[:3])
    assert [row.published for row in result.rows[:3]] == ["67", "146", "74"]
    assert (small, kd) == (classic.errors(report.control_accuracy, n), classic.errors(report.student_accuracy, n))
    assert big == classic.errors(report.teacher_accuracy, n)
    assert result.rows[3].ours_value == small - kd
    assert report.temperature == classic.HINTON_T and report.student == "mlp-800"
    assert result.epochs == {"teacher": 1, "student": 1}
    assert result.paper_seconds == pytest.approx(60 * result.epoch_seconds["train"]
                                                 + 2 * 40 * result.epoch_seconds["distill"])

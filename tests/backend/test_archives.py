"""compression.archives on real zip files: good zips of class folders unpack to a folder the walk accepts, once;
every hostile zip (zip-slip, links, bombs, lies, damage, encryption, no images) is one line and leaves nothing."""

import io
import os
import random
import stat
import struct
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from compression import archives, folders
from compression.archives import dataset_folder, is_archive, unpack
from compression.errors import CompressionError

MIB = 1 << 20


def _png(seed: int) -> bytes:
    """A small real PNG, different for each seed."""
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _zip(path: Path, entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def _pets(top: str = "") -> dict[str, bytes]:
    """Two classes (3 cats, 2 dogs, one in a sub-folder) and the junk macOS and people put beside them."""
    images = {f"{top}cats/{i}.png": _png(i) for i in range(3)}
    images |= {f"{top}dogs/a.png": _png(10), f"{top}dogs/more/b.png": _png(11)}
    junk = {f"__MACOSX/{top}cats/._0.png": b"\0\5\26\7 AppleDouble", f"{top}.DS_Store": b"\0\0\0\1Bud1",
            f"{top}README.txt": b"my pets", f"{top}cats/._1.png": b"\0\5\26\7"}
    return images | junk


def _tree(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def _entry_offsets(data: bytes, name: str) -> tuple[int, int]:
    """The offsets of entry `name`'s central directory header and local file header."""
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        length, = struct.unpack_from("<H", data, at + 28)
        if data[at + 46:at + 46 + length] == name.encode():
            local, = struct.unpack_from("<L", data, at + 42)
            return at, local
        at = data.find(b"PK\x01\x02", at + 1)
    raise AssertionError(f"no entry {name}")


def _patch(path: Path, name: str, central: int, local: int, change: Callable[[int], int]) -> None:
    """Rewrite one 32-bit (sizes) or 16-bit (flags) field of entry `name` in both its headers."""
    data = bytearray(path.read_bytes())
    at, header = _entry_offsets(bytes(data), name)
    for offset in (at + central, header + local):
        fmt = "<H" if central == 8 else "<L"
        value, = struct.unpack_from(fmt, data, offset)
        struct.pack_into(fmt, data, offset, change(value))
    path.write_bytes(bytes(data))


def _one_line_refusal(archive: Path, into: Path) -> str:
    with pytest.raises(CompressionError) as caught:
        unpack(archive, into)
    message = str(caught.value)
    assert message.startswith("zip: ") and "\n" not in message
    return message


# ------------------------------------------------------------------------------------------- good zips


@pytest.mark.parametrize("top", ["", "pets/"])
def test_a_zip_of_class_folders_unpacks_to_a_folder_the_walk_accepts(tmp_path, top):
    root = unpack(_zip(tmp_path / "pets.zip", _pets(top)), tmp_path / "out")
    assert root == tmp_path / "out" / top
    classes, samples = folders.scan(root)
    assert classes == ["cats", "dogs"]
    assert [label for _, label in samples].count(0) == 3 and [label for _, label in samples].count(1) == 2
    assert Path(samples[0][0]).read_bytes() == _png(0)
    unpacked = {p.relative_to(tmp_path / "out").as_posix() for p in _tree(tmp_path / "out") if p.is_file()}
    assert unpacked == {n for n in _pets(top) if n.endswith(".png") and "/._" not in n
                        and not n.startswith("__MACOSX")} | {archives.COMPLETE}


def test_a_zip_is_unpacked_once_and_reused(tmp_path):
    archive = _zip(tmp_path / "pets.zip", _pets("pets/"))
    data_root = tmp_path / "data"
    first = dataset_folder(archive, data_root)
    folder = data_root / "zips" / first.relative_to(data_root / "zips").parts[0]
    assert len(folder.name) == 16 and first == folder / "pets"
    (first / "cats" / "planted.txt").write_text("survives only if nothing is unpacked again")
    inode = os.stat(folder).st_ino
    again = dataset_folder(archive.rename(tmp_path / "renamed.zip"), data_root)  # the same bytes, another name
    assert again == first and os.stat(folder).st_ino == inode and (first / "cats" / "planted.txt").exists()
    assert list((data_root / "zips").iterdir()) == [folder]
    other = dataset_folder(_zip(tmp_path / "other.zip", _pets()), data_root)
    assert other.parent == data_root / "zips" and other != folder and folders.scan(other)[0] == ["cats", "dogs"]


def test_a_copy_damaged_since_is_unpacked_again(tmp_path):
    archive = _zip(tmp_path / "pets.zip", _pets())
    root = dataset_folder(archive, tmp_path / "data")
    (root / archives.COMPLETE).unlink()
    (root / "cats" / "0.png").unlink()
    assert dataset_folder(archive, tmp_path / "data") == root
    assert (root / "cats" / "0.png").read_bytes() == _png(0) and len(folders.scan(root)[1]) == 5
    assert list((tmp_path / "data" / "zips").iterdir()) == [root]


def test_unpacking_the_same_zip_at_once_keeps_one_complete_copy(tmp_path):
    archive = _zip(tmp_path / "pets.zip", {f"c{i % 4}/{i}.png": _png(i) for i in range(200)})
    start, found, failed = threading.Barrier(4), [], []

    def unpack_it() -> None:
        start.wait()
        try:
            found.append(dataset_folder(archive, tmp_path / "data"))
        except Exception as err:  # any failure of a racer is the finding
            failed.append(err)

    racers = [threading.Thread(target=unpack_it) for _ in range(4)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert not failed and len(set(found)) == 1
    assert list((tmp_path / "data" / "zips").iterdir()) == found[:1]  # the losers' copies are gone
    assert len(folders.scan(found[0])[1]) == 200


def test_unpack_never_replaces_a_folder_that_is_there(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("kept")
    archive = _zip(tmp_path / "pets.zip", _pets())
    before = _tree(tmp_path)
    assert "exists already" in _one_line_refusal(archive, tmp_path / "out")
    assert _tree(tmp_path) == before


def test_an_entry_whose_name_is_empty_is_skipped(tmp_path):
    """zipfile cuts a name at its first NUL: an entry named '\\0junk' in the central directory has the name ''."""
    archive = _zip(tmp_path / "pets.zip", _pets() | {"Xjunk": b"junk"})
    data = bytearray(archive.read_bytes())
    data[_entry_offsets(bytes(data), "Xjunk")[0] + 46] = 0
    archive.write_bytes(bytes(data))
    assert "" in zipfile.ZipFile(archive).namelist()
    assert len(folders.scan(unpack(archive, tmp_path / "out"))[1]) == 5


def test_is_archive_is_a_regular_file_named_zip(tmp_path):
    _zip(tmp_path / "a.zip", _pets())
    _zip(tmp_path / "B.ZIP", _pets())
    (tmp_path / "folder.zip").mkdir()
    (tmp_path / "a.txt").write_text("no")
    os.mkfifo(tmp_path / "pipe.zip")
    assert is_archive(tmp_path / "a.zip") and is_archive(tmp_path / "B.ZIP")
    assert not any(is_archive(tmp_path / n) for n in ("folder.zip", "a.txt", "pipe.zip", "missing.zip", "x" * 300))


def test_the_image_formats_are_the_loaders():
    from compression import data  # imports torch: only here
    assert archives.IMAGE_FORMATS == data._IMAGE_FORMATS


# ------------------------------------------------------------------------------------------- hostile zips


def _symlink(path: Path, mode: int = stat.S_IFLNK | 0o777) -> None:
    link = zipfile.ZipInfo("cats/link.png")
    link.external_attr = mode << 16
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cats/0.png", _png(0))
        archive.writestr(link, "/etc/passwd")


def _bomb(path: Path) -> None:
    """50 MB of zeros in one entry: deflate squeezes it about 1000:1."""
    _zip(path, {"cats/0.png": _png(0), "cats/bomb.png": bytes(50 * MIB)})


def _lying_size(path: Path) -> None:
    """An entry of 3 MiB of zeros whose headers declare 1000 bytes: under the ratio floor and the byte cap as
    declared. zipfile stops reading an entry at its declared size, so the lie shows as a CRC mismatch; the byte
    count while writing (`test_the_bytes_written_are_capped_whatever_the_zip_declares`) guards a reader that
    would not stop."""
    _zip(path, {"cats/0.png": _png(0), "cats/big.png": bytes(3 * MIB)})
    _patch(path, "cats/big.png", 24, 22, lambda _: 1000)


def _encrypted(path: Path) -> None:
    """The stdlib writes no encrypted zip: set the 'encrypted' flag bit of a plain entry."""
    _zip(path, {"cats/0.png": _png(0), "dogs/0.png": _png(1)})
    _patch(path, "dogs/0.png", 8, 6, lambda flags: flags | 0x1)


def _truncated(path: Path) -> None:
    _zip(path, _pets())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


HOSTILE = {  # id: (writes the zip, environment, what the message says)
    "parent": (lambda p: _zip(p, {"cats/0.png": _png(0), "../evil.png": _png(1)}), {}, "'..' component"),
    "nested-parent": (lambda p: _zip(p, {"cats/../../evil.png": _png(1)}), {}, "'..' component"),
    "absolute": (lambda p: _zip(p, {"/tmp/evil.png": _png(1)}), {}, "absolute path"),
    "drive": (lambda p: _zip(p, {"C:/evil.png": _png(1)}), {}, "names a drive"),
    "backslash": (lambda p: _zip(p, {"..\\..\\evil.png": _png(1)}), {}, "backslash"),
    "control": (lambda p: _zip(p, {"cats/a\nb.png": _png(1)}), {}, "control character"),
    "symlink": (_symlink, {}, "symbolic link"),
    "fifo": (lambda p: _symlink(p, stat.S_IFIFO | 0o644), {}, "device, FIFO or socket"),
    "bomb": (_bomb, {}, "more than 200:1"),
    "bytes": (lambda p: _zip(p, _pets()), {"COMPRESSION_MAX_ZIP_BYTES": "100"}, "COMPRESSION_MAX_ZIP_BYTES"),
    "entries": (lambda p: _zip(p, _pets()), {"COMPRESSION_MAX_ZIP_ENTRIES": "5"}, "more than 5 entries"),
    "lying-size": (_lying_size, {}, "'cats/big.png' of 'hostile.zip' is damaged (BadZipFile)"),
    "text-as-png": (lambda p: _zip(p, {"cats/0.png": _png(0), "cats/x.png": b"not an image"}), {},
                    "'cats/x.png' of 'hostile.zip' is not a BMP, JPEG, PNG, PPM, TIFF or WEBP image"),
    "eps-as-png": (lambda p: _zip(p, {"cats/x.png": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 1 1\n"}), {},
                   "not a BMP"),
    "no-images": (lambda p: _zip(p, {"cats/README.txt": b"hi", "__MACOSX/cats/._0.png": b"\0"}), {},
                  "holds no image files"),
    "truncated": (_truncated, {}, "not a zip file, or is truncated or damaged"),
    "not-a-zip": (lambda p: p.write_bytes(_png(0)), {}, "not a zip file"),
    "encrypted": (_encrypted, {}, "'dogs/0.png' of 'hostile.zip' is encrypted"),
    "lzma": (lambda p: _zip(p, _pets(), zipfile.ZIP_LZMA), {}, "compressed with method 14"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_a_hostile_zip_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, case):
    write, environment, says = HOSTILE[case]
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    write(tmp_path / "hostile.zip")
    before = _tree(tmp_path)
    assert says in _one_line_refusal(tmp_path / "hostile.zip", tmp_path / "out")
    assert _tree(tmp_path) == before
    with pytest.raises(CompressionError, match="^zip: "):
        dataset_folder(tmp_path / "hostile.zip", tmp_path / "data")
    assert _tree(tmp_path) - before == {tmp_path / "data", tmp_path / "data" / "zips"}


def test_the_ratio_guard_spares_small_entries_and_yields_to_its_variable(tmp_path, monkeypatch):
    small = _zip(tmp_path / "small.zip", {"cats/0.png": _png(0), "dogs/0.png": _png(1), "cats/zeros.txt": bytes(MIB)})
    assert folders.scan(unpack(small, tmp_path / "small"))[0] == ["cats", "dogs"]
    _bomb(tmp_path / "bomb.zip")
    monkeypatch.setenv("COMPRESSION_MAX_ZIP_RATIO", "100000")
    assert "is not a BMP" in _one_line_refusal(tmp_path / "bomb.zip", tmp_path / "bomb")  # unpacked, checked


def test_the_bytes_written_are_capped_whatever_the_zip_declares():
    budget = archives.Budget("'a.zip'", most=10)
    budget.spend(6)
    budget.spend(4)
    with pytest.raises(CompressionError, match=r"^zip: 'a.zip' unpacks to more than 10 bytes .*"
                                               r"COMPRESSION_MAX_ZIP_BYTES"):
        budget.spend(1)


def test_a_fifo_named_zip_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.zip")
    assert "not a regular file" in _one_line_refusal(tmp_path / "pipe.zip", tmp_path / "out")
    assert "cannot read 'missing.zip' (FileNotFoundError)" in _one_line_refusal(tmp_path / "missing.zip",
                                                                              tmp_path / "out")


def test_damaged_bytes_anywhere_are_refused_in_one_line_or_unpack_cleanly(tmp_path):
    good = _zip(tmp_path / "good.zip", _pets("pets/")).read_bytes()
    rng = random.Random(0)
    for i in range(2000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if i % 10 == 0:
            data = data[:rng.randrange(len(data))]
        (tmp_path / "damaged.zip").write_bytes(bytes(data))
        try:
            folders.scan(unpack(tmp_path / "damaged.zip", tmp_path / f"out{i}"))
        except CompressionError as err:
            assert str(err).startswith(("zip: ", "imagefolder: ")) and "\n" not in str(err)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging copy left behind

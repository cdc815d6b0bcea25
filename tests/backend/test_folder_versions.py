"""An image folder's recipes are keyed by its contents (folders.pinned): editing the folder gives new keys, and a
recipe made before the edit is refused rather than served stale results or scored on another test split."""

import os
import shutil
import zipfile
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from compression import folders, pipeline
from compression.errors import CompressionError
from compression.recipe import Recipe
from compression.store import Store


def _write_image(path, value: int) -> None:
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)


def _folder(root, per_class: int = 30):
    """A folder of two classes of small distinct PNG images."""
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            _write_image(root / label / f"{i}.png", hash((label, i)) % 10_000)
    return root


def test_adding_renaming_or_editing_an_image_changes_the_key(tmp_path):
    folder = _folder(tmp_path / "images")
    recipe = folders.pinned(Recipe(dataset=f"imagefolder:{folder}"))
    assert recipe.data_version is not None and recipe.data_version in recipe.to_dict().values()
    assert folders.pinned(Recipe(dataset=f"imagefolder:{folder}")).hash == recipe.hash  # unchanged: same key
    seen = {recipe.hash}
    _write_image(folder / "cat" / "new.png", 1)  # added
    seen.add(folders.pinned(Recipe(dataset=f"imagefolder:{folder}")).hash)
    os.rename(folder / "cat" / "new.png", folder / "dog" / "new.png")  # moved to another class
    seen.add(folders.pinned(Recipe(dataset=f"imagefolder:{folder}")).hash)
    (folder / "dog" / "new.png").write_bytes(b"x" * 10)  # edited
    seen.add(folders.pinned(Recipe(dataset=f"imagefolder:{folder}")).hash)
    assert len(seen) == 4
    assert folders.pinned(Recipe(dataset=f"imagefolder:{folder}")).training_key != recipe.training_key


def test_a_recipe_made_before_an_edit_is_refused_in_one_line(tmp_path):
    folder = _folder(tmp_path / "images")
    recipe = folders.pinned(Recipe(dataset=f"imagefolder:{folder}"))
    _write_image(folder / "dog" / "more.png", 2)
    with pytest.raises(CompressionError, match="changed since this recipe was made") as err:
        folders.pinned(recipe)
    assert "\n" not in str(err.value)


def test_built_in_data_sets_keep_their_keys():
    recipe = Recipe()
    assert folders.pinned(recipe) is recipe
    assert "data_version" not in recipe.to_dict()
    assert Recipe.from_dict(recipe.to_dict()) == recipe


def test_a_zip_unpacked_again_keeps_its_key(tmp_path, home):
    source = _folder(tmp_path / "images")
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(source.rglob("*.png")):
            zf.write(file, file.relative_to(source))
    first = folders.fingerprint(f"imagefolder:{archive}")
    shutil.rmtree(home / "data" / "zips")  # the unpacked copy gone: unpacked again, with new file times
    assert folders.fingerprint(f"imagefolder:{archive}") == first


@pytest.mark.slow
def test_an_edited_folder_is_measured_again_not_served_stale(tmp_path):
    """The stale-folder case end to end: a baseline measured, images added, the same sidebar choice gives a new
    workspace scored on the new test split, and the recipe made before the edit is refused."""
    folder = _folder(tmp_path / "images")
    store = Store(tmp_path / "store")
    before = pipeline.run(Recipe(dataset=f"imagefolder:{folder}", model="cnn", epochs=1), store)
    for i in range(20):
        _write_image(folder / "dog" / f"added{i}.png", 100 + i)
    after = pipeline.run(Recipe(dataset=f"imagefolder:{folder}", model="cnn", epochs=1), store)
    assert after.recipe_hash != before.recipe_hash
    assert after.test_images > before.test_images
    with pytest.raises(CompressionError, match="changed since"):
        pipeline.run(Recipe.from_dict(before.recipe), store)
    assert replace(Recipe.from_dict(after.recipe), data_version=None).hash == \
        replace(Recipe.from_dict(before.recipe), data_version=None).hash

"""The technique pages' teaching views through Streamlit's AppTest, on a store measured for real once: the
Quantization page's x → q → x̂ table and original-vs-dequantized chart on a layer with enough weights, its clip
caption; the Pruning page's accuracy right after the cut beside after fine-tuning and the filters the cut
removes; the Distillation page's training curves, the KD student's soft targets beside the teacher's, the
teacher's mistakes and why there is no classroom preset."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from compression import distill, pipeline
from compression.recipe import DistillSpec, PruneSpec, Recipe
from compression.store import Store

APP = str(Path(__file__).resolve().parents[2] / "app.py")
EPOCHS = 3
BASE = Recipe(epochs=EPOCHS)
PRUNE = PruneSpec("channel-l2", 0.5, steps=2, finetune_epochs=1)
DISTILL = DistillSpec(width=0.25, epochs=2)


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("teaching")
    store = Store(root)
    for recipe in (BASE, replace(BASE, prune=PRUNE), replace(BASE, distill=DISTILL)):
        pipeline.run(recipe, store)
    return root


@pytest.fixture
def stored(measured, home, monkeypatch) -> Path:
    shutil.copytree(measured, home, dirs_exist_ok=True)
    monkeypatch.setenv("COMPRESSION_HOME", str(home))
    return home


def start(page: str, **choices) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in {"epochs": EPOCHS, **choices}.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def chart_titles(at: AppTest) -> list[str]:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return [spec["layout"].get("title", {}).get("text", "") for spec in specs]


def captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.main.caption)


def test_quantization_shows_weights_through_the_quantizer(stored):
    at = start("app_pages/quantization.py", quant_mode="fake", quant_bits=2, quant_scheme="asymmetric",
               quant_granularity="per-tensor")
    assert at.selectbox(key="quant_view_layer").value == "features.3"  # 288 weights a channel, not the first conv's 9
    [table] = [d.value for d in at.main.dataframe if "q (integer code)" in d.value.columns]
    assert len(table) == 8 and set(table["q (integer code)"]) <= {0, 1, 2, 3}  # 2 bits: four codes
    assert any("the original weights and the dequantized ones" in t for t in chart_titles(at))
    assert "red: the clipping range" in captions(at)
    assert "beyond it, by at most" in captions(at) or "none clips" in captions(at)  # whichever the counts say


def test_pruning_shows_the_cut_beside_fine_tuning_and_the_filters_removed(stored):
    at = start("app_pages/pruning.py", prune_method="channel-l2", prune_ratio=0.5, prune_steps=2, prune_finetune=1)
    labels = [m.label for m in at.main.metric]
    assert {"Before pruning", "Right after the cut", "After fine-tuning"} <= set(labels)
    titles = chart_titles(at)
    assert any(t.startswith("Validation accuracy before each cut") for t in titles)
    assert any("the cut removes in red" in t and "filters" in t for t in titles)


def test_distillation_shows_curves_soft_targets_mistakes_and_the_preset(stored):
    at = start("app_pages/distillation.py", distill_width=0.25, distill_epochs=2, distill_temperature=4.0,
               distill_alpha=0.7)
    assert any(m.value.startswith("**Training curves") for m in at.markdown)
    assert {"Training loss", "Train accuracy"} <= set(chart_titles(at))
    assert "Soft targets at T = 4: the teacher's, and the KD student's" in [s.value for s in at.subheader]
    assert "Violet: the stored KD student" in captions(at)
    at.radio(key="distill_images").set_value("the teacher's mistakes").run()
    assert not at.exception
    assert "red titles" in captions(at) or any("every validation image correctly" in i.value for i in at.info)
    assert distill.CLASSROOM_NOTE in captions(at)  # no preset on digits, and the figures that say why

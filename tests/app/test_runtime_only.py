"""A runtime-only import in the app (an ONNX graph onnxruntime runs but onnx2torch cannot convert), through
Streamlit's AppTest: the sidebar says which techniques apply; Pruning and Distillation say why they need a torch
form, refuse the recipe in one line and keep their Run button disabled; Quantization measures int8-static on it
in onnxruntime."""

from streamlit.testing.v1 import AppTest

from compression import imports
from compression.imports import ImportRequest
from compression.recipe import QuantSpec, Recipe
from compression.store import Store
from ui import uploads

from tests.app.test_hostile_app import start
from tests.app.test_uploads import tiny_onnx, until_card
from tests.backend.test_imports import _with_op_onnx2torch_lacks

RUN_TIMEOUT = 300


def refused_run(at: AppTest, page: str, button: str) -> str:
    """Open `page`: its one error line, after checking its Run `button` is disabled and the page says why."""
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert next(b for b in at.button if b.label == button).disabled
    assert any("needs the model in torch; graph runs in onnxruntime only" in i.value for i in at.info)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    return errors[0]


def test_a_runtime_only_import_offers_the_runtimes_formats_and_says_why_not_the_rest(tmp_path):
    graph = _with_op_onnx2torch_lacks(tiny_onnx(tmp_path / "tiny.onnx"), tmp_path / "graph.onnx")
    assert imports.import_model(ImportRequest(graph, "graph", "digits")).runtime_only
    at = start(model="graph")
    card = until_card(at)
    assert set(card) == {"Accuracy", "Size", "Latency", "FLOPs"}
    assert uploads.imported_note("graph", Store()) in [c.value for c in at.sidebar.caption]
    assert "runtime-only" in uploads.imported_note("graph", Store())

    assert "prune needs a torch form" in refused_run(at, "app_pages/pruning.py", "Prune and measure")
    assert "distill needs a torch form" in refused_run(at, "app_pages/distillation.py", "Distil and measure")

    at.switch_page("app_pages/quantization.py").run()
    at.session_state["quant_mode"] = "int8-static"
    at.session_state["quant_calib_samples"] = 64
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    next(b for b in at.button if b.label == "Quantize and measure").click().run(timeout=RUN_TIMEOUT)
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = {m.label: m.value for m in at.main.metric}
    assert float(shown["Size"].rstrip("×")) < 0.5 and shown["Latency p50"].endswith("×")
    assert "measured · onnxruntime, test split" in "\n".join(c.value for c in at.main.caption)
    stored = Store().get_result(Recipe(model="graph", quant=QuantSpec("int8-static", calib_samples=64)).hash)
    assert stored is not None and stored.quant.runs_integer

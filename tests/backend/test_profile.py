"""Where the time goes (compression/profile.py): onnxruntime's real per-node profile of stored results beside
their baseline's, and the diagnosis on purpose-built cases — an unstructured-pruned model ("dense zeros"), an
int8-static model whose first conv has one input channel ("narrow int8 conv") — through the CLI; and the likely
causes read from a stored Result's structure alone, given only where it is not as fast as its work predicts.
Timings are noisy: where a test needs a result slower than predicted, it sets the timed speed-up on purpose."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from compression import pipeline, profile, report
from compression.recipe import PruneSpec, QuantSpec, Recipe
from compression.store import Store

ROOT = Path(__file__).resolve().parents[2]
UNSTRUCTURED = Recipe(epochs=1, prune=PruneSpec("l1-unstructured", 0.6, finetune_epochs=0))
INT8 = Recipe(epochs=1, quant=QuantSpec("int8-static", layout="plain"))  # its narrow first conv in int8
SIMULATED = Recipe(epochs=1, quant=QuantSpec("fake", bits=4))
CHANNELS = Recipe(epochs=1, prune=PruneSpec("channel-l2", 0.2, finetune_epochs=0))  # exact counts kept: 26, 51


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A store holding the digits baseline, an unstructured pruning, an int8-static, a simulated result and a
    channel pruning that keeps counts off the SIMD block."""
    home = tmp_path_factory.mktemp("profile-home")
    store = Store(home)
    for recipe in (UNSTRUCTURED, INT8, SIMULATED, CHANNELS):
        pipeline.run(recipe, store)
    return home


def profile_cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "compression", "profile", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=300, env={**os.environ, "COMPRESSION_HOME": str(home)})


@pytest.mark.parametrize(("name", "op", "kernel"), [
    ("n_nchwc", "Conv", "NCHWc float"), ("ReorderOutput", "ReorderOutput", "NCHWc reorder"),
    ("_token_9", "NhwcMaxPool", "NHWC uint8"), ("_token_2", "QLinearConv", "QLinear int8"),
    ("QGemm_33", "QGemm", "QLinear int8"), ("c", "ConvInteger", "dynamic int8"),
    ("QuantizeLinear_8", "QuantizeLinear", "Q/DQ boundary"), ("fused ", "FusedGemm", "fused float"),
    ("Gemm_9", "Gemm", "float")])
def test_each_node_is_named_by_the_kernel_family_it_ran_in(name, op, kernel):
    assert profile.kernel_of(name, op) == kernel


def test_a_result_is_found_by_its_whole_hash_or_the_first_characters_of_it(stored):
    store = Store(stored)
    for given in (INT8.hash, f" {INT8.hash.upper()} ", INT8.hash[:8]):
        assert profile.find_result(store, given).recipe_hash == INT8.hash, given


def test_unstructured_zeros_are_still_multiplied(stored):
    report = profile.profile_result(Store(stored), UNSTRUCTURED.hash[:8], runs=30)
    assert report.recipe_hash == UNSTRUCTURED.hash and report.result.runs == 30
    assert [layer.label for layer in report.layers] == ["conv 1", "conv 2", "matmul 1", "matmul 2"]
    assert all(layer.baseline_op == layer.op and layer.kernel == layer.baseline_kernel for layer in report.layers)
    assert [layer.channels for layer in report.layers[:2]] == [(1, 32), (32, 64)]  # the cnn's convs, all kept
    assert all(n.us >= 0 for n in report.result.nodes) and 0 < sum(n.us for n in report.result.nodes) <= \
        report.result.run_us
    causes = [f.cause for f in report.findings]
    assert "dense-zeros" in causes and "narrow-int8-conv" not in causes
    (zeros,) = [f for f in report.findings if f.cause == "dense-zeros"]
    assert zeros.text.startswith("60% of the weights are zeros")
    assert report.predicted == pytest.approx(1.0)  # the same FLOPs: the zeros are dense work


def test_the_cli_profiles_an_int8_model_names_its_narrow_first_conv_and_refuses_what_it_cannot(stored):
    done = profile_cli(stored, INT8.hash[:10], "--runs", "30", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["recipe_hash"] == INT8.hash and report["technique"] == "quant"
    first = report["layers"][0]
    assert (first["label"], first["op"], first["kernel"], first["channels"]) == ("conv 1", "QLinearConv",
                                                                              "QLinear int8", [1, 32])
    assert first["baseline_kernel"] == "NCHWc float" and first["ratio"] > 0
    assert "narrow-int8-conv" in [f["cause"] for f in report["findings"]]
    assert "QLinear int8" in report["result"]["by_kernel"] and "NCHWc float" in report["baseline"]["by_kernel"]
    table = done.stderr.splitlines()
    assert table[0].startswith(f"quant ({INT8.hash}): ") and table[1].split()[:2] == ["layer", "op"]
    assert any(line.startswith("conv 1     QLinearConv (QLinear int8)") for line in table)
    assert any(line.startswith("- conv 1 has 1 input channel(s), not a multiple of 4") for line in table)

    assert profile.stored(Store(stored), INT8.hash)["findings"] == report["findings"]  # kept for the app
    page = stored / "report.html"
    done = subprocess.run([sys.executable, "-m", "compression", "report", "--out", str(page)], cwd=ROOT, text=True,
                          capture_output=True, timeout=300, env={**os.environ, "COMPRESSION_HOME": str(stored)})
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert "<h3>Where the time goes</h3>" in html and f"({INT8.hash})</h4>" in html
    assert "has 1 input channel(s), not a multiple of 4" in html and "QLinearConv (QLinear int8)" in html

    for args, message in (((SIMULATED.hash[:10],), "is simulated: it has no deployable file to profile"),
                          (("ffffffffff",), "no stored result has a recipe hash starting with 'ffffffffff'"),
                          (("",), "give a result's recipe hash"),
                          ((INT8.hash, "--runs", "0"), "runs must be at least 1")):
        done = profile_cli(stored, *args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and message in lines[0], (args, done.stderr)


def test_an_unstructured_model_not_faster_is_explained_by_zeros_still_multiplied_from_its_structure(stored):
    result = Store(stored).get_result(UNSTRUCTURED.hash)
    why = profile.explain(result)
    assert why.source == "structure" and why.label == "from the model's structure"
    assert why.expected == pytest.approx(result.predicted_speedup / (1 - result.sparsity))  # zeros as skipped: ~2.5
    assert why.measured == result.speedup_vs_baseline < 0.9 * why.expected  # the dense kernels time it near 1×
    assert [f.cause for f in why.findings] == ["dense-zeros"]
    assert why.findings[0].text == ("60% of the weights are zeros, but the dense kernels still multiply them; only "
                                    "structured pruning (removed channels) shrinks the work")
    assert why.short == "zeros still multiplied (from structure)"
    at_batch_1 = profile.explain(replace(result, recipe={**result.recipe, "batch": 1}))
    (overhead,) = [f for f in at_batch_1.findings if f.cause == "call-overhead"]
    assert overhead.text.startswith(f"a call does only {result.flops / 1e6:.2g} MFLOPs (batch 1): the per-call cost")


def test_an_int8_model_needs_a_cause_only_when_slower_than_predicted_and_then_names_its_narrow_first_conv(stored):
    result = Store(stored).get_result(INT8.hash)
    assert [(layer.label, layer.kernel, layer.channels) for layer in profile.structure_layers(result)] == [
        ("conv 1", "QLinear int8", (1, 32)), ("conv 2", "QLinear int8", (32, 64)), ("matmul 1", "QLinear int8", None),
        ("matmul 2", "QLinear int8", None)]
    assert profile.explain(replace(result, speedup_vs_baseline=0.95 * result.predicted_speedup)) is None
    slow = replace(result, speedup_vs_baseline=0.6 * result.predicted_speedup)
    why = profile.explain(slow)
    causes = [f.cause for f in why.findings]
    assert causes[0] == "narrow-int8-conv" and why.findings[0].text == (
        "conv 1 has 1 input channel(s), not a multiple of 4: onnxruntime's fast int8 convolution does not apply; "
        "keeping that first block in float, or padding the input to 4 channels, avoids it")
    flags = result.provenance.cpu_flags  # the CPU it was timed on
    assert ("no-vnni" in causes) == (not (flags["avx512_vnni"] or flags["avx_vnni"]))
    assert "dense-zeros" not in causes and "dynamic-int8" not in causes
    dynamic = replace(slow, recipe={**slow.recipe, "quant": {**slow.recipe["quant"], "mode": "int8-dynamic"}})
    assert "dynamic-int8" in [f.cause for f in profile.explain(dynamic).findings]

    profile.profile_and_store(Store(stored), INT8.hash, runs=30)  # profiled: its measured causes instead
    row = profile.stored_all(Store(stored))[INT8.hash]  # the first profile stored (the CLI's test may store one)
    measured = profile.explain(slow, row)
    assert measured.source == "measured" and measured.short.endswith("(measured)")
    assert [(f.cause, f.text) for f in measured.findings] == [(f["cause"], f["text"]) for f in row["findings"]]
    assert "narrow-int8-conv" in [f.cause for f in measured.findings]


def test_kept_channels_off_the_simd_block_and_a_simulated_format_are_named(stored):
    store = Store(stored)
    pruned = store.get_result(CHANNELS.hash)
    kept = [layer.shape[0] for layer in pruned.layers if len(layer.shape) == 4]
    block = profile.simd_block(pruned.provenance.cpu_flags)
    assert all(count % block for count in kept)  # 26 and 51 channels: off both 8 and 16
    why = profile.explain(replace(pruned, speedup_vs_baseline=0.8 * pruned.predicted_speedup))
    (off,) = [f for f in why.findings if f.cause == "off-simd-block"]
    assert off.text.startswith(f"conv 1 keeps {kept[0]}, conv 2 keeps {kept[1]} output channels, not a multiple of "
                               f"{block} (the NCHWc block on this CPU)")
    simulated = profile.explain(store.get_result(SIMULATED.hash))
    assert simulated.measured is None and [f.cause for f in simulated.findings] == ["not-timed"]
    assert simulated.short == "simulated: not timed (from structure)"

    results = store.results()
    why_all = profile.explain_all(results, profile.stored_all(store))
    base = next(r for r in results if r.technique == "baseline")
    assert base.recipe_hash not in why_all and why_all[SIMULATED.hash].short == simulated.short
    assert why_all[UNSTRUCTURED.hash].short == "zeros still multiplied (from structure)"
    page = report.build_html(results, profiles=profile.stored_all(store))
    assert "<th>why not faster</th>" in page and "<td>zeros still multiplied (from structure)</td>" in page
    hover = "<br>why not faster (from the model's structure):<br>  · zeros still multiplied"
    assert json.dumps(hover)[1:-1].replace("<", "\\u003c").replace(">", "\\u003e") in page  # as plotly embeds it

"""The teaching views' numbers, computed by the backend on the digits CNN trained for real: a layer's weights
through the quantizer (x → q → x̂), the clipping range the grid view draws at every bit width, zero weights
counted alike after PTQ and QAT, the pruning's accuracy before and after fine-tuning, and the distillation's
curves and soft targets."""

import copy

import pytest
import torch

from compression import quantize
from compression.measure import prunable_layers
from compression.quantize import fake_quantized, quantize_weights
from compression.recipe import Format, QuantSpec


@pytest.mark.parametrize("fmt, channel", [(Format(4, "asymmetric"), None), (Format(3, "symmetric", "per-channel"), 2),
                                          (Format(8, "asymmetric", "per-channel"), 0)])
def test_weight_mapping_rows_round_trip_through_the_quantizer(trained_cnn, fmt, channel):
    mapping = quantize.weight_mapping(trained_cnn, "classifier.1", fmt, channel, rows=6)
    weight = trained_cnn.get_submodule("classifier.1").weight.detach()
    x_hat, params = quantize_weights(weight, fmt.bits, fmt.scheme, fmt.granularity)
    values = weight[channel] if channel is not None else weight
    assert len(mapping.rows) == 6 and [r.x for r in mapping.rows] == sorted(r.x for r in mapping.rows)
    assert mapping.rows[0].x == float(values.min()) and mapping.rows[-1].x == float(values.max())
    for row in mapping.rows:
        p = params[row.position[0]] if fmt.granularity == "per-channel" else params[0]
        assert row.x == float(weight[row.position]) and row.x_hat == float(x_hat[row.position])
        assert p.qmin <= row.q <= p.qmax
        assert row.q == min(max(round(row.x / p.scale) + p.zero_point, p.qmin), p.qmax)  # the article's mapping
        assert row.x_hat == pytest.approx((row.q - p.zero_point) * p.scale, abs=1e-7)
        assert abs(row.error) <= p.scale / 2 + 1e-7  # min / max ranging: rounding error only
    assert sum(mapping.original.counts) == sum(mapping.dequantized.counts) == values.numel()
    assert mapping.original.edges == mapping.dequantized.edges
    levels = sum(c > 0 for c in mapping.dequantized.counts)
    assert levels <= 2 ** fmt.bits
    if fmt.bits <= 4:  # a coarse grid: the values collapse onto its few levels
        assert levels < sum(c > 0 for c in mapping.original.counts)


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
def test_the_drawn_clip_range_is_what_the_quantizer_does(trained_cnn, bits, scheme):
    for name, layer in prunable_layers(trained_cnn):
        view = quantize.grid_view(trained_cnn, name, Format(bits, scheme))
        values = layer.weight.detach().flatten()
        p = view.params
        x_hat = quantize.fake_quantize(values, p.scale, p.zero_point, p.qmin, p.qmax)
        assert float(x_hat.min()) >= view.clip_min - 1e-7 and float(x_hat.max()) <= view.clip_max + 1e-7
        beyond = (values < view.clip_min - 1e-6 * p.scale) | (values > view.clip_max + 1e-6 * p.scale)
        assert view.outside == int(beyond.sum())
        ends = torch.where(values[beyond] < 0, view.clip_min, view.clip_max)
        assert torch.allclose(x_hat[beyond], ends.to(x_hat.dtype), atol=1e-7)  # each lands on its end level
        assert view.outside_by <= p.scale / 2 + 1e-7  # by at most half a step: rounding, not clamping
        if scheme == "symmetric":
            assert view.outside == 0


def test_zero_weights_are_counted_alike_after_ptq_and_qat(trained_cnn, digits):
    spec = QuantSpec("fake", bits=2, scheme="asymmetric", granularity="per-tensor")
    snapped = copy.deepcopy(trained_cnn)  # weights on the grid, as QAT leaves them
    with torch.no_grad(), fake_quantized(snapped, quantize.weight_format(spec), {}):
        pass
    ptq, qat = (quantize.stored_counts(m, spec, digits.input_shape) for m in (trained_cnn, snapped))
    assert ptq.params_nonzero == qat.params_nonzero
    assert [layer.nonzero for layer in ptq.layers] == [layer.nonzero for layer in qat.layers]
    float_counts = quantize.stored_counts(trained_cnn, None, digits.input_shape)
    assert ptq.params_nonzero < float_counts.params_nonzero  # at 2 bits, small weights round to 0
    assert quantize.stored_counts(trained_cnn, QuantSpec("fp16"), digits.input_shape) == float_counts


def test_the_teaching_layer_has_the_most_weights_a_channel(trained_cnn):
    layers = quantize.weight_report(trained_cnn, 8, "symmetric", "per-channel")
    name = quantize.teaching_layer(layers)
    per_channel = {layer.name: layer.shape for layer in layers}
    assert torch.Size(per_channel[name][1:]).numel() >= 100 and name != layers[0].name

"""Distillation: the Hinton loss by hand, softened targets, narrow students, and a real KD run against its
label-only control on digits."""

import math

import pytest
import torch
from torch.nn import functional as F

from compression.distill import build_student, kd_loss, soften, student_and_control, train_student
from compression.errors import CompressionError
from compression.recipe import DistillSpec
from compression.train import Progress, evaluate, fit, predict, seed_everything


def _softmax(row: list[float], temperature: float) -> list[float]:
    exps = [math.exp(v / temperature) for v in row]
    return [e / sum(exps) for e in exps]


def test_kd_loss_equals_the_hand_computed_value():
    student, teacher, labels = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], [[2.0, 0.5, 0.0], [1.0, 1.0, 2.0]], [1, 2]
    temperature, alpha = 2.0, 0.7
    kl = sum(sum(p * math.log(p / q) for p, q in zip(_softmax(t, temperature), _softmax(s, temperature)))
             for s, t in zip(student, teacher)) / 2
    ce = -sum(math.log(_softmax(s, 1.0)[y]) for s, y in zip(student, labels)) / 2
    expected = alpha * temperature ** 2 * kl + (1 - alpha) * ce
    got = kd_loss(torch.tensor(student), torch.tensor(teacher), torch.tensor(labels), temperature, alpha)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_kd_loss_is_cross_entropy_at_alpha_0_and_zero_for_a_perfect_copy_at_alpha_1():
    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(8, 10, generator=generator), torch.randn(8, 10, generator=generator)
    labels = torch.randint(0, 10, (8,), generator=generator)
    assert torch.equal(kd_loss(student, teacher, labels, 4.0, 0.0), F.cross_entropy(student, labels))
    assert kd_loss(student, student, labels, 4.0, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(student, teacher, labels, 4.0, 1.0).item() > 0.01


def test_softened_outputs_are_distributions_that_flatten_as_temperature_rises(trained_cnn, digits):
    logits = predict(trained_cnn, digits.val.x[:16])
    probs = [soften(logits, t) for t in (1.0, 4.0, 20.0)]
    for p in probs:
        torch.testing.assert_close(p.sum(1), torch.ones(16))
    low, mid, high = (torch.special.entr(p).sum(1) for p in probs)
    assert torch.all(low < mid) and torch.all(mid < high)
    assert torch.equal(probs[0].argmax(1), probs[2].argmax(1))  # softening keeps the ranking


def test_a_quarter_width_cnn_student_has_a_sixteenth_of_the_conv_weights(digits, trained_cnn):
    student = build_student("cnn", DistillSpec(width=0.25), digits.input_shape, digits.num_classes)
    convs = [m for m in student.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.weight.shape[:2] for c in convs] == [(8, 1), (16, 8)]
    teacher_weights = sum(m.weight.numel() for m in trained_cnn.modules() if isinstance(m, torch.nn.Conv2d))
    assert sum(c.weight.numel() for c in convs) / teacher_weights == pytest.approx(1 / 16, rel=0.1)
    assert student(digits.test.x[:5]).shape == (5, digits.num_classes)
    named = build_student("cnn", DistillSpec(width=0.5, student="resnet"), digits.input_shape, digits.num_classes)
    assert named.fc.in_features == 32


def test_a_width_for_a_torchvision_teacher_is_a_one_line_error(digits):
    with pytest.raises(CompressionError, match="width multiplier applies to cnn, resnet, mobilenet, not to resnet18"):
        build_student("resnet18", DistillSpec(width=0.5), digits.input_shape, digits.num_classes)


def _student(spec: DistillSpec, digits, seed: int) -> torch.nn.Module:
    seed_everything(seed)
    return build_student("cnn", spec, digits.input_shape, digits.num_classes)


def test_kd_trains_a_student_far_above_chance_against_a_control_with_the_same_start(trained_cnn, digits):
    spec = DistillSpec(width=0.25, epochs=5, patience=0)
    student, control = _student(spec, digits, 3), _student(spec, digits, 3)
    assert torch.equal(student.features[0].weight, control.features[0].weight)
    teacher_before = [p.clone() for p in trained_cnn.parameters()]
    events: list[Progress] = []
    train_student(student, trained_cnn, digits.train, spec, seed=3, progress=events.append)
    train_student(control, None, digits.train, spec, seed=3)
    assert evaluate(student, digits.val) > 0.6 and evaluate(control, digits.val) > 0.6
    assert not torch.equal(student.features[0].weight, control.features[0].weight)  # the loss differs
    assert all(torch.equal(a, b) for a, b in zip(teacher_before, trained_cnn.parameters()))
    assert not trained_cnn.training
    assert {e.stage for e in events} == {"distill"} and events[-1].fraction == pytest.approx(1.0)


def test_the_only_difference_between_student_and_control_is_the_loss(trained_cnn, digits):
    """At α = 0 the KD loss is plain cross-entropy, so the KD student is bit for bit the control, which is
    bit for bit plain fit: same init, optimizer, schedule and batches."""
    spec = DistillSpec(width=0.25, alpha=0.0, epochs=2, patience=0)
    student, control, plain = (_student(spec, digits, 5) for _ in range(3))
    train_student(student, trained_cnn, digits.train, spec, seed=5)
    train_student(control, None, digits.train, spec, seed=5)
    fit(plain, digits.train, spec.epochs, seed=5)
    for a, b, c in zip(student.parameters(), control.parameters(), plain.parameters()):
        assert torch.equal(a, b) and torch.equal(b, c)


def test_student_and_control_report_their_training_as_one_of_two(trained_cnn, digits):
    events: list[Progress] = []
    spec = DistillSpec(width=0.25, epochs=1, patience=0)
    student_and_control("cnn", trained_cnn, digits.train, spec, 0, digits.input_shape, digits.num_classes,
                        events.append)
    stages = [e.stage for e in events if e.epochs]
    assert list(dict.fromkeys(stages)) == ["distill · student 1/2", "distill · control 2/2"]
    assert [e.message for e in events if not e.epochs] == ["training the KD student", "training the label-only control"]

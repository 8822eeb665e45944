"""Exploding/vanishing gradient flags, the overfitting marker, the confidence histogram."""
import math

import numpy as np
import pytest

from engine.registry import ConfigError
from engine.training_diagnostics import (EXPLODING, OK, VANISHING, GradientThresholds, confidence_histogram,
                                         gradient_flags, gradient_report, overfitting_flags, overfitting_onset)


@pytest.mark.parametrize("norm, expected", [
    (1.0, OK), (99.9, OK), (100.1, EXPLODING), (math.inf, EXPLODING), (math.nan, EXPLODING),
    (2e-6, OK), (5e-7, VANISHING), (0.0, VANISHING),
])
def test_gradient_flags_against_the_thresholds(norm, expected):
    assert gradient_flags(np.array([norm]), explode=100.0, vanish=1e-6)[0] == expected


def test_gradient_flags_keep_the_shape_and_follow_user_thresholds():
    norms = np.array([[1.0, 0.5], [20.0, 1e-3]])
    assert gradient_flags(norms).tolist() == [[OK, OK], [OK, OK]]
    tight = gradient_flags(norms, explode=10.0, vanish=1e-2)
    assert tight.tolist() == [[OK, OK], [EXPLODING, VANISHING]]


@pytest.mark.parametrize("explode, vanish, field", [
    (0.0, 1e-6, "gradient threshold explode"), (100.0, -1.0, "gradient threshold vanish"),
    (1e-3, 1e-2, "gradient threshold vanish"), (math.nan, 1e-6, "gradient threshold explode"),
])
def test_bad_thresholds_are_refused_with_the_field_named(explode, vanish, field):
    with pytest.raises(ConfigError) as err:
        GradientThresholds(explode, vanish).validate()
    assert err.value.field == field


def test_gradient_report_counts_per_layer_and_finds_the_first_step():
    steps = np.array([1, 11, 21, 31])
    norms = np.array([[1.0, 1.0], [1.0, 500.0], [1e-9, math.inf], [1.0, 1.0]])
    report = gradient_report(steps, norms)
    assert report.exploding.tolist() == [0, 2] and report.vanishing.tolist() == [1, 0]
    assert report.first_exploding == 11 and report.first_vanishing == 21
    assert not report.healthy
    text = report.describe(("Linear 784->128", "Linear 128->10"))
    assert "exploding from step 11 (layer Linear 128->10)" in text and "vanishing from step 21" in text
    assert gradient_report(steps, np.ones((4, 2))).describe() == "ok"
    assert gradient_report(np.zeros(0), np.zeros((0, 3))).healthy


def test_overfitting_is_marked_after_patience_rises_of_validation_loss_while_training_loss_falls():
    train = np.array([2.0, 1.5, 1.0, 0.8, 0.6, 0.5, 0.4, 0.3])
    val = np.array([2.1, 1.6, 1.2, 1.1, 1.15, 1.2, 1.3, 1.4])
    flags = overfitting_flags(train, val, patience=3)
    # Validation loss rises at evaluations 4, 5, 6, 7; the third rise in a row is at 6.
    assert flags.tolist() == [False] * 6 + [True, True]
    assert overfitting_onset(train, val, 3) == 6
    assert overfitting_onset(train, val, 2) == 5
    assert overfitting_onset(train, val, 5) == -1


def test_no_overfitting_marker_when_training_loss_rises_too_or_validation_loss_dips():
    rising = np.array([1.0, 1.1, 1.2, 1.3, 1.4])
    assert not overfitting_flags(rising, rising, 3).any()  # both rise: divergence, not overfitting
    train = np.linspace(2, 0.5, 7)
    val = np.array([2.0, 1.0, 1.1, 1.2, 1.15, 1.3, 1.4])  # the dip at 4 restarts the count
    assert overfitting_flags(train, val, 3).tolist() == [False] * 7
    assert overfitting_flags(train, val, 2).tolist() == [False, False, False, True, False, False, True]


def test_non_finite_losses_are_data_not_errors():
    train = np.array([1.0, 0.8, math.nan, 0.5, 0.4, 0.3])
    val = np.array([1.0, 0.9, math.nan, 1.0, 1.1, 1.2])
    flags = overfitting_flags(train, val, 2)
    assert flags.dtype == bool and len(flags) == 6
    with pytest.raises(ConfigError):
        overfitting_flags(train, val, 0)


def test_confidence_histogram_is_a_share_of_the_digits():
    conf = np.array([0.1, 0.55, 0.95, 0.99, 1.0, math.nan])
    edges, share = confidence_histogram(conf, bins=10)
    assert len(edges) == 11 and edges[0] == 0 and edges[-1] == 1
    assert share.sum() == pytest.approx(1.0)
    assert share[-1] == pytest.approx(3 / 5)  # NaN left out; 1.0 falls in the last bin

"""Shipped presets: every one loads and validates, and every lesson shows in the numbers.

The 2D presets run exactly as shipped. The MNIST presets run on fewer digits and epochs than they
ship with (so the suite stays fast on two cores); each test says what it keeps of the lesson.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from engine.glyphs import effective_decay, effective_lr
from engine.landscape import LandscapeFrame, run_landscape
from engine.paths import PRESETS
from engine.presets import ORDER, TOPICS, bundled_presets, get_preset, load_presets, presets_by_topic
from engine.session import Session, parse_session
from engine.training import EvalPoint, RunSummary, TrainConfig, TrainStep, run_training, smoothing_floor

TOPIC_KEYS = [k for k, _ in TOPICS]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small networks train as fast on one thread, and far faster when other work shares the cores."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- every preset ---------------------------------------------------------------------------------

def test_presets_load_validate_and_cover_every_topic():
    presets = load_presets()
    assert len(presets) == len(list(PRESETS.glob("*.json"))) >= 19
    assert {p.name for p in presets} == set(ORDER), "every shipped preset has its place in the syllabus order"
    assert {p.topic for p in presets} == set(TOPIC_KEYS)
    assert len({p.title for p in presets}) == len(presets), "titles are unique"
    for p in presets:
        lines = p.caption.split("\n")
        assert len(lines) == 2 and all(line.strip() for line in lines), f"{p.name}: caption must be two lines"
        assert p.session.view in ("landscape", "mnist")
        assert p.session.app == {}, f"{p.name}: presets carry no version stamp"
        # The file round-trips: what the app would save is what it loaded.
        again = parse_session(p.session.to_json())
        assert again.landscape == p.session.landscape and again.mnist_runs == p.session.mnist_runs


def test_presets_grouped_by_topic_in_syllabus_order():
    groups = presets_by_topic()
    assert [label for label, _ in groups] == [label for _, label in TOPICS]
    flat = [p.name for _, ps in groups for p in ps]
    assert flat == [n for n in ORDER if n in flat]
    assert get_preset("momentum_ravine").session.landscape.function == "ravine"


def test_every_2d_preset_runs_to_the_end_without_surprises():
    for p in bundled_presets():
        if p.session.view != "landscape":
            continue
        cfg = p.session.landscape
        assert len({o.label for o in cfg.optimizers}) == len(cfg.optimizers), f"{p.name}: labels tell runs apart"
        assert cfg.steps // p.session.display.steps_per_frame <= 1000, f"{p.name}: a clip of at most ~33 s"


# ---- helpers --------------------------------------------------------------------------------------

def frames_of(name: str, with_state: bool = False) -> tuple[Session, list[LandscapeFrame]]:
    s = get_preset(name).session
    return s, list(run_landscape(s.landscape, with_state=with_state))


def losses(frames: list[LandscapeFrame]) -> np.ndarray:
    """(T, K): each optimiser's loss (single start point) per step."""
    return np.array([f.loss[:, 0] for f in frames])


def first_step(frames: list[LandscapeFrame], i: int, ok) -> int | None:
    return next((f.step for f in frames if ok(f, i)), None)


def index(session: Session, needle: str) -> int:
    labels = [o.label for o in session.landscape.optimizers]
    hits = ([i for i, label in enumerate(labels) if label == needle]
            or [i for i, label in enumerate(labels) if label.startswith(needle)]
            or [i for i, label in enumerate(labels) if needle in label])
    assert len(hits) == 1, (needle, labels)
    return hits[0]


# ---- gradient descent -----------------------------------------------------------------------------

def test_gd_vs_sgd_full_batch_is_monotone_minibatch_is_noisy():
    s, fr = frames_of("gd_vs_sgd")
    from engine.functions import FUNCTIONS
    fmin = FUNCTIONS.get("linear_regression").data.problem(s.landscape.function_params).minimum_value
    L = losses(fr) - fmin
    gd, sgd = index(s, "GD"), index(s, "SGD")
    assert np.all(np.diff(L[:, gd]) <= 0), "full-batch GD's loss falls at every step"
    assert np.sum(np.diff(L[:, sgd]) > 0) > 100, "mini-batch SGD's loss goes up on many steps"
    assert L[-1, gd] < 1e-6
    tail = L[-100:, sgd]
    assert tail.min() > 10 * L[-1, gd] and tail.mean() > 1e-3, "SGD keeps bouncing above the minimum"


def test_learning_rate_too_high_diverges_just_below_oscillates_too_low_crawls():
    s, fr = frames_of("lr_too_high_low")
    L = losses(fr)
    high, osc, good, low = (index(s, k) for k in ("too high", "oscillates", "about right", "too low"))
    last = fr[-1]
    assert last.diverged_at[high, 0] >= 0, "above 2/L GD diverges"
    assert (last.diverged_at[[osc, good, low], 0] < 0).all()
    # Just below 2/L: the steep coordinate flips sign at every one of the first 30 steps (zig-zag).
    y = np.array([f.xy[osc, 0, 1] for f in fr[:31]])
    assert np.all(np.sign(y[1:]) == -np.sign(y[:-1]))
    reach = {i: first_step(fr, i, lambda f, j: f.loss[j, 0] < 1e-6) for i in (osc, good, low)}
    assert reach[good] is not None and reach[osc] is not None and reach[good] < reach[osc]
    assert reach[low] is None and L[-1, low] > 1e-3, "too low: still far from the minimum at the end"


# ---- momentum -------------------------------------------------------------------------------------

def test_momentum_crosses_the_ravine_in_fewer_steps_than_gd_at_the_same_rate():
    s, fr = frames_of("momentum_ravine")
    gd, mom = index(s, "GD"), index(s, "Momentum")
    assert s.landscape.optimizers[gd].params["lr"] == s.landscape.optimizers[mom].params["lr"]
    y = np.array([f.xy[gd, 0, 1] for f in fr[:21]])
    assert np.all(np.sign(y[1:]) == -np.sign(y[:-1])), "GD zig-zags across the ravine"
    reach = [first_step(fr, i, lambda f, j: f.loss[j, 0] < 1e-3) for i in (gd, mom)]
    assert None not in reach and reach[1] < reach[0] / 2, reach


def test_momentum_crosses_the_flat_region_many_times_faster():
    s, fr = frames_of("momentum_flat")
    gd, mom = index(s, "GD"), index(s, "Momentum")
    cross = [first_step(fr, i, lambda f, j: f.xy[j, 0, 0] > 1.0) for i in (gd, mom)]
    assert None not in cross and cross[1] * 5 < cross[0], cross
    # On the flat stretch GD's steps are tiny: its first 50 steps move it less than 0.6.
    assert fr[50].xy[gd, 0, 0] - fr[0].xy[gd, 0, 0] < 0.6
    assert abs(fr[-1].xy[mom, 0, 0] - 2.0) < 1e-3, "momentum ends in the well at x = 2"


# ---- adaptive methods -----------------------------------------------------------------------------

def test_adagrad_step_shrinks_monotonically_while_rmsprop_recovers():
    s, fr = frames_of("adagrad_vs_rmsprop", with_state=True)
    ada, rms = index(s, "Adagrad"), index(s, "RMSprop")
    opts = s.landscape.optimizers

    def eff(i):
        return np.array([effective_lr(opts[i].name, opts[i].params, f.state[i], float(f.lr[i]))[0]
                         for f in fr[1:]])  # (T, 2): per axis, after each update

    a, r = eff(ada), eff(rms)
    assert np.allclose(a[0], r[0]), "both take the same first step"
    assert np.all(np.diff(a, axis=0) <= 0), "Adagrad's effective step never grows"
    assert r[-1, 0] > 10 * r[:, 0].min(), "RMSprop's effective step recovers on the gentle slope"
    x_star = fr[-1].xy[rms, 0, 0]
    # x* solves 5 exp(-x) = 0.1 x; RMSprop is there, Adagrad is still crawling towards it.
    assert abs(5 * math.exp(-x_star) - 0.1 * x_star) < 1e-6
    assert abs(fr[-1].xy[ada, 0, 0] - x_star) > 0.1


def test_rosenbrock_adam_and_momentum_reach_the_minimum_rmsprop_stalls():
    s, fr = frames_of("rosenbrock_adam_rmsprop_momentum")
    L = losses(fr)
    adam, rms, mom = index(s, "Adam"), index(s, "RMSprop"), index(s, "Momentum")

    def near(f, j):
        return np.hypot(*(f.xy[j, 0] - 1.0)) < 0.05

    assert first_step(fr, adam, near) is not None and first_step(fr, mom, near) is not None
    assert first_step(fr, rms, near) is None, "RMSprop never gets within 0.05 of (1, 1)"
    assert L[-1, adam] < 1e-6 and L[-1, mom] < 1e-6
    tail = L[-200:, rms]
    assert tail.min() > 1e-3, "RMSprop's loss stalls above 1e-3 for the last 200 steps"
    assert np.sum(np.diff(tail) > 0) > 20, "...and rattles: its loss keeps going up and down"


def test_adam_l2_decay_is_rescaled_per_axis_adamw_is_uniform():
    s, fr = frames_of("adam_l2_vs_adamw", with_state=True)
    opts = s.landscape.optimizers
    adam, l2, w = index(s, "Adam"), index(s, "L2"), index(s, "AdamW")
    wd, lr = opts[w].params["weight_decay"], opts[w].params["lr"]
    for k in (10, 100, 1000, len(fr) - 1):
        f = fr[k]
        dw = effective_decay(opts[w].name, opts[w].params, f.state[w], float(f.lr[w]))[0]
        dl2 = effective_decay(opts[l2].name, opts[l2].params, f.state[l2], float(f.lr[l2]))[0]
        assert np.allclose(dw, lr * wd), "AdamW: the same lr*wd on both axes"
        assert dl2[1] < dl2[0] / 3, "Adam + L2: the steep y axis is decayed far less than the flat x axis"
    end = fr[-1].xy[:, 0]
    # f = 0.5 (x-2)^2 + 10 (y-1)^2: Adam + L2 settles where grad f + wd x = 0 (the L2-regularised minimum).
    ridge = np.array([2 / (1 + wd), 20 / (20 + wd)])
    assert np.allclose(end[l2], ridge, atol=1e-3)
    assert np.allclose(end[adam], [2.0, 1.0], atol=1e-3)
    assert np.linalg.norm(end[w] - ridge) > 0.05, "AdamW settles elsewhere"


# ---- schedules ------------------------------------------------------------------------------------

def _constant_vs_scheduled(name: str) -> tuple[Session, list[LandscapeFrame], np.ndarray, int, int]:
    s, fr = frames_of(name)
    const = index(s, "constant")
    sched = 1 - const
    return s, fr, losses(fr), const, sched


@pytest.mark.parametrize("name", ["schedule_step", "schedule_exponential", "schedule_cosine"])
def test_decaying_schedules_settle_sgd_far_below_the_constant_rate(name):
    s, fr, L, const, sched = _constant_vs_scheduled(name)
    lr = np.array([f.lr[sched] for f in fr])
    base = s.landscape.optimizers[sched].params["lr"]
    assert lr[0] == base and np.all(np.diff(lr) <= 1e-15) and lr[-1] < base / 10, "the rate only goes down"
    assert L[-50:, sched].mean() < L[-50:, const].mean() / 4, "the decayed run settles much closer"
    # Early on the two are alike: the schedule has not cut much yet.
    assert L[10, sched] == pytest.approx(L[10, const], rel=0.5)


def test_step_decay_cuts_at_every_step_size_and_the_loss_drops_in_stairs():
    s, fr, L, const, sched = _constant_vs_scheduled("schedule_step")
    p = s.landscape.optimizers[sched].schedule.params
    lr = np.array([f.lr[sched] for f in fr])
    cuts = np.flatnonzero(np.diff(lr) < 0) + 1
    assert list(cuts) == list(range(p["step_size"], s.landscape.steps + 1, p["step_size"]))
    means = [L[c - 50:c, sched].mean() for c in cuts] + [L[-50:, sched].mean()]
    assert all(b < a for a, b in zip(means, means[1:])), "each cut lowers the noise floor"


def test_cyclic_rate_survives_a_peak_that_diverges_when_held():
    s, fr = frames_of("schedule_cyclic")
    low, cyc, high = index(s, "constant 0.005"), index(s, "cyclic"), index(s, "constant 0.045")
    last = fr[-1]
    assert last.diverged_at[high, 0] >= 0 and last.diverged_at[cyc, 0] < 0
    lr = np.array([f.lr[cyc] for f in fr])
    p = s.landscape.optimizers[cyc].schedule.params
    period = 2 * p["step_size_up"]
    assert lr.max() == pytest.approx(p["max_lr"]) and lr.min() == pytest.approx(p["base_lr"])
    assert np.allclose(lr[:-period], lr[period:]), "the rate repeats every 2 * step_size_up steps"
    reach = [first_step(fr, i, lambda f, j: f.loss[j, 0] < 1e-4) for i in (low, cyc)]
    assert reach[1] is not None and (reach[0] is None or reach[1] < reach[0] / 2), reach


def test_reduce_on_plateau_cuts_only_after_patience_steps_without_improvement():
    s, fr, L, const, sched = _constant_vs_scheduled("schedule_plateau")
    p = s.landscape.optimizers[sched].schedule.params
    lr = np.array([f.lr[sched] for f in fr])
    cuts = np.flatnonzero(np.diff(lr) < 0) + 1
    assert len(cuts) >= 2
    assert cuts[0] > p["patience"] and np.all(np.diff(cuts) > p["patience"])
    # Before each cut the loss did not beat the best seen before the patience window.
    metric = L[:, sched]
    for c in cuts:
        window = metric[c - p["patience"] - 1:c]  # the metrics the scheduler saw before this cut
        best_before = metric[:c - p["patience"] - 1].min()
        assert window.min() > best_before * (1 - p["threshold"] if "threshold" in p else 1 - 1e-4)
    assert lr.min() >= p["min_lr"]
    assert L[-50:, sched].mean() < L[-50:, const].mean() / 3


def test_warmup_then_decay_survives_a_peak_rate_that_diverges_from_the_start():
    s, fr = frames_of("schedule_warmup")
    const, warm, small = index(s, "constant 0.2"), index(s, "warmup"), index(s, "constant 0.002")
    last = fr[-1]
    assert 0 <= last.diverged_at[const, 0] < 10, "0.2 from the first step blows up at once"
    assert last.diverged_at[warm, 0] < 0
    sc = s.landscape.optimizers[warm].schedule
    lr = np.array([f.lr[warm] for f in fr])
    peak = s.landscape.optimizers[warm].params["lr"]
    assert lr[0] == pytest.approx(peak * sc.warmup_start_factor)
    assert np.all(np.diff(lr[: sc.warmup_steps + 1]) > 0) and lr[sc.warmup_steps] == pytest.approx(peak)
    assert np.all(np.diff(lr[sc.warmup_steps:]) <= 1e-15)
    L = losses(fr)
    assert L[-1, warm] < L[-1, small] / 100, "warmup + decay ends far lower than the warmup's start rate held"


# ---- practice -------------------------------------------------------------------------------------

def test_tuning_the_rate_beats_switching_optimiser():
    s, fr = frames_of("tune_lr_first")
    untuned, adam, tuned = index(s, "untuned"), index(s, "Adam"), index(s, "(tuned)")
    assert s.landscape.optimizers[untuned].name == s.landscape.optimizers[tuned].name == "momentum"
    L = losses(fr)
    assert L[-1, untuned] > 100 * L[-1, adam], "untuned, momentum looks far worse than Adam"

    def near(f, j):
        return np.hypot(*(f.xy[j, 0] - 1.0)) < 0.05

    t_tuned, t_adam = first_step(fr, tuned, near), first_step(fr, adam, near)
    assert t_tuned is not None and t_adam is not None and t_tuned < t_adam


# ---- MNIST ----------------------------------------------------------------------------------------

def train(cfg: TrainConfig) -> tuple[list[EvalPoint], list[TrainStep], RunSummary]:
    records = list(run_training(cfg))
    return ([r for r in records if isinstance(r, EvalPoint)], [r for r in records if isinstance(r, TrainStep)],
            records[-1])


def shrunk(name: str, **changes) -> list[TrainConfig]:
    """The preset's runs with fewer digits/epochs; everything else (the lesson's settings) as shipped."""
    return [dataclasses.replace(r, **changes) for r in get_preset(name).session.mnist_runs]


def test_mnist_optimiser_comparison_momentum_beats_sgd_and_all_learn():
    runs = shrunk("mnist_optimizers", train_size=1000, epochs=2)
    results = {r.label: train(r) for r in runs}
    sgd = next(v for k, v in results.items() if k.startswith("SGD"))
    mom = next(v for k, v in results.items() if k.startswith("Momentum"))
    assert all(m.val_loss < s.val_loss for m, s in zip(mom[0], sgd[0])), "momentum ahead of SGD at the same rate"
    for label, (evals, _, _) in results.items():
        assert evals[-1].val_acc > 0.75, label
    adaptive = [v for k, v in results.items() if k.startswith(("Adam", "RMSprop"))]
    assert all(a[0][0].val_loss < sgd[0][0].val_loss for a in adaptive), "adaptive methods lead after epoch 1"


def test_mnist_dropout_delays_and_lowers_the_validation_minimum():
    plain, dropped = (train(r) for r in shrunk("mnist_dropout", train_size=300))
    assert plain[2].best_val_loss > dropped[2].best_val_loss, "dropout: lower best validation loss"
    assert plain[2].best_step < dropped[2].best_step, "dropout: the validation minimum comes later"
    assert plain[0][-1].train_loss < 0.01, "without dropout the 300 digits are memorised"
    # With dropout on (train mode) the network does worse on its own batches than in eval mode.
    assert dropped[0][-1].train_loss_dropout > dropped[0][-1].train_loss


def test_mnist_early_stopping_stops_at_best_plus_patience_and_restores_best():
    (cfg,) = shrunk("mnist_early_stopping", train_size=400)
    evals, steps, summary = train(cfg)
    assert summary.stopped_early and summary.restored_best
    best = int(np.argmin([e.val_loss for e in evals]))
    assert len(evals) == best + 1 + cfg.early_stopping, "stops exactly patience evaluations after the best"
    assert summary.best_step == evals[best].step
    assert summary.final_val_loss == pytest.approx(evals[best].val_loss, rel=1e-5), "best weights restored"
    assert evals[-1].val_loss > evals[best].val_loss


def test_mnist_weight_decay_keeps_weights_small_and_narrows_the_gap():
    plain, decayed = (train(r) for r in shrunk("mnist_weight_decay", train_size=500))

    def weight_norm(steps):
        with_stats = [s for s in steps if len(s.layer_weight_norms)]
        return float(np.linalg.norm(with_stats[-1].layer_weight_norms))

    assert weight_norm(decayed[1]) < 0.7 * weight_norm(plain[1])
    assert decayed[0][-1].gap < plain[0][-1].gap


def test_mnist_label_smoothing_floors_the_loss_and_lowers_confidence():
    plain, smooth = (train(r) for r in shrunk("mnist_label_smoothing", train_size=500, epochs=10))
    s = get_preset("mnist_label_smoothing").session.mnist_runs[1].label_smoothing
    floor = smoothing_floor(s)
    assert floor == pytest.approx(0.5, abs=0.01)
    assert all(e.train_loss > floor for e in smooth[0]), "the smoothed loss never goes below its floor"
    assert plain[0][-1].train_loss < floor, "...which the unsmoothed loss does"
    assert smooth[0][-1].confidences.mean() < plain[0][-1].confidences.mean() - 0.05
    assert abs(smooth[0][-1].val_acc - plain[0][-1].val_acc) < 0.05


def test_mnist_tune_the_rate_first():
    untuned, adam, tuned = (train(r) for r in get_preset("mnist_tune_lr").session.mnist_runs)
    assert untuned[0][-1].val_loss > 3 * adam[0][-1].val_loss, "untuned SGD looks hopeless beside Adam"
    assert tuned[0][-1].val_loss < 1.35 * adam[0][-1].val_loss, "the same SGD, tuned, closes most of the gap"
    assert tuned[0][-1].val_acc > adam[0][-1].val_acc - 0.05


def test_mnist_schedules_settle_the_noise_and_end_lower():
    runs = get_preset("mnist_schedules").session.mnist_runs
    const, step, cosine, warm = (train(r) for r in runs)

    def tail_batch_loss(steps):
        return float(np.mean([s.loss for s in steps[-16:]]))

    for label, run in (("step", step), ("cosine", cosine), ("warmup + cosine", warm)):
        assert run[0][-1].val_loss < 0.8 * const[0][-1].val_loss, label
        assert tail_batch_loss(run[1]) < 0.6 * tail_batch_loss(const[1]), label
    w = runs[3].optimizer.schedule
    lr = [s.lr for s in warm[1]]
    assert np.all(np.diff(lr[: w.warmup_steps + 1]) > 0) and lr[w.warmup_steps] == pytest.approx(0.1)
    assert lr[-1] < 0.01

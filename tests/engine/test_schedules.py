"""Schedules: the registry's schedules are torch's own, warmup chains correctly, bad settings are named."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as lrs

from engine.config import ScheduleConfig
from engine.registry import ConfigError
from engine.schedules import (
    SCHEDULES, make_schedule, parse_milestones, preview, preview_with_momentum,
)

# torch's UserWarnings (call order, deprecated epoch argument) would mean we drive it wrongly.
pytestmark = pytest.mark.filterwarnings("error")

LR = 0.1
N = 60  # run length for the tables; long enough for one-cycle's default phases
K = 20  # steps compared against hand-built torch


def sgd(lr: float = LR) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


def flat(k: int) -> float:
    return 1.0


def run(optimizer, sched, steps: int = K, metric=flat, plateau: bool = False) -> list[float]:
    """The lr each optimizer.step() uses, stepping in the product's order."""
    out = []
    for k in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        sched.step(metric(k)) if plateau else sched.step()
    return out


def run_ours(config: ScheduleConfig, steps: int = K, total: int = N, metric=flat) -> list[float]:
    opt = sgd()
    sched = make_schedule(opt, config, total)
    out = []
    for k in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step(metric(k))
    return out


# (name, params, torch's scheduler built by hand with the same values, ReduceLROnPlateau?)
TORCH_TABLE = [
    ("constant", {}, lambda o, n: lrs.LambdaLR(o, lambda _: 1.0), False),
    ("step", {}, lambda o, n: lrs.StepLR(o, 100, 0.1), False),
    ("step", {"step_size": 3, "gamma": 0.5}, lambda o, n: lrs.StepLR(o, 3, 0.5), False),
    ("multistep", {}, lambda o, n: lrs.MultiStepLR(o, [100, 200], 0.1), False),
    ("multistep", {"milestones": "2, 5,11"}, lambda o, n: lrs.MultiStepLR(o, [2, 5, 11], 0.1), False),
    ("exponential", {}, lambda o, n: lrs.ExponentialLR(o, 0.99), False),
    ("exponential", {"gamma": 0.8}, lambda o, n: lrs.ExponentialLR(o, 0.8), False),
    ("cosine", {}, lambda o, n: lrs.CosineAnnealingLR(o, n, 0.0), False),
    ("cosine", {"T_max": 7, "eta_min": 0.01}, lambda o, n: lrs.CosineAnnealingLR(o, 7, 0.01), False),
    ("cosine_restarts", {}, lambda o, n: lrs.CosineAnnealingWarmRestarts(o, 100, 1, 0.0), False),
    ("cosine_restarts", {"T_0": 3, "T_mult": 2},
     lambda o, n: lrs.CosineAnnealingWarmRestarts(o, 3, 2, 0.0), False),
    ("cyclic", {}, lambda o, n: lrs.CyclicLR(o, 0.001, 0.01, 100, cycle_momentum=False), False),
    ("cyclic", {"step_size_up": 4, "mode": "triangular2", "cycle_momentum": True},
     lambda o, n: lrs.CyclicLR(o, 0.001, 0.01, 4, mode="triangular2", cycle_momentum=True,
                               base_momentum=0.8, max_momentum=0.9), False),
    ("onecycle", {}, lambda o, n: lrs.OneCycleLR(o, 0.01, total_steps=n, cycle_momentum=False), False),
    ("onecycle", {"pct_start": 0.1, "anneal_strategy": "linear", "three_phase": True},
     lambda o, n: lrs.OneCycleLR(o, 0.01, total_steps=n, pct_start=0.1, anneal_strategy="linear",
                                 three_phase=True, cycle_momentum=False), False),
    ("plateau", {}, lambda o, n: lrs.ReduceLROnPlateau(o), True),
    ("plateau", {"patience": 2, "factor": 0.5},
     lambda o, n: lrs.ReduceLROnPlateau(o, patience=2, factor=0.5), True),
    ("linear", {}, lambda o, n: lrs.LinearLR(o, 1.0, 0.0, n), False),
    ("linear", {"start_factor": 0.5, "end_factor": 1.0, "total_iters": 10},
     lambda o, n: lrs.LinearLR(o, 0.5, 1.0, 10), False),
]


def test_table_covers_every_schedule_with_defaults():
    assert {name for name, params, _, _ in TORCH_TABLE if not params} == set(SCHEDULES.names())


@pytest.mark.parametrize("name, params, build, plateau", TORCH_TABLE,
                         ids=[f"{t[0]}-{'-'.join(t[1]) or 'defaults'}" for t in TORCH_TABLE])
def test_matches_torch_built_by_hand(name, params, build, plateau):
    opt = sgd()
    expected = run(opt, build(opt, N), plateau=plateau)
    assert run_ours(ScheduleConfig(name, params)) == expected


@pytest.mark.parametrize("name, params, build, plateau", [t for t in TORCH_TABLE if not t[3]],
                         ids=[f"{t[0]}-{'-'.join(t[1]) or 'defaults'}" for t in TORCH_TABLE if not t[3]])
def test_warmup_matches_torch_sequential_lr(name, params, build, plateau):
    w, f = 4, 0.1
    opt = sgd()
    main = build(opt, N - w)
    warm = lrs.LinearLR(opt, start_factor=f, end_factor=1.0, total_iters=w)
    expected = run(opt, lrs.SequentialLR(opt, [warm, main], milestones=[w]))
    assert run_ours(ScheduleConfig(name, params, warmup_steps=w, warmup_start_factor=f)) == expected


@pytest.mark.parametrize("name, build", [
    ("exponential", lambda o: lrs.ExponentialLR(o, 0.99)),
    ("cosine", lambda o: lrs.CosineAnnealingLR(o, 30)),
    ("step", lambda o: lrs.StepLR(o, 100, 0.1)),
])
def test_warmup_equals_the_usual_script_order(name, build):
    # Scripts usually build the warmup first; for schedules that leave the lr alone at construction
    # the product's order (main first) gives the same rates.
    opt = sgd()
    warm = lrs.LinearLR(opt, start_factor=0.01, end_factor=1.0, total_iters=5)
    expected = run(opt, lrs.SequentialLR(opt, [warm, build(opt)], milestones=[5]))
    params = {"T_max": 30} if name == "cosine" else {}
    assert run_ours(ScheduleConfig(name, params, warmup_steps=5), total=35) == pytest.approx(expected, rel=1e-14)


# ---- closed forms ----

def closed(values) -> pytest.approx:
    return pytest.approx(list(values), rel=1e-12, abs=1e-15)


def test_step_closed_form():
    assert run_ours(ScheduleConfig("step", {"step_size": 3, "gamma": 0.5})) == closed(
        LR * 0.5 ** (k // 3) for k in range(K))


def test_multistep_closed_form():
    ms = [2, 5, 11]
    assert run_ours(ScheduleConfig("multistep", {"milestones": "2, 5, 11", "gamma": 0.5})) == closed(
        LR * 0.5 ** sum(m <= k for m in ms) for k in range(K))


def test_exponential_closed_form():
    assert run_ours(ScheduleConfig("exponential", {"gamma": 0.9})) == closed(LR * 0.9 ** k for k in range(K))


def test_cosine_closed_form():
    T, eta = 15, 0.001
    got = run_ours(ScheduleConfig("cosine", {"T_max": T, "eta_min": eta}), steps=T + 1)
    assert got == closed(eta + (LR - eta) * (1 + math.cos(math.pi * k / T)) / 2 for k in range(T + 1))
    assert got[-1] == pytest.approx(eta, rel=1e-12)


def test_cosine_default_period_is_the_run_after_warmup():
    got = run_ours(ScheduleConfig("cosine", warmup_steps=10), steps=N, total=N)
    T = N - 10
    assert got[10:] == closed((1 + math.cos(math.pi * j / T)) * LR / 2 for j in range(N - 10))


def test_cosine_restarts_closed_form():
    # T_0 = 3, T_mult = 2: periods of 3, 6, 12 steps.
    starts = [0, 3, 9, 21]
    expected = []
    for k in range(K):
        i = max(j for j in range(3) if starts[j] <= k)
        expected.append(LR * (1 + math.cos(math.pi * (k - starts[i]) / (3 * 2 ** i))) / 2)
    assert run_ours(ScheduleConfig("cosine_restarts", {"T_0": 3, "T_mult": 2})) == closed(expected)


def test_cyclic_triangular_closed_form():
    s, lo, hi = 4, 0.001, 0.01
    expected = []
    for k in range(K):
        c = math.floor(1 + k / (2 * s))
        x = abs(k / s - 2 * c + 1)
        expected.append(lo + (hi - lo) * max(0.0, 1 - x))
    assert run_ours(ScheduleConfig("cyclic", {"base_lr": lo, "max_lr": hi, "step_size_up": s})) == closed(expected)


def test_onecycle_start_peak_and_end():
    got = run_ours(ScheduleConfig("onecycle", {"max_lr": 0.2, "pct_start": 0.25}), steps=40, total=40)
    assert got[0] == pytest.approx(0.2 / 25, rel=1e-12)
    assert int(np.argmax(got)) == 9 and got[9] == pytest.approx(0.2, rel=1e-12)  # phase ends at 0.25 * 40 - 1
    assert got[-1] < got[0] / 100


def test_linear_closed_form():
    got = run_ours(ScheduleConfig("linear", {"start_factor": 0.5, "end_factor": 1.0, "total_iters": 10}))
    assert got == closed(LR * (0.5 + 0.5 * min(k, 10) / 10) for k in range(K))


def warmup(k: int, w: int, f: float) -> float:
    return LR * (f + (1 - f) * k / w)


def test_warmup_then_cosine_closed_form():
    w, f, T = 5, 0.1, 10
    got = run_ours(ScheduleConfig("cosine", {"T_max": T}, warmup_steps=w, warmup_start_factor=f))
    expected = [warmup(k, w, f) if k < w else LR * (1 + math.cos(math.pi * (k - w) / T)) / 2 for k in range(K)]
    assert got == closed(expected)


def test_warmup_then_exponential_closed_form():
    w, f = 8, 0.01
    got = run_ours(ScheduleConfig("exponential", {"gamma": 0.9}, warmup_steps=w, warmup_start_factor=f))
    assert got == closed(warmup(k, w, f) if k < w else LR * 0.9 ** (k - w) for k in range(K))


def test_warmup_then_plateau_with_flat_metric_decays_every_patience_plus_one():
    w, f, p, factor = 4, 0.25, 2, 0.5
    cfg = ScheduleConfig("plateau", {"patience": p, "factor": factor}, warmup_steps=w, warmup_start_factor=f)
    got = run_ours(cfg, steps=30)
    # After the warmup the plateau sees one metric per step: the first sets its best, and every
    # p + 1 non-improving ones after that cut the rate.
    expected = [warmup(k, w, f) if k < w else LR * factor ** ((k - w - 1) // (p + 1) if k > w else 0)
                for k in range(30)]
    assert got == closed(expected)
    assert got[w + p + 1] == LR and got[w + p + 2] == LR * factor


def test_warmup_then_plateau_with_improving_metric_never_decays():
    w, f = 4, 0.25
    cfg = ScheduleConfig("plateau", {"patience": 0}, warmup_steps=w, warmup_start_factor=f)
    got = run_ours(cfg, steps=30, metric=lambda k: 1.0 / (k + 1))
    assert got == closed(warmup(k, w, f) if k < w else LR for k in range(30))


def test_plateau_state_shows_the_patience_counting():
    opt = sgd()
    sched = make_schedule(opt, ScheduleConfig("plateau", {"patience": 2}, warmup_steps=2), 50)
    assert sched.describe_state()["in_warmup"]
    seen = []
    for k in range(8):
        opt.step()
        sched.step(3.0)
        seen.append(sched.describe_state()["num_bad_epochs"])
    # calls 1-2: warmup; 3: best = 3; 4, 5: bad; 6: third bad > patience -> cut and reset.
    assert seen == [0, 0, 0, 1, 2, 0, 1, 2]
    state = sched.describe_state()
    assert state["best"] == 3.0 and state["patience"] == 2 and state["must_beat"] == pytest.approx(3.0 * (1 - 1e-4))
    assert sched.last_lrs == [pytest.approx(LR * 0.1)]


def test_plateau_needs_a_metric_after_warmup():
    opt = sgd()
    sched = make_schedule(opt, ScheduleConfig("plateau", warmup_steps=1), 10)
    sched.step()  # the warmup ignores metrics
    with pytest.raises(ValueError, match="metric"):
        sched.step()


def test_describe_state_counts_steps_for_other_schedules():
    opt = sgd()
    sched = make_schedule(opt, ScheduleConfig("step", warmup_steps=3), 10)
    for _ in range(5):
        opt.step()
        sched.step()
    assert sched.describe_state() == {"step": 5, "in_warmup": False, "last_epoch": 5}


# ---- refused settings ----

REFUSED = [
    (ScheduleConfig("onecycle", {"pct_start": 0.01}), 100, "schedule.pct_start"),
    (ScheduleConfig("onecycle", {"pct_start": 0.3}), 5, "schedule.pct_start"),  # 1.5 steps of rise
    (ScheduleConfig("onecycle", {"pct_start": 1.0}), 100, "schedule.pct_start"),  # no annealing left
    (ScheduleConfig("onecycle", {"pct_start": 0.6, "three_phase": True}), 100, "schedule.pct_start"),
    (ScheduleConfig("onecycle", {"pct_start": 0.3}, warmup_steps=95), 100, "schedule.pct_start"),
    (ScheduleConfig("multistep", {"milestones": "0, 100"}), 100, "schedule.milestones"),
    (ScheduleConfig("multistep", {"milestones": "200, 100"}), 100, "schedule.milestones"),
    (ScheduleConfig("multistep", {"milestones": "100, 100"}), 100, "schedule.milestones"),
    (ScheduleConfig("multistep", {"milestones": "10, x"}), 100, "schedule.milestones"),
    (ScheduleConfig("multistep", {"milestones": " "}), 100, "schedule.milestones"),
    (ScheduleConfig("multistep", {"milestones": 100}), 100, "schedule.milestones"),
    (ScheduleConfig("step", {"step_size": 0}), 100, "schedule.step_size"),
    (ScheduleConfig("step", {"step_size": 2.5}), 100, "schedule.step_size"),
    (ScheduleConfig("cosine_restarts", {"T_0": 0}), 100, "schedule.T_0"),
    (ScheduleConfig("cosine_restarts", {"T_mult": 0}), 100, "schedule.T_mult"),
    (ScheduleConfig("cosine", {"T_max": -1}), 100, "schedule.T_max"),
    (ScheduleConfig("exponential", {"gamma": 0.0}), 100, "schedule.gamma"),
    (ScheduleConfig("exponential", {"gamma": -0.5}), 100, "schedule.gamma"),
    (ScheduleConfig("exponential", {"gamma": 1.01}), 100, "schedule.gamma"),
    (ScheduleConfig("plateau", {"factor": 1.0}), 100, "schedule.factor"),
    (ScheduleConfig("plateau", {"factor": 2.0}), 100, "schedule.factor"),
    (ScheduleConfig("plateau", {"mode": "lowest"}), 100, "schedule.mode"),
    (ScheduleConfig("cyclic", {"base_lr": 0.1, "max_lr": 0.01}), 100, "schedule.max_lr"),
    (ScheduleConfig("cyclic", {"cycle_momentum": True, "base_momentum": 0.95}), 100, "schedule.base_momentum"),
    (ScheduleConfig("linear", {"start_factor": 0.0}), 100, "schedule.start_factor"),
    (ScheduleConfig("step", warmup_steps=-1), 100, "schedule.warmup_steps"),
    (ScheduleConfig("step", warmup_steps=100), 100, "schedule.warmup_steps"),
    (ScheduleConfig("step", warmup_steps=10, warmup_start_factor=0.0), 100, "schedule.warmup_start_factor"),
    (ScheduleConfig("step", warmup_steps=10, warmup_start_factor=1.5), 100, "schedule.warmup_start_factor"),
    (ScheduleConfig("step", warmup_steps=10, warmup_start_factor=-0.1), 100, "schedule.warmup_start_factor"),
    (ScheduleConfig("step", {"stepsize": 3}), 100, "schedule.stepsize"),
    (ScheduleConfig("warp"), 100, "schedule"),
    (ScheduleConfig("step"), 0, "total_steps"),
]


@pytest.mark.parametrize("config, total, field", REFUSED, ids=[f"{c.name}-{f}-{i}" for i, (c, _, f) in enumerate(REFUSED)])
def test_refused_with_the_field_named(config, total, field):
    with pytest.raises(ConfigError) as info:
        make_schedule(sgd(), config, total)
    assert type(info.value) is ConfigError and info.value.field == field
    assert info.value.problem  # says why


@pytest.mark.parametrize("name", ["cyclic", "onecycle"])
def test_cycle_momentum_refused_without_momentum(name):
    opt = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    with pytest.raises(ConfigError) as info:
        make_schedule(opt, ScheduleConfig(name, {"cycle_momentum": True}), 100)
    assert info.value.field == "schedule.cycle_momentum" and "Adagrad" in info.value.problem
    make_schedule(opt, ScheduleConfig(name), 100)  # off by default, so every optimiser can use it


def test_milestones_parse():
    assert parse_milestones("100, 200") == [100, 200]
    assert parse_milestones(" 5 10;20 ") == [5, 10, 20]


# ---- previews ----

@pytest.mark.parametrize("name", SCHEDULES.names())
@pytest.mark.parametrize("w", [0, 6])
def test_preview_equals_make_schedule(name, w):
    cfg = ScheduleConfig(name, warmup_steps=w)
    assert preview(cfg, LR, N).tolist() == run_ours(cfg, steps=N, total=N)


def test_preview_passes_the_metric():
    cfg = ScheduleConfig("plateau", {"patience": 1})
    metric = lambda k: 1.0 if k < 10 else 2.0  # noqa: E731 - flat, then worse from step 10
    assert preview(cfg, LR, 30, metric=metric).tolist() == run_ours(cfg, steps=30, total=30, metric=metric)


def test_preview_momentum_follows_torch():
    cfg = ScheduleConfig("cyclic", {"step_size_up": 5, "cycle_momentum": True})
    lr, mom = preview_with_momentum(cfg, LR, 20, optimizer_name_for_momentum="adam")
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    ref = lrs.CyclicLR(opt, 0.001, 0.01, 5, cycle_momentum=True, base_momentum=0.8, max_momentum=0.9)
    betas = []
    for _ in range(20):
        betas.append(opt.param_groups[0]["betas"][0])
        opt.step()
        ref.step()
    assert mom.tolist() == betas
    assert mom[0] == 0.9 and mom[5] == pytest.approx(0.8)  # lowest momentum at the highest rate
    assert preview_with_momentum(ScheduleConfig("cyclic"), LR, 20)[1] is None


def test_preview_refuses_cycle_momentum_for_an_optimiser_without_it():
    with pytest.raises(ConfigError) as info:
        preview(ScheduleConfig("onecycle", {"cycle_momentum": True}), LR, 100, optimizer_name_for_momentum="adagrad")
    assert info.value.field == "schedule.cycle_momentum"


def test_specs_are_complete():
    for name, spec in SCHEDULES.items():
        assert spec.name == name and spec.label and spec.help and spec.formula
        assert spec.needs_metric == (name == "plateau")


def test_import_pulls_in_no_qt():
    code = "import sys, engine.schedules; print([m for m in ('PySide6', 'pyqtgraph', 'PyQt5', 'PyQt6') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "[]"

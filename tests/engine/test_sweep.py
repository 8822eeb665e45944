"""Hyperparameter sweeps: every cell must be the run torch.optim makes with that cell's settings."""
import math

import numpy as np
import pytest
import torch

from engine.basins import Cancelled, Progress
from engine.config import OptimizerConfig, ScheduleConfig
from engine.landscape import explode_bound, resolve_function, run_landscape
from engine.optimizers import OPTIMIZERS
from engine.registry import ConfigError
from engine.sweep import SWEEPABLE, SweepAxis, SweepConfig, SweepResult, iter_sweep, run_sweep


STEPS = 100
REL = 1e-6  # the bound; on this machine the replays agree bit for bit

# (function, optimizer, base params, x axis, y axis): every supported optimiser and sweepable setting,
# with rates reaching past the edge of stability where the runs are most sensitive.
CASES = [
    ("rosenbrock", "gd", {}, SweepAxis("lr", 1e-5, 1e-2, 9), SweepAxis("weight_decay", 0.0, 1.0, 5)),
    ("rosenbrock", "momentum", {}, SweepAxis("lr", 1e-5, 1e-2, 9), SweepAxis("momentum", 0.0, 0.99, 6)),
    ("rosenbrock", "momentum", {"nesterov": True, "weight_decay": 0.01},
     SweepAxis("lr", 1e-5, 1e-2, 9), SweepAxis("momentum", 0.1, 0.99, 6)),
    ("rosenbrock", "adam", {}, SweepAxis("lr", 1e-3, 1.0, 9), SweepAxis("beta1", 0.0, 0.99, 6)),
    ("rosenbrock", "adam", {"lr": 0.1}, SweepAxis("beta2", 0.5, 0.9999, 7), SweepAxis("eps", 1e-10, 1e-1, 6)),
    ("rosenbrock", "adamw", {}, SweepAxis("lr", 1e-3, 1.0, 9), SweepAxis("weight_decay", 0.0, 1.0, 5)),
    ("rosenbrock", "adam_l2", {}, SweepAxis("lr", 1e-3, 1.0, 9), SweepAxis("weight_decay", 0.0, 1.0, 5)),
    ("himmelblau", "adagrad", {"weight_decay": 0.01},
     SweepAxis("lr", 1e-2, 10.0, 9), SweepAxis("initial_accumulator_value", 0.0, 1.0, 5)),
    ("himmelblau", "adagrad", {}, SweepAxis("eps", 1e-10, 1.0, 7), SweepAxis("weight_decay", 0.0, 0.5, 5)),
    ("beale", "rmsprop", {}, SweepAxis("lr", 1e-4, 1.0, 9), SweepAxis("alpha", 0.5, 0.999, 5)),
    ("beale", "rmsprop", {"centered": True, "weight_decay": 0.001},
     SweepAxis("lr", 1e-4, 1.0, 9), SweepAxis("momentum", 0.0, 0.95, 6)),
    ("linear_regression", "momentum", {}, SweepAxis("lr", 1e-3, 1.0, 9), SweepAxis("momentum", 0.0, 0.99, 6)),
]


def replay(cfg: SweepConfig, oc: OptimizerConfig, target: float):
    """One cell, one start, the real torch.optim class: (final point, final loss, steps_to_tol, diverged_at)."""
    fn = resolve_function(cfg)
    params = fn.resolve(cfg.function_params)
    bound = explode_bound(fn.domain)
    leaf = torch.tensor([cfg.start or fn.start], dtype=torch.float64, requires_grad=True)
    opt = OPTIMIZERS.get(oc.name).build([leaf], oc.params)
    last, tol_step = leaf.detach().clone(), -1
    for k in range(cfg.steps + 1):
        opt.zero_grad()
        loss = fn(leaf, params)
        loss.sum().backward()
        value = loss.item()
        if not (math.isfinite(value) and torch.isfinite(leaf.grad).all() and (leaf.abs() <= bound).all()):
            return last[0].numpy(), math.nan, tol_step, k
        last = leaf.detach().clone()
        if tol_step < 0 and value <= target:
            tol_step = k
        if k == cfg.steps:
            return last[0].numpy(), value, tol_step, -1
        opt.step()


def sample_cells(result: SweepResult, count: int = 8):
    """Corners, the centre, cells on the edge of divergence, then seeded random ones."""
    ny, nx = result.final_loss.shape
    cells = [(0, 0), (nx - 1, 0), (0, ny - 1), (nx - 1, ny - 1), (nx // 2, ny // 2)]
    diverged = result.diverged_at >= 0
    edge = diverged[:, 1:] != diverged[:, :-1]  # a diverged cell beside a finite one
    for iy, ix in zip(*np.nonzero(edge)):
        cells += [(ix, iy), (ix + 1, iy)]
        if len(cells) >= count + 2:
            break
    rng = np.random.default_rng(0)
    while len(set(cells)) < count + 2:
        cells.append((int(rng.integers(nx)), int(rng.integers(ny))))
    return sorted(set(cells))


@pytest.mark.parametrize("function, optimizer, base, x, y", CASES,
                         ids=[f"{c[1]}-{c[3].param}-{c[4].param}-{c[0]}" for c in CASES])
def test_sampled_cells_equal_their_torch_optim_replays(function, optimizer, base, x, y):
    cfg = SweepConfig(function=function, optimizer=optimizer, base_params=base, x=x, y=y, steps=STEPS, tol=1e-3)
    result = run_sweep(cfg)
    cells = sample_cells(result)
    assert len(cells) >= 8
    for ix, iy in cells:
        xy, loss, tol_step, diverged_at = replay(cfg, cfg.cell_config(ix, iy), result.target)
        where = f"cell [{iy}, {ix}]: {cfg.cell_config(ix, iy).label}"
        assert result.diverged_at[iy, ix] == diverged_at, where
        assert result.steps_to_tol[iy, ix] == tol_step, where
        assert np.linalg.norm(result.final_xy[iy, ix] - xy) <= REL * np.linalg.norm(xy), where
        if math.isnan(loss):
            assert math.isnan(result.final_loss[iy, ix]), where
        else:
            assert abs(result.final_loss[iy, ix] - loss) <= REL * abs(loss) + 1e-300, where


def test_the_stability_edge_is_sampled():
    # The table above is only a strong test if some of its sweeps cross into divergence.
    cfg = SweepConfig(function="rosenbrock", optimizer="momentum", x=CASES[1][3], y=CASES[1][4], steps=STEPS)
    result = run_sweep(cfg)
    diverged = result.diverged_at >= 0
    assert diverged.any() and not diverged.all()
    assert any(diverged[iy, ix] for ix, iy in sample_cells(result))
    assert any(not diverged[iy, ix] and diverged[iy, min(ix + 1, diverged.shape[1] - 1)]
               for ix, iy in sample_cells(result))


def race_replay(cfg: SweepConfig, ix: int, iy: int):
    frames = list(run_landscape(cfg.cell_landscape_config(ix, iy), with_state=False))
    return frames[-1], np.array([f.loss[0, 0] for f in frames])


@pytest.mark.parametrize("cfg", [
    SweepConfig(function="rosenbrock", optimizer="sgd", base_params={"noise": 0.5},
                x=SweepAxis("lr", 1e-5, 1e-2, 5), y=SweepAxis("noise", 0.0, 5.0, 4), steps=120),
    SweepConfig(function="linear_regression", optimizer="momentum", batch_size=16, seed=3,
                x=SweepAxis("lr", 1e-3, 0.3, 5), y=SweepAxis("momentum", 0.0, 0.95, 4), steps=120),
    SweepConfig(function="logistic_regression", optimizer="adam", batch_size=32,
                x=SweepAxis("lr", 1e-3, 1.0, 5), y=SweepAxis("beta1", 0.0, 0.95, 4), steps=120),
], ids=["sgd-noise", "minibatch-momentum", "minibatch-adam"])
def test_noisy_and_mini_batch_cells_replay_as_race_trajectories(cfg):
    # The sweep draws SGD's noise and the batches as the race does for one start, so a click on a cell
    # shows exactly the run the cell summarises.
    result = run_sweep(cfg)
    for ix, iy in [(0, 0), (4, 3), (2, 1), (4, 0), (1, 3)]:
        last, losses = race_replay(cfg, ix, iy)
        assert last.diverged_at[0, 0] == result.diverged_at[iy, ix]
        hit = np.nonzero(losses <= result.target)[0]
        assert result.steps_to_tol[iy, ix] == (hit[0] if len(hit) else -1)
        np.testing.assert_allclose(result.final_xy[iy, ix], last.xy[0, 0], rtol=REL)
        np.testing.assert_allclose(result.final_loss[iy, ix], last.loss[0, 0], rtol=REL)


def test_gd_ignores_the_batch_size_in_a_sweep_too():
    axes = dict(x=SweepAxis("lr", 1e-3, 0.3, 4), y=SweepAxis("weight_decay", 0.0, 0.5, 3), steps=60)
    full = run_sweep(SweepConfig(function="linear_regression", optimizer="gd", **axes))
    batched = run_sweep(SweepConfig(function="linear_regression", optimizer="gd", batch_size=8, **axes))
    assert np.array_equal(full.final_xy, batched.final_xy)


# ---- layout and API ----

def test_arrays_are_indexed_y_then_x_and_cells_carry_their_values():
    cfg = SweepConfig(optimizer="adam", x=SweepAxis("lr", 1e-3, 1e-1, 3), y=SweepAxis("beta1", 0.5, 0.9, 5),
                      base_params={"eps": 1e-6}, steps=10)
    result = run_sweep(cfg)
    assert result.final_loss.shape == result.steps_to_tol.shape == result.diverged_at.shape == (5, 3)
    assert result.final_xy.shape == (5, 3, 2)
    np.testing.assert_allclose(result.x_values, [1e-3, 1e-2, 1e-1], rtol=1e-15)
    np.testing.assert_allclose(result.y_values, [0.5, 0.6, 0.7, 0.8, 0.9], rtol=1e-15)
    oc = result.cell_config(2, 4)
    assert oc.name == "adam" and oc.params == {"eps": 1e-6, "lr": 0.1, "beta1": 0.9}
    assert oc.schedule == ScheduleConfig() and oc.label == "lr=0.1, beta1=0.9"
    race = result.cell_landscape_config(2, 4)
    assert race.optimizers == (oc,) and race.steps == 10 and race.function == "rosenbrock"


def test_log_axes_end_exactly_where_asked():
    values = SweepAxis("lr", 3e-4, 0.7, 17).values("adam")
    assert values[0] == 3e-4 and values[-1] == 0.7
    np.testing.assert_allclose(np.diff(np.log(values)), math.log(0.7 / 3e-4) / 16, rtol=1e-12)
    assert SweepAxis("lr", 0.1, 0.5, 5, log=False).values("adam").tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert SweepAxis("beta1", 0.1, 0.5, 1).values("adam").tolist() == [0.1]


def test_steps_to_tol_counts_to_the_known_minimum():
    cfg = SweepConfig(function="booth", optimizer="gd", x=SweepAxis("lr", 1e-3, 0.05, 6),
                      y=SweepAxis("weight_decay", 0.0, 0.0, 1), steps=300, tol=1e-4)
    result = run_sweep(cfg)
    assert result.target == 1e-4  # Booth's minimum value is 0
    reached = result.steps_to_tol[0]
    assert reached[-1] >= 0 and reached[0] == -1
    assert all(a >= b for a, b in zip(reached[1:][reached[1:] >= 0], reached[2:][reached[2:] >= 0]))


def test_generator_yields_progress_then_the_result_and_cancels(monkeypatch):
    monkeypatch.setattr("engine.sweep.PROGRESS_S", float("inf"))  # by step count alone: a count to assert
    cfg = SweepConfig(x=SweepAxis("lr", 1e-3, 1e-1, 2), y=SweepAxis("beta1", 0.5, 0.9, 2), steps=400)
    *progress, result = list(iter_sweep(cfg))
    assert isinstance(result, SweepResult) and all(isinstance(p, Progress) for p in progress)
    assert progress[-1].fraction == 1.0 and len(progress) == 201
    seen = []
    with pytest.raises(Cancelled):
        run_sweep(cfg, progress=seen.append, should_stop=lambda: len(seen) == 2)
    assert len(seen) == 2


def test_config_round_trips_through_json():
    cfg = SweepConfig(function="himmelblau", function_params={}, start=(1.0, -2.0), optimizer="rmsprop",
                      base_params={"centered": True}, x=SweepAxis("lr", 1e-4, 1.0, 16),
                      y=SweepAxis("alpha", 0.5, 0.999, 8, log=False), steps=300, tol=1e-5, seed=4)
    assert SweepConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match=r"sweep\.x\.bogus: unknown key"):
        SweepConfig.from_dict({**cfg.to_dict(), "x": {**cfg.x.to_dict(), "bogus": 1}})


def test_for_optimizer_refuses_schedules():
    x, y = SweepAxis("lr", 1e-3, 1e-1, 2), SweepAxis("beta1", 0.5, 0.9, 2)
    cfg = SweepConfig.for_optimizer(OptimizerConfig("adam", {"eps": 1e-7}), x, y, steps=20)
    assert cfg.optimizer == "adam" and cfg.base_params == {"eps": 1e-7}
    with pytest.raises(ConfigError) as info:
        SweepConfig.for_optimizer(OptimizerConfig("adam", schedule=ScheduleConfig("cosine")), x, y)
    assert info.value.field == "schedule"
    with pytest.raises(ConfigError):
        SweepConfig.for_optimizer(OptimizerConfig("adam", schedule=ScheduleConfig(warmup_steps=5)), x, y)


@pytest.mark.parametrize("changes, field", [
    ({"optimizer": "nadam"}, "optimizer"),
    ({"optimizer": "lbfgs"}, "optimizer"),
    ({"x": SweepAxis("amsgrad", 0, 1, 2)}, "x.param"),
    ({"optimizer": "momentum", "y": SweepAxis("nesterov", 0, 1, 2)}, "y.param"),
    ({"y": SweepAxis("lr", 1e-3, 1e-1, 3)}, "y.param"),
    ({"x": SweepAxis("lr", 0.0, 1.0, 3, log=False)}, "x.lr"),
    ({"x": SweepAxis("beta1", 0.0, 0.9, 3, log=True), "y": SweepAxis("lr", 1e-3, 1e-1, 3)}, "x.start"),
    ({"y": SweepAxis("beta1", 0.5, 1.5, 3)}, "y.beta1"),
    ({"x": SweepAxis("lr", 1e-3, 1e-1, 0)}, "x.count"),
    ({"x": SweepAxis("lr", 1e-3, 1e-1, 600)}, "x.count"),
    ({"x": SweepAxis("lr", 1e-3, 1e-1, 512), "y": SweepAxis("beta1", 0.1, 0.9, 256)}, "y.count"),
    ({"optimizer": "momentum", "base_params": {"nesterov": True}, "y": SweepAxis("momentum", 0.0, 0.9, 3)},
     "optimizer momentum.nesterov"),
    ({"base_params": {"bogus": 1}}, "optimizer adam.bogus"),
    ({"steps": 0}, "steps"),
    ({"tol": -1.0}, "tol"),
    ({"batch_size": 8}, "batch_size"),
    ({"function": "nope"}, "function"),
])
def test_bad_sweeps_are_refused_naming_the_field(changes, field):
    base = dict(x=SweepAxis("lr", 1e-3, 1e-1, 3), y=SweepAxis("beta1", 0.5, 0.9, 3))
    with pytest.raises(ConfigError) as info:
        run_sweep(SweepConfig(**{**base, **changes}))
    assert info.value.field == field


def test_every_sweepable_setting_is_a_real_setting_of_its_optimiser():
    for name, settings in SWEEPABLE.items():
        known = {p.name for p in OPTIMIZERS.get(name).params}
        assert set(settings) <= known, name
        assert OPTIMIZERS.get(name).elementwise


def test_sweep_progress_also_comes_by_time(monkeypatch):
    monkeypatch.setattr("engine.sweep.PROGRESS_S", 0.0)
    cfg = SweepConfig(x=SweepAxis("lr", 1e-3, 1e-1, 2), y=SweepAxis("beta1", 0.5, 0.9, 2), steps=400)
    *progress, _ = list(iter_sweep(cfg))
    assert [p.done for p in progress] == list(range(401))


@pytest.mark.parametrize("start, stop", [(0.5, 0.5), (0.9, 0.1)])
def test_an_axis_whose_stop_is_not_above_its_start_is_refused_with_the_field_named(start, stop):
    axis = SweepAxis("beta1", start, stop, 8)
    with pytest.raises(ConfigError) as info:
        axis.values("adam", "sweep.y")
    assert info.value.field == "sweep.y.stop" and "above the start" in info.value.problem
    assert len(SweepAxis("beta1", 0.5, 0.5, 1).values("adam")) == 1  # one value needs no range


def test_the_result_knows_f_star_where_the_minima_are_known():
    r = run_sweep(SweepConfig(function="booth", optimizer="momentum", x=SweepAxis("lr", 0.01, 0.1, 2),
                              y=SweepAxis("momentum", 0.0, 0.9, 2), steps=5))
    assert r.f_star == 0.0 and r.target == r.config.tol

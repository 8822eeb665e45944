"""The 2D race: batching is exact, runs are deterministic, divergence is data, configs round-trip."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from engine.config import OptimizerConfig, ScheduleConfig
from engine.functions import FUNCTIONS
from engine.landscape import LandscapeConfig, StartsConfig, run_landscape, start_points
from engine.optimizers import OPTIMIZERS
from engine.registry import ConfigError


def frames(cfg, **kw):
    return list(run_landscape(cfg, **kw))


def test_batched_trajectories_equal_separate_torch_runs():
    cfg = LandscapeConfig(function="himmelblau", starts=StartsConfig("random", 5), steps=40, seed=3,
                          optimizers=(OptimizerConfig("adam", {"lr": 0.05}), OptimizerConfig("momentum")))
    out = frames(cfg, with_state=False)[-1]
    fn = FUNCTIONS.get("himmelblau")
    for i, oc in enumerate(cfg.optimizers):
        for n, (x, y) in enumerate(start_points(cfg, fn)):
            p = torch.tensor([[x, y]], dtype=torch.float64, requires_grad=True)
            opt = OPTIMIZERS.get(oc.name).build([p], oc.params)
            for _ in range(cfg.steps):
                opt.zero_grad()
                fn(p).sum().backward()
                opt.step()
            np.testing.assert_allclose(out.xy[i, n], p.detach().numpy()[0], rtol=1e-12, atol=1e-12)


def test_same_seed_same_run_and_different_seed_different_noise():
    def run(seed):
        cfg = LandscapeConfig(function="quadratic", steps=30, seed=seed, optimizers=(OptimizerConfig("sgd"),))
        return frames(cfg, with_state=False)[-1].xy

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_gd_on_rosenbrock_at_lr_0_1_diverges_and_the_others_carry_on():
    cfg = LandscapeConfig(function="rosenbrock", start=(-1.2, 1.0), steps=50,
                          optimizers=(OptimizerConfig("gd", {"lr": 0.1}), OptimizerConfig("adam", {"lr": 0.01})))
    out = frames(cfg, with_state=False)
    last = out[-1]
    k = int(last.diverged_at[0, 0])
    assert 0 < k < 50
    assert np.isfinite(last.xy).all()  # the diverged trajectory keeps its last finite point
    assert np.isnan(last.loss[0, 0]) and np.isfinite(last.loss[1, 0])
    assert last.diverged_at[1, 0] == -1
    assert out[-1].loss[1, 0] < out[0].loss[1, 0]
    # Frozen from the step it diverged at.
    np.testing.assert_array_equal(out[k].xy[0], out[-1].xy[0])


def test_frame_lr_is_the_rate_used_by_that_step():
    sched = ScheduleConfig("step", {"step_size": 3, "gamma": 0.5})
    cfg = LandscapeConfig(function="quadratic", steps=8, optimizers=(OptimizerConfig("gd", {"lr": 0.1}, sched),))
    lrs = [f.lr[0] for f in frames(cfg)][:8]
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025])


def test_frames_hold_copies_of_optimizer_state():
    cfg = LandscapeConfig(function="quadratic", steps=3, optimizers=(OptimizerConfig("adam"),))
    out = frames(cfg)
    assert set(out[2].state[0]) >= {"exp_avg", "exp_avg_sq", "step"}
    assert out[1].state[0]["exp_avg"] is not out[2].state[0]["exp_avg"]
    assert not np.array_equal(out[1].state[0]["exp_avg_sq"], out[2].state[0]["exp_avg_sq"])


def test_config_round_trips_through_json_and_refuses_bad_fields():
    cfg = LandscapeConfig(function="quadratic", function_params={"kappa": 20.0}, start=(1.0, 2.0), steps=10,
                          optimizers=(OptimizerConfig("adam", {"lr": 0.1}, ScheduleConfig("cosine")),))
    again = LandscapeConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    bad = cfg.to_dict()
    bad["optimizers"][0]["params"]["lr"] = "fast"
    with pytest.raises(ConfigError) as err:
        LandscapeConfig.from_dict(bad)
    assert "lr" in err.value.field
    with pytest.raises(ConfigError, match="unknown key"):
        LandscapeConfig.from_dict({**cfg.to_dict(), "colour": "red"})
    with pytest.raises(ConfigError, match="steps"):
        LandscapeConfig(steps=0).validate()
    with pytest.raises(ConfigError, match="one trajectory"):
        LandscapeConfig(starts=StartsConfig("grid", 4), optimizers=(OptimizerConfig("lbfgs"),)).validate()


def test_custom_function_runs_and_non_finite_regions_mark_divergence():
    cfg = LandscapeConfig(function="custom", custom_expression="log(x) + y**2", start=(0.5, 1.0), steps=20,
                          optimizers=(OptimizerConfig("gd", {"lr": 1.0}),))
    last = frames(cfg, with_state=False)[-1]
    assert last.diverged_at[0, 0] > 0  # it walks into x < 0, where log is undefined


def test_engine_never_imports_qt():
    code = ("import sys, engine.landscape, engine.training, engine.cli, engine.functions, engine.schedules; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'PyQt5', 'PyQt6')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", OPTIMIZERS.names())
@pytest.mark.parametrize("k", [1, 2])
def test_every_frame_keeps_the_gradient_at_its_own_position(name, k):
    """Frames are collected whole, then checked: a gradient an optimiser edited in place after the frame
    was yielded (frames share gradients, they are not copied) would no longer match its position."""
    params = {"noise": 0.0} if name == "sgd" else {}  # else the frame shows the noisy gradient SGD receives
    opts = (OptimizerConfig(name, params),) + ((OptimizerConfig("adam", {"lr": 0.05}),) if k == 2 else ())
    starts = StartsConfig("random", 3) if OPTIMIZERS.get(name).elementwise else StartsConfig()
    cfg = LandscapeConfig(function="himmelblau", starts=starts, steps=12, seed=1, optimizers=opts)
    out = frames(cfg, with_state=False)
    fn = FUNCTIONS.get("himmelblau")
    for f in out:
        p = torch.tensor(f.xy, requires_grad=True)
        fn(p).sum().backward()
        np.testing.assert_allclose(f.grad, p.grad.numpy(), rtol=1e-12, atol=1e-12, err_msg=f"step {f.step}")
        assert f.evals.tolist() == [f.step + 1] * k or name == "lbfgs"
    assert [f.evals[0] for f in out] == sorted(f.evals[0] for f in out)


def test_a_diverged_trajectorys_earlier_frames_keep_their_gradients():
    cfg = LandscapeConfig(function="rosenbrock", start=(-1.2, 1.0), steps=40, starts=StartsConfig("random", 4),
                          optimizers=(OptimizerConfig("gd", {"lr": 0.1}),))
    out = frames(cfg, with_state=False)
    assert (out[-1].diverged_at >= 0).any()
    fn = FUNCTIONS.get("rosenbrock")
    for f in out:
        alive = f.diverged_at < 0
        p = torch.tensor(f.xy, requires_grad=True)
        fn(p).sum().backward()
        np.testing.assert_allclose(f.grad[alive], p.grad.numpy()[alive], rtol=1e-12)
        assert np.isnan(f.grad[~alive]).all()


def test_a_start_beyond_the_divergence_bound_is_refused_with_the_field_named():
    cfg = LandscapeConfig(function="rosenbrock", start=(1e6, 1.0), optimizers=(OptimizerConfig("adam"),))
    with pytest.raises(ConfigError) as info:
        cfg.validate()
    assert info.value.field == "start" and "counts as diverged" in info.value.problem
    LandscapeConfig(function="rosenbrock", start=(50.0, 1.0), optimizers=(OptimizerConfig("adam"),)).validate()


def test_a_custom_domain_beyond_a_million_is_refused_with_the_axis_named():
    cfg = LandscapeConfig(function="custom", custom_expression="x**2 + y**2",
                          custom_domain=((-1e300, 1e300), (-3.0, 3.0)), optimizers=(OptimizerConfig("adam"),))
    with pytest.raises(ConfigError) as info:
        cfg.validate()
    assert info.value.field.endswith("domain.x") and "within" in info.value.problem

"""Glyphs are torch's own optimizer.state, and the parts of a step add up to the step torch took."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from engine.config import OptimizerConfig, ScheduleConfig
from engine.functions import FUNCTIONS
from engine.glyphs import (
    decompose, decompose_frames, effective_decay, family, glyphs, glyphs_for_frame, has_decomposition,
    rule_values, state_summary, step_of, update_rule_latex, update_rule_lines,
)
from engine.landscape import LandscapeConfig, StartsConfig, run_landscape, start_points
from engine.optimizers import OPTIMIZERS

# Every registry optimiser, with settings that switch on each branch of its update rule (weight decay,
# Nesterov, centred RMSprop with momentum, ...). A new registry entry must be added here.
CASES = [
    ("gd", {"weight_decay": 0.1}),
    ("sgd", {"weight_decay": 0.1}),
    ("momentum", {}),
    ("momentum", {"nesterov": True, "weight_decay": 0.1}),
    ("adagrad", {"initial_accumulator_value": 0.1, "weight_decay": 0.1}),
    ("rmsprop", {}),
    ("rmsprop", {"momentum": 0.5, "centered": True, "weight_decay": 0.1}),
    ("adam", {}),
    ("adam_l2", {"weight_decay": 0.1}),
    ("adamw", {"weight_decay": 0.1}),
    ("nadam", {"weight_decay": 0.1}),
    ("radam", {"weight_decay": 0.1}),
    ("adamax", {"weight_decay": 0.1}),
    ("adadelta", {"weight_decay": 0.1}),
    ("rprop", {}),
    ("lbfgs", {}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in p.items())}" if p else n for n, p in CASES]
FUNCTION = "himmelblau"  # gradients of O(10): every case stays finite over STEPS steps at default lrs
STEPS = 15  # RAdam (beta2 = 0.999) is unrectified until t = 5 and rectified after: both branches run


def _config(name, params, count=3, steps=STEPS, schedule=None):
    starts = StartsConfig("disc", count, 0.5) if count > 1 else StartsConfig()
    return LandscapeConfig(function=FUNCTION, starts=starts, steps=steps, seed=1,
                           optimizers=(OptimizerConfig(name, params, schedule or ScheduleConfig()),))


def _frames(name, params, **kw):
    return list(run_landscape(_config(name, params, **kw)))


def _torch_steps(name, params, starts, steps):
    """Step torch directly, no engine: yields (p, opt) after each gradient, before each update."""
    fn = FUNCTIONS.get(FUNCTION)
    p = torch.tensor(starts, dtype=torch.float64, requires_grad=True)
    opt = OPTIMIZERS.get(name).build([p], params)

    def closure():
        opt.zero_grad()
        loss = fn(p).sum()
        loss.backward()
        return loss

    for k in range(steps + 1):
        closure()
        yield p, opt
        if k < steps:
            opt.step(closure) if isinstance(opt, torch.optim.LBFGS) else opt.step()


def _expected_effective_lr(opt, p, lr):
    """What the glyph promises, written against torch's state tensors (see Glyphs.effective_lr)."""
    st, g = opt.state.get(p, {}), opt.param_groups[0]
    if isinstance(opt, torch.optim.SGD):
        return torch.full_like(p, lr)
    t = int(st["step"]) if "step" in st else 0
    if t == 0 or isinstance(opt, (torch.optim.Rprop, torch.optim.LBFGS)):
        return None
    eps = g["eps"]
    if isinstance(opt, torch.optim.Adagrad):
        return lr / (st["sum"].sqrt() + eps)
    if isinstance(opt, torch.optim.RMSprop):
        sq = st["square_avg"] - st["grad_avg"] ** 2 if g["centered"] else st["square_avg"]
        return lr / (sq.sqrt() + eps)
    if isinstance(opt, torch.optim.Adadelta):
        return lr * (st["acc_delta"] + eps).sqrt() / (st["square_avg"] + eps).sqrt()
    if isinstance(opt, torch.optim.Adamax):
        return lr / st["exp_inf"]
    beta2 = g["betas"][1]
    bc2 = 1 - beta2**t
    if isinstance(opt, torch.optim.NAdam):
        return lr / ((st["exp_avg_sq"] / bc2).sqrt() + eps)
    if isinstance(opt, torch.optim.RAdam):
        rho_inf = 2 / (1 - beta2) - 1
        rho = rho_inf - 2 * t * beta2**t / bc2
        if rho <= 5:
            return torch.full_like(p, lr)
        r = ((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)) ** 0.5
        return lr * r * bc2**0.5 / (st["exp_avg_sq"].sqrt() + eps)
    return lr / (st["exp_avg_sq"].sqrt() / bc2**0.5 + eps)  # Adam, AdamW, Adam + L2


def _close(actual, expected, what):
    if expected is None:
        assert actual is None, f"{what}: expected none"
        return
    assert actual is not None, f"{what}: missing"
    np.testing.assert_allclose(actual, expected.detach().numpy() if torch.is_tensor(expected) else expected,
                               rtol=1e-12, atol=1e-15, err_msg=what)


def test_cases_cover_every_registered_optimizer():
    assert {name for name, _ in CASES} == set(OPTIMIZERS.names())


@pytest.mark.parametrize("name,params", CASES, ids=IDS)
def test_glyphs_equal_the_optimizers_own_state_at_every_step(name, params):
    """Engine frames against a separately stepped torch optimiser's ``optimizer.state``, step by step."""
    if name == "sgd":
        params = {**params, "noise": 0.0}  # the engine's seeded noise is not part of torch's optimiser
    cfg = _config(name, params, count=1 if name == "lbfgs" else 3)
    frames = list(run_landscape(cfg))
    starts = start_points(cfg, FUNCTIONS.get(FUNCTION))
    stateful = False
    for frame, (p, opt) in zip(frames, _torch_steps(name, params, starts, STEPS)):
        k = frame.step
        lr = opt.param_groups[0]["lr"]
        st = opt.state.get(p, {})
        stateful |= bool(st)
        gl = glyphs_for_frame(frame, 0, name, params)
        _close(gl.neg_grad, -p.grad, f"{name} step {k}: neg_grad")
        _close(gl.momentum, -lr * st["momentum_buffer"] if "momentum_buffer" in st else None,
               f"{name} step {k}: momentum")
        t = int(st["step"]) if "step" in st else None
        assert gl.step == t
        has_m = "exp_avg" in st and t
        _close(gl.first_moment_hat, st["exp_avg"] / (1 - opt.param_groups[0]["betas"][0] ** t) if has_m else None,
               f"{name} step {k}: first_moment_hat")
        _close(gl.effective_lr, _expected_effective_lr(opt, p, lr), f"{name} step {k}: effective_lr")
        if has_m:
            assert gl.bias_correction1 == 1 - opt.param_groups[0]["betas"][0] ** t
    assert stateful == (name not in ("gd", "sgd"))  # the optimisers with no state are plain SGD


# The glyph arrows tie to the real step: constant lr and no weight decay, so these are exact identities.
@pytest.mark.parametrize("name,params,direction", [
    ("adam", {}, "m_hat"), ("radam", {}, "m_hat"), ("adamax", {}, "m_hat"),
    ("adagrad", {}, "grad"), ("rmsprop", {}, "grad"), ("gd", {}, "grad"),
    ("momentum", {}, "momentum"), ("rmsprop", {"momentum": 0.5}, "momentum"),
])
def test_glyph_arrows_reproduce_the_step_just_taken(name, params, direction):
    frames = _frames(name, params)
    for prev, frame in zip(frames, frames[1:]):
        gl = glyphs_for_frame(frame, 0, name, params)
        taken = frame.xy[0] - prev.xy[0]
        if direction == "m_hat":
            predicted = -gl.effective_lr * gl.first_moment_hat
        elif direction == "grad":
            predicted = -gl.effective_lr * prev.grad[0]
        else:
            predicted = gl.momentum
        np.testing.assert_allclose(predicted, taken, rtol=1e-10, atol=1e-14, err_msg=f"{name} step {frame.step}")


def test_no_effective_lr_ellipse_before_the_first_update():
    for name in ("adam", "adagrad", "rmsprop", "adadelta"):
        frame = _frames(name, {}, steps=1)[0]
        gl = glyphs_for_frame(frame, 0, name, {})
        assert gl.effective_lr is None and gl.first_moment_hat is None, name
        np.testing.assert_array_equal(gl.neg_grad, -frame.grad[0])


@pytest.mark.parametrize("name,params", [c for c in CASES if c[0] != "lbfgs"],
                         ids=[i for c, i in zip(CASES, IDS) if c[0] != "lbfgs"])
def test_parts_of_each_update_add_up_to_the_step_torch_took(name, params):
    frames = _frames(name, params, count=4)
    assert (frames[-1].diverged_at < 0).all()  # else the frozen rows would not be real steps
    keys = None
    for frame, nxt in zip(frames, frames[1:]):
        parts = decompose_frames(frame, nxt, 0, name, params)
        np.testing.assert_allclose(step_of(parts), nxt.xy[0] - frame.xy[0], rtol=0, atol=1e-10,
                                   err_msg=f"{name} update {frame.step}")
        assert all(p.vector.shape == frame.xy[0].shape for p in parts)
        keys = keys or [p.key for p in parts]
        assert [p.key for p in parts] == keys, "the list of parts must not change during a run"
    wd = params.get("weight_decay", 0)
    if name == "adamw":
        assert keys[0] == "decoupled_decay" and "weight_decay" not in keys
    elif wd:
        assert "weight_decay" in keys and "decoupled_decay" not in keys
    if family(name) in ("adam", "nadam", "radam", "adamax"):
        assert keys[-1] == "moment"
    if name == "momentum":
        assert keys[-1] == ("lookahead" if params.get("nesterov") else "velocity")


def test_radam_cases_cover_both_sides_of_rectification():
    name, params = "radam", {"weight_decay": 0.1}
    rectified = {dict(state_summary(name, params, f.state[0], f.grad[0], f.lr[0]))["rectified"].split(",")[0]
                 for f in _frames(name, params)[1:]}
    assert rectified == {"yes", "no (rho_t <= 5): plain momentum step"}


def test_decomposition_of_a_direct_torch_step_with_a_schedule():
    """Without the engine: torch stepped by hand, lr changing every step (the part scaled by the lr used)."""
    fn = FUNCTIONS.get("rosenbrock")
    p = torch.tensor([[-1.2, 1.0], [0.3, -0.4]], dtype=torch.float64, requires_grad=True)
    params = {"lr": 0.02, "weight_decay": 0.05}
    opt = OPTIMIZERS.get("adamw").build([p], params)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)
    for _ in range(8):
        opt.zero_grad()
        fn(p).sum().backward()
        before = {k: v.detach().numpy().copy() for k, v in opt.state[p].items()}
        x, g, lr = p.detach().numpy().copy(), p.grad.numpy().copy(), opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        after = {k: v.detach().numpy().copy() for k, v in opt.state[p].items()}
        parts = decompose("adamw", params, x, g, lr, before, after)
        np.testing.assert_allclose(step_of(parts), p.detach().numpy() - x, rtol=0, atol=1e-10)
        np.testing.assert_allclose(parts[0].vector, -lr * 0.05 * x, rtol=1e-15)


def test_lbfgs_has_no_decomposition():
    assert not has_decomposition("lbfgs")
    frames = _frames("lbfgs", {}, count=1, steps=2)
    with pytest.raises(ValueError, match="line search"):
        decompose_frames(frames[0], frames[1], 0, "lbfgs", {})
    with pytest.raises(ValueError, match="consecutive"):
        decompose_frames(frames[0], frames[2], 0, "adam", {})


def test_adamw_effective_decay_is_exactly_lr_times_wd_under_a_schedule():
    params = {"lr": 0.05, "weight_decay": 0.1}
    sched = ScheduleConfig("exponential", {"gamma": 0.9})
    frames = _frames("adamw", params, schedule=sched)
    lrs = {float(f.lr[0]) for f in frames}
    assert len(lrs) > 5  # the lr really moves
    for f in frames[1:]:
        np.testing.assert_array_equal(effective_decay("adamw", params, f.state[0], f.lr[0]),
                                      np.full(f.xy[0].shape, f.lr[0] * 0.1))


def test_adam_l2_effective_decay_is_divided_by_the_adaptive_denominator():
    params = {"lr": 0.05, "weight_decay": 0.1}
    frames = _frames("adam_l2", params)
    for f in frames[1:]:
        st = f.state[0]
        t = int(st["step"])
        expected = 0.05 * 0.1 / (np.sqrt(st["exp_avg_sq"]) / np.sqrt(1 - 0.999**t) + 1e-8)
        got = effective_decay("adam_l2", params, st, f.lr[0])
        np.testing.assert_allclose(got, expected, rtol=1e-12)
        vhat = st["exp_avg_sq"] / (1 - 0.999**t)
        big = np.sqrt(vhat) > 1  # where gradients are larger than 1, coupled decay is weaker than AdamW's
        assert big.any() and (got[big] < 0.05 * 0.1).all()
    # At the first update the L2 part of the step is exactly -effective_decay * x (1 - beta1 = bias correction).
    parts = {p.key: p.vector for p in decompose_frames(frames[0], frames[1], 0, "adam_l2", params)}
    np.testing.assert_allclose(parts["weight_decay"], -effective_decay("adam_l2", params, frames[1].state[0],
                                                                       frames[0].lr[0]) * frames[0].xy[0],
                               rtol=1e-12)
    assert effective_decay("adam", {}, frames[1].state[0]).sum() == 0  # plain Adam has no decay


def test_state_summary_lists_torchs_numbers_for_the_chosen_trajectory():
    frames = _frames("adam", {"lr": 0.05})
    f = frames[5]
    rows = state_summary("adam", {"lr": 0.05}, f.state[0], f.grad[0], f.lr[0], index=2)
    table = dict(rows)
    assert len(table) == len(rows)
    assert table["step t"] == "5"
    assert table["1 - beta1^t"] == f"{1 - 0.9**5:.4g}"
    assert table["1 - beta2^t"] == f"{1 - 0.999**5:.4g}"
    m = f.state[0]["exp_avg"][2]
    assert table["first moment m"] == f"({m[0]:.4g}, {m[1]:.4g})"
    assert table["gradient g"] == f"({f.grad[0][2][0]:.4g}, {f.grad[0][2][1]:.4g})"
    eff = glyphs_for_frame(f, 0, "adam", {"lr": 0.05}).effective_lr[2]
    assert table["effective lr per axis"] == f"({eff[0]:.4g}, {eff[1]:.4g})"
    assert table["learning rate"] == "0.05" and table["beta2"] == "0.999"


@pytest.mark.parametrize("name,params", CASES, ids=IDS)
def test_every_optimizer_has_summary_rows_and_a_mathtext_safe_rule(name, params):
    frames = _frames(name, params, count=1, steps=4)
    f = frames[3]
    rows = state_summary(name, params, f.state[0], f.grad[0], f.lr[0])
    assert len(dict(rows)) == len(rows) and all(isinstance(v, str) for _, v in rows)
    step = (step_of(decompose_frames(f, frames[4], 0, name, params)) if has_decomposition(name) else None)
    values = rule_values(name, params, f.state[0], f.grad[0], f.lr[0], f.xy[0], step=step)
    for text in (update_rule_latex(name), update_rule_latex(name, values)):
        assert "\\begin" not in text and "\\text{" not in text and "$" not in text
        depth = 0
        for ch in text:
            depth += {"{": 1, "}": -1}.get(ch, 0)
            assert depth >= 0
        assert depth == 0
    substituted = update_rule_latex(name, values)
    assert f"{f.lr[0]:.4g}" in substituted
    if step is not None:
        assert substituted.endswith(f"{step[0][1]:.4g})")  # the result of this very update


def test_weight_decay_lines_follow_the_setting():
    assert not any("lambda" in line for line in update_rule_lines("adam"))  # Adam's wd is pinned to 0
    assert "x_t \\leftarrow (1 - \\eta\\cdot\\lambda)" in update_rule_latex("adamw")
    assert "g_t \\leftarrow g_t + \\lambda" in update_rule_latex("adam_l2")
    assert "lambda" not in update_rule_latex("adam_l2", {"wd": 0.0})
    assert re.search(r"g_t \\leftarrow \(1\.5,\\ -2\) \+ 0\.01\\,\(3,\\ 4\)",
                     update_rule_latex("adam_l2", {"wd": 0.01, "g": np.array([1.5, -2.0]), "x": np.array([3.0, 4.0])}))


def test_rules_parse_with_matplotlib_mathtext():
    mathtext = pytest.importorskip("matplotlib.mathtext")
    parser = mathtext.MathTextParser("path")
    for name, params in CASES:
        frames = _frames(name, params, count=1, steps=3)
        f = frames[2]
        values = rule_values(name, params, f.state[0], f.grad[0], f.lr[0], f.xy[0])
        for text in (update_rule_latex(name), update_rule_latex(name, values)):
            parser.parse(f"${text}$")
        for part in (decompose_frames(f, frames[3], 0, name, params) if has_decomposition(name) else []):
            parser.parse(f"${part.latex}$")


def test_glyphs_of_a_bare_call_match_the_frame_helper():
    frames = _frames("momentum", {"nesterov": True})
    f = frames[4]
    a = glyphs("momentum", {"nesterov": True}, f.state[0], f.grad[0], f.lr[0])
    b = glyphs_for_frame(f, 0, "momentum", {"nesterov": True})
    np.testing.assert_array_equal(a.momentum, b.momentum)
    np.testing.assert_array_equal(a.effective_lr, np.full(f.grad[0].shape, 0.01))


def test_parts_equal_the_step_when_one_cycle_cycles_beta1():
    """Frames carry the beta1 torch used, so the split of an update under OneCycleLR's cycled momentum
    adds up to the step torch took (with the configured beta1 it missed by about 10%)."""
    from engine.config import OptimizerConfig, ScheduleConfig
    from engine.glyphs import decompose_frames, live_params, step_of
    from engine.landscape import LandscapeConfig, run_landscape

    sched = ScheduleConfig("onecycle", {"max_lr": 0.05, "cycle_momentum": True})
    oc = OptimizerConfig("adamw", {"lr": 0.01}, sched)
    frames = list(run_landscape(LandscapeConfig(function="rosenbrock", steps=40, optimizers=(oc,))))
    betas = {f.hyper[0]["beta1"] for f in frames}
    assert len(betas) > 5  # beta1 really moves
    for prev, last in zip(frames[5:30], frames[6:31]):
        parts = decompose_frames(prev, last, 0, oc.name, live_params(prev, 0, oc.params))
        np.testing.assert_allclose(step_of(parts), last.xy[0] - prev.xy[0], rtol=1e-9, atol=1e-12)

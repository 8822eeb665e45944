"""What a torch optimiser carries between steps, read from its own ``optimizer.state``.

Per trajectory, as (N, 2) arrays, for the map and the state panel:

* :func:`glyphs`: arrows and ellipses for the head of each trajectory (negative gradient, momentum
  buffer, bias-corrected first moment, per-axis effective learning rate).
* :func:`decompose`: one update ``x_{k+1} - x_k`` split into named parts that add up to it, for
  step-by-step mode.
* :func:`effective_decay`: the per-axis weight decay rate, for "Adam + L2 beside AdamW".
* :func:`state_summary`, :func:`rule_values`, :func:`update_rule_latex`: rows and a typeset rule.

Timing. ``LandscapeFrame`` k holds the state *after* k updates (torch's ``state["step"] == k``) and
the gradient g_k that update k is about to use. So ``glyphs`` of frame k show the state as it stands,
which is what produced the step into x_k. Splitting update k needs both sides of it: the state
before (frame k) for the buffers it carries in, and the state after (frame k+1) for what torch
computed from g_k. Nothing here re-runs an update rule to predict state: torch's formulas appear
only to split a step torch already took, and the tests tie every split to the real step.

Hyperparameters are read from a real torch optimiser's ``param_groups`` (built once per setting
and cached), so torch's own defaults that the forms do not expose (SGD's dampening, NAdam's
momentum_decay, Rprop's step-size limits, AdamW's decoupling flag) are the ones torch used.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .optimizers import OPTIMIZERS, supports_weight_decay

State = Mapping[str, Any]  # one optimiser's entry of LandscapeFrame.state: torch state key -> array

# Dispatch is on the torch class, so a new registry entry built on one of these classes works
# unchanged. Order matters only where one class subclasses another (AdamW is an Adam in torch >= 2.6).
_FAMILIES: tuple[tuple[str, type], ...] = (
    ("adam", torch.optim.AdamW), ("adam", torch.optim.Adam), ("nadam", torch.optim.NAdam),
    ("radam", torch.optim.RAdam), ("adamax", torch.optim.Adamax), ("sgd", torch.optim.SGD),
    ("adagrad", torch.optim.Adagrad), ("rmsprop", torch.optim.RMSprop), ("adadelta", torch.optim.Adadelta),
    ("rprop", torch.optim.Rprop), ("lbfgs", torch.optim.LBFGS),
)
_DECOMPOSABLE = frozenset({"adam", "nadam", "radam", "adamax", "sgd", "adagrad", "rmsprop", "adadelta", "rprop"})
_ADAM_LIKE = frozenset({"adam", "nadam", "radam", "adamax"})

# RAdam switches its adaptive term on only past this variance-tractability threshold (torch's 5).
RADAM_RHO_THRESHOLD = 5.0


def family(name: str) -> str:
    """The update-rule family of a registry optimiser: "adam", "sgd", "rmsprop", ... or "other"."""
    cls = OPTIMIZERS.get(name).torch_class
    for fam, base in _FAMILIES:
        if issubclass(cls, base):
            return fam
    return "other"


def has_decomposition(name: str) -> bool:
    """False for L-BFGS: its step comes from a line search over a curvature history, not from parts."""
    return family(name) in _DECOMPOSABLE


@functools.lru_cache(maxsize=256)
def _torch_group(name: str, items: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    spec = OPTIMIZERS.get(name)
    opt = spec.build([torch.zeros(1, requires_grad=True)], dict(items))
    return {k: v for k, v in opt.param_groups[0].items() if k != "params"}


def hyperparameters(name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """torch's own param_group for these settings (``betas`` as a pair, torch defaults filled in)."""
    spec = OPTIMIZERS.get(name)
    values = spec.resolve(params)
    group = dict(_torch_group(name, tuple(sorted(values.items()))))
    if group.get("maximize"):
        raise ValueError(f"optimizer {name}: maximize=True is not supported here")
    if "decoupled_weight_decay" not in group:  # torch < 2.6: AdamW is its own class with no flag
        group["decoupled_weight_decay"] = issubclass(spec.torch_class, torch.optim.AdamW)
    return group


def _vec(state: State, key: str) -> np.ndarray | None:
    value = state.get(key)
    return None if value is None else np.asarray(value, dtype=np.float64)


def _count(state: State) -> int:
    """torch's update counter (a float tensor holding an integer); 0 before the first update."""
    value = state.get("step")
    return 0 if value is None else int(round(float(np.asarray(value))))


def _need(state: State, key: str, name: str) -> np.ndarray:
    value = _vec(state, key)
    if value is None:
        raise ValueError(f"optimizer {name}: state after the update has no {key!r}; "
                         "pass the state of the frame after the update")
    return value


def _like(state: State) -> np.ndarray | None:
    for value in state.values():
        arr = np.asarray(value)
        if arr.ndim >= 2 and arr.shape[-1] == 2:
            return arr
    return None


def _decoupled(h: Mapping[str, Any]) -> bool:
    return bool(h.get("decoupled_weight_decay")) and bool(h.get("weight_decay"))


def _coupled(h: Mapping[str, Any]) -> bool:
    return not h.get("decoupled_weight_decay") and bool(h.get("weight_decay"))


# --- glyphs --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Glyphs:
    """Per-trajectory arrays (N, 2) for the head of each trajectory; None where the optimiser has no such thing.

    * ``neg_grad``: -g, the gradient the optimiser receives (SGD's noise included).
    * ``momentum``: ``-lr * momentum_buffer``, the displacement the buffer alone causes at this lr.
      For heavy-ball SGD and for RMSprop with momentum that is exactly the step just taken (at a
      constant lr); Nesterov's step adds a gradient term on top.
    * ``first_moment_hat``: Adam family, ``exp_avg / (1 - beta1^t)``. NAdam's own update uses a
      momentum-schedule product instead of ``1 - beta1^t``; this shows the Adam-style estimate.
    * ``effective_lr``: the per-axis factor that multiplies the update direction (``first_moment_hat``
      for the Adam family, the gradient otherwise), in torch's arithmetic:
      Adam/AdamW/Adam+L2 ``lr / (sqrt(exp_avg_sq) / sqrt(1 - beta2^t) + eps)``, so that
      ``step = -effective_lr * first_moment_hat`` exactly when there is no weight decay;
      NAdam ``lr / (sqrt(exp_avg_sq / (1 - beta2^t)) + eps)``; RAdam ``lr * r_t * sqrt(1 - beta2^t) /
      (sqrt(exp_avg_sq) + eps)`` once rectified and ``lr`` before; Adamax ``lr / exp_inf``;
      RMSprop ``lr / (sqrt(square_avg) + eps)`` (minus ``grad_avg^2`` under the root when centered);
      Adagrad ``lr / (sqrt(sum) + eps)``; Adadelta ``lr * sqrt(acc_delta + eps) / sqrt(square_avg + eps)``;
      SGD ``lr`` on both axes. None before the first update (nothing accumulated yet), and for Rprop
      (its step length ignores |g|; see its ``step_size`` state) and L-BFGS.
    * ``step``: torch's update counter t (None where torch keeps none: SGD).
    """

    neg_grad: np.ndarray
    momentum: np.ndarray | None = None
    first_moment_hat: np.ndarray | None = None
    effective_lr: np.ndarray | None = None
    step: int | None = None
    bias_correction1: float | None = None  # 1 - beta1^t
    bias_correction2: float | None = None  # 1 - beta2^t


def _radam_rect(beta2: float, t: int) -> tuple[float, float | None]:
    """(rho_t, r_t) exactly as torch computes them; r_t is None while RAdam is not rectified."""
    bc2 = 1 - beta2**t
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * (beta2**t) / bc2
    if rho_t <= RADAM_RHO_THRESHOLD:
        return rho_t, None
    return rho_t, ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5


def effective_lr(name: str, params: Mapping[str, Any] | None, state: State,
                 lr: float | None = None) -> np.ndarray | None:
    """Per-axis effective learning rate from the state as it stands; see :class:`Glyphs`."""
    h = hyperparameters(name, params)
    lr = float(h["lr"] if lr is None else lr)
    fam, t = family(name), _count(state)
    if fam == "sgd":
        like = _like(state)
        return None if like is None else np.full(like.shape, lr)
    if t == 0:
        return None
    eps = h.get("eps", 0.0)
    if fam == "adagrad":
        clr = lr / (1 + (t - 1) * h.get("lr_decay", 0.0))
        return clr / (np.sqrt(_need(state, "sum", name)) + eps)
    if fam == "rmsprop":
        sq = _need(state, "square_avg", name)
        if h.get("centered"):
            ga = _need(state, "grad_avg", name)
            sq = sq - ga * ga
        return lr / (np.sqrt(sq) + eps)
    if fam == "adadelta":
        return lr * np.sqrt(_need(state, "acc_delta", name) + eps) / np.sqrt(_need(state, "square_avg", name) + eps)
    if fam == "adamax":
        return lr / _need(state, "exp_inf", name)
    if fam in ("adam", "nadam", "radam"):
        beta2 = h["betas"][1]
        bc2 = 1 - beta2**t
        key = "max_exp_avg_sq" if h.get("amsgrad") else "exp_avg_sq"
        v = _need(state, key, name)
        if fam == "adam":
            return lr / (np.sqrt(v) / bc2**0.5 + eps)
        if fam == "nadam":
            return lr / (np.sqrt(v / bc2) + eps)
        _, rect = _radam_rect(beta2, t)
        if rect is None:
            return np.full(v.shape, lr)
        return lr * rect * (bc2**0.5 / (np.sqrt(v) + eps))
    return None


def glyphs(name: str, params: Mapping[str, Any] | None, state: State, grad: np.ndarray,
           lr: float | None = None) -> Glyphs:
    """Glyph values for one optimiser from its state dict (``frame.state[i]``), gradient and lr."""
    h = hyperparameters(name, params)
    lr = float(h["lr"] if lr is None else lr)
    fam = family(name)
    g = np.asarray(grad, dtype=np.float64)
    t = _count(state) if "step" in state else None
    buf = _vec(state, "momentum_buffer")
    m_hat = bc1 = bc2 = None
    if fam in _ADAM_LIKE and t:
        beta1, beta2 = h["betas"]
        bc1 = 1 - beta1**t
        bc2 = None if fam == "adamax" else 1 - beta2**t
        m_hat = _need(state, "exp_avg", name) / bc1
    eff = effective_lr(name, params, state, lr)
    if eff is None and fam == "sgd":
        eff = np.full(g.shape, lr)
    return Glyphs(neg_grad=-g, momentum=None if buf is None else -lr * buf, first_moment_hat=m_hat,
                  effective_lr=eff, step=t, bias_correction1=bc1, bias_correction2=bc2)


def glyphs_for_frame(frame: Any, i: int, name: str, params: Mapping[str, Any] | None) -> Glyphs:
    """Glyphs of optimiser ``i`` in a LandscapeFrame (run with ``with_state=True``)."""
    return glyphs(name, params, frame.state[i] if frame.state else {}, frame.grad[i], float(frame.lr[i]))


# --- effective weight decay -----------------------------------------------------------------------

def effective_decay(name: str, params: Mapping[str, Any] | None, state: State,
                    lr: float | None = None) -> np.ndarray | None:
    """Per-axis weight-decay rate c, in the sense that decay moves x by about ``-c * x`` per step.

    Decoupled decay (AdamW) is ``lr * wd`` on every axis, whatever the gradients did. Coupled decay
    (Adam + L2, and the L2 option of SGD, Adagrad, RMSprop, ...) adds ``wd * x`` to the gradient, so
    it is scaled like the gradient: ``wd * effective_lr``; for Adam + L2 that is
    ``lr * wd / (sqrt(v_hat) + eps)`` in torch's arithmetic. (The wd*x term passes through the
    first moment, whose bias-corrected gain is 1, so this is its rate once x changes slowly; momentum
    amplification of SGD's velocity is not included.) None while the state has no per-trajectory
    arrays: before the first update, and always for plain SGD, which keeps no state.
    """
    h = hyperparameters(name, params)
    lr = float(h["lr"] if lr is None else lr)
    like = _like(state)
    if like is None:
        return None
    wd = float(h.get("weight_decay", 0.0))
    if wd == 0.0:
        return np.zeros(like.shape)
    if h.get("decoupled_weight_decay"):
        return np.full(like.shape, lr * wd)
    eff = effective_lr(name, params, state, lr)
    return None if eff is None else wd * eff


# --- step decomposition ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StepPart:
    """One additive part of an update: ``vector`` is (N, 2); the parts of one update sum to x_{k+1} - x_k.

    ``key`` is stable for the GUI (colours, toggles): "decoupled_decay", "gradient", "weight_decay"
    (coupled L2 term), "moment" (Adam family's carried first moment), "velocity" (carried momentum
    buffer), "lookahead" (Nesterov's mu * b_t), "sign_step" (Rprop). Parts come in the order torch
    applies them; every scaling the optimiser applies is already folded in.
    """

    key: str
    label: str
    latex: str
    vector: np.ndarray


def decompose(name: str, params: Mapping[str, Any] | None, xy: np.ndarray, grad: np.ndarray, lr: float,
              before: State, after: State) -> list[StepPart]:
    """Split update k of one optimiser into parts that sum to the step torch took.

    ``xy``, ``grad``, ``lr`` and ``before`` come from frame k, ``after`` from frame k+1: the buffers
    torch carried in and what it computed from g_k. Rows of trajectories that had diverged mean
    nothing (NaN where the gradient enters, since the engine blanks it): mask them with ``diverged_at``.
    """
    fam = family(name)
    if fam not in _DECOMPOSABLE:
        raise ValueError(f"optimizer {name}: its step is not a sum of elementwise parts (line search)")
    h = hyperparameters(name, params)
    x = np.asarray(xy, dtype=np.float64)
    g = np.asarray(grad, dtype=np.float64)
    lr = float(lr)
    wd = float(h.get("weight_decay", 0.0))
    zeros = np.zeros_like(g)
    parts: list[StepPart] = []

    def add(key: str, label: str, latex: str, vector: np.ndarray) -> None:
        parts.append(StepPart(key, label, latex, vector))

    def grad_and_l2(coef: np.ndarray | float, latex_coef: str) -> None:
        add("gradient", "gradient", rf"-{latex_coef}\,g", -coef * g)
        if _coupled(h):
            add("weight_decay", "L2 term wd*x", rf"-{latex_coef}\,\lambda x", -coef * wd * x)

    if fam == "sgd":
        mu = float(h.get("momentum", 0.0))
        if mu == 0.0:
            grad_and_l2(lr, r"\eta")
        elif h.get("nesterov"):
            grad_and_l2(lr, r"\eta")
            buf = _need(after, "momentum_buffer", name)
            add("lookahead", "Nesterov look-ahead mu*b", r"-\eta\mu b_t", -lr * mu * buf)
        else:
            prev = _vec(before, "momentum_buffer")
            # torch starts the buffer at the first gradient, undamped; later gradients enter damped.
            damp = 1.0 if prev is None else 1.0 - float(h.get("dampening", 0.0))
            grad_and_l2(lr * damp, r"\eta(1-d)" if damp != 1.0 else r"\eta")
            add("velocity", "velocity carried", r"-\eta\mu b_{t-1}", -lr * mu * (zeros if prev is None else prev))
    elif fam == "adagrad":
        t = _count(after)
        clr = lr / (1 + (t - 1) * h.get("lr_decay", 0.0))
        std = np.sqrt(_need(after, "sum", name)) + h["eps"]
        grad_and_l2(clr / std, r"\frac{\eta}{\sqrt{G_t}+\epsilon}")
    elif fam == "rmsprop":
        sq = _need(after, "square_avg", name)
        if h.get("centered"):
            ga = _need(after, "grad_avg", name)
            sq = sq - ga * ga
        avg = np.sqrt(sq) + h["eps"]
        grad_and_l2(lr / avg, r"\frac{\eta}{\sqrt{v_t}+\epsilon}")
        mu = float(h.get("momentum", 0.0))
        if mu > 0:
            prev = _vec(before, "momentum_buffer")
            add("velocity", "velocity carried", r"-\eta\mu b_{t-1}", -lr * mu * (zeros if prev is None else prev))
    elif fam == "adadelta":
        prev = _vec(before, "acc_delta")
        eps = h["eps"]
        scale = np.sqrt((zeros if prev is None else prev) + eps) / np.sqrt(_need(after, "square_avg", name) + eps)
        grad_and_l2(lr * scale, r"\eta\frac{\sqrt{u_{t-1}+\epsilon}}{\sqrt{v_t+\epsilon}}")
    elif fam == "rprop":
        add("sign_step", "sign step", r"-s_t\,\mathrm{sign}(g)",
            -np.sign(_need(after, "prev", name)) * _need(after, "step_size", name))
    else:  # Adam family: step = -c_g * (g [+ wd x]) - c_m * m_{t-1} [- lr wd x]
        beta1, beta2 = h["betas"]
        t = _count(after)
        bc1, bc2 = 1 - beta1**t, 1 - beta2**t
        eps = h["eps"]
        if fam == "adam":
            v = _need(after, "max_exp_avg_sq" if h.get("amsgrad") else "exp_avg_sq", name)
            c = (lr / bc1) / (np.sqrt(v) / bc2**0.5 + eps)
            c_g, c_m = c * (1 - beta1), c * beta1
            tex_g = r"\frac{\eta(1-\beta_1)}{(1-\beta_1^t)(\sqrt{\hat v_t}+\epsilon)}"
            tex_m = r"\frac{\eta\beta_1}{(1-\beta_1^t)(\sqrt{\hat v_t}+\epsilon)}"
        elif fam == "nadam":
            denom = np.sqrt(_need(after, "exp_avg_sq", name) / bc2) + eps
            psi = h["momentum_decay"]
            mu = beta1 * (1.0 - 0.5 * (0.96 ** (t * psi)))
            mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((t + 1) * psi)))
            prod = float(np.asarray(_need(after, "mu_product", name)))  # float32, as torch holds and uses it
            c_now = lr * (1.0 - mu) / (1.0 - prod)
            c_next = lr * mu_next / (1.0 - prod * mu_next)
            # The fresh gradient enters twice: directly (the Nesterov look-ahead) and through m_t.
            c_g = (c_now + c_next * (1 - beta1)) / denom
            c_m = c_next * beta1 / denom
            tex_g = (r"\frac{\eta}{\sqrt{\hat v_t}+\epsilon}\left(\frac{1-\mu_t}{1-\Pi_t}"
                     r"+\frac{\mu_{t+1}(1-\beta_1)}{1-\Pi_{t+1}}\right)")
            tex_m = r"\frac{\eta\mu_{t+1}\beta_1}{(1-\Pi_{t+1})(\sqrt{\hat v_t}+\epsilon)}"
        elif fam == "radam":
            v = _need(after, "exp_avg_sq", name)
            _, rect = _radam_rect(beta2, t)
            scale = np.full(v.shape, lr) if rect is None else lr * rect * (bc2**0.5 / (np.sqrt(v) + eps))
            c_g, c_m = scale * (1 - beta1) / bc1, scale * beta1 / bc1
            adaptive = "" if rect is None else r"\frac{r_t\sqrt{1-\beta_2^t}}{\sqrt{v_t}+\epsilon}"
            tex_g = rf"\frac{{\eta(1-\beta_1)}}{{1-\beta_1^t}}{adaptive}"
            tex_m = rf"\frac{{\eta\beta_1}}{{1-\beta_1^t}}{adaptive}"
        else:  # adamax
            u = _need(after, "exp_inf", name)
            c_g, c_m = (lr / bc1) * (1 - beta1) / u, (lr / bc1) * beta1 / u
            tex_g = r"\frac{\eta(1-\beta_1)}{(1-\beta_1^t)\,u_t}"
            tex_m = r"\frac{\eta\beta_1}{(1-\beta_1^t)\,u_t}"
        if _decoupled(h):
            add("decoupled_decay", "decoupled weight decay", r"-\eta\lambda x", -lr * wd * x)
        grad_and_l2(c_g, tex_g)
        prev = _vec(before, "exp_avg")
        add("moment", "first moment carried", rf"-{tex_m}\,m_{{t-1}}", -c_m * (zeros if prev is None else prev))
    return parts


def decompose_frames(frame: Any, next_frame: Any, i: int, name: str,
                     params: Mapping[str, Any] | None) -> list[StepPart]:
    """:func:`decompose` for optimiser ``i`` between two consecutive LandscapeFrames (with state)."""
    if next_frame.step != frame.step + 1:
        raise ValueError(f"frames {frame.step} and {next_frame.step} are not consecutive")
    return decompose(name, params, frame.xy[i], frame.grad[i], float(frame.lr[i]),
                     frame.state[i], next_frame.state[i])


def step_of(parts: Sequence[StepPart]) -> np.ndarray:
    """The whole update: the sum of its parts."""
    return np.sum([p.vector for p in parts], axis=0)


# --- state panel ----------------------------------------------------------------------------------

_BUFFER_LABELS = {
    "momentum_buffer": "momentum buffer b", "exp_avg": "first moment m", "exp_avg_sq": "second moment v",
    "max_exp_avg_sq": "max second moment", "sum": "sum of squares G", "square_avg": "mean square v",
    "grad_avg": "mean gradient", "acc_delta": "mean square update u", "exp_inf": "infinity norm u",
    "prev": "previous gradient (masked)", "step_size": "step size s", "mu_product": "momentum product",
}


def _num(value: float) -> str:
    return f"{float(value):.4g}"


def _pair(value: Any) -> str:
    a = np.asarray(value, dtype=np.float64).ravel()
    return "(" + ", ".join(_num(v) for v in a) + ")" if a.size <= 4 else f"array of shape {np.shape(value)}"


def _row(value: Any, index: int) -> np.ndarray | None:
    """Trajectory ``index`` of an (N, 2) array; None for anything else (L-BFGS keeps flat history)."""
    arr = np.asarray(value)
    if arr.ndim == 2 and arr.shape[-1] == 2 and 0 <= index < arr.shape[0]:
        return arr[index]
    return None


def state_summary(name: str, params: Mapping[str, Any] | None, state: State, grad: np.ndarray,
                  lr: float | None = None, index: int = 0) -> list[tuple[str, str]]:
    """(label, value text) rows for one optimiser's state panel, for trajectory ``index``.

    Hyperparameters, the lr in use, torch's step count and bias corrections, every buffer in
    ``optimizer.state`` as numbers, and the derived glyph values (first-moment estimate, effective lr).
    """
    spec = OPTIMIZERS.get(name)
    values = spec.resolve(params)
    h = hyperparameters(name, params)
    lr = float(h["lr"] if lr is None else lr)
    fam = family(name)
    rows: list[tuple[str, str]] = [("optimiser", spec.label)]
    for p in spec.params:
        v = values[p.name]
        rows.append((p.label, _num(v) if isinstance(v, float) else str(v)))
    rows.append(("learning rate now", _num(lr)))
    g = _row(grad, index)
    if g is not None:
        rows.append(("gradient g", _pair(g)))
    if "step" in state:
        rows.append(("step t", str(_count(state))))
    gl = glyphs(name, params, state, grad, lr)
    if gl.bias_correction1 is not None:
        rows.append(("1 - beta1^t", _num(gl.bias_correction1)))
    if gl.bias_correction2 is not None:
        rows.append(("1 - beta2^t", _num(gl.bias_correction2)))
    t = _count(state)
    if fam == "radam" and t:
        rho_t, rect = _radam_rect(h["betas"][1], t)
        rows.append(("rho_t", _num(rho_t)))
        rows.append(("rectified", f"yes, r_t = {_num(rect)}" if rect is not None
                     else f"no (rho_t <= {RADAM_RHO_THRESHOLD:g}): plain momentum step"))
    for key in sorted(state, key=lambda k: (k not in _BUFFER_LABELS, k)):
        if key == "step":
            continue
        row = _row(state[key], index)
        arr = np.asarray(state[key])
        text = _pair(row) if row is not None else (_num(arr) if arr.ndim == 0 and np.issubdtype(arr.dtype, np.number)
                                                  else _pair(arr))
        rows.append((_BUFFER_LABELS.get(key, key), text))
    for label, value in (("momentum step -lr*b", gl.momentum), ("first moment m_hat", gl.first_moment_hat),
                         ("effective lr per axis", gl.effective_lr)):
        row = None if value is None else _row(value, index)
        if row is not None:
            rows.append((label, _pair(row)))
    if fam == "adam" and t and "exp_avg_sq" in state:
        row = _row(np.asarray(state["exp_avg_sq"]) / gl.bias_correction2, index)
        if row is not None:
            rows.append(("second moment v_hat", _pair(row)))
    decay = effective_decay(name, params, state, lr)
    if decay is not None and h.get("weight_decay"):
        rows.append(("effective decay per axis", _pair(_row(decay, index))))
    return rows


# --- the update rule, typeset ---------------------------------------------------------------------

def rule_values(name: str, params: Mapping[str, Any] | None, state: State, grad: np.ndarray,
                lr: float | None = None, xy: np.ndarray | None = None, index: int = 0,
                step: np.ndarray | None = None) -> dict[str, Any]:
    """Numbers to substitute into :func:`update_rule_latex` for the coming update of trajectory ``index``.

    Inputs only: hyperparameters, lr, t (the coming update's count), x, g and the buffers as they
    stand (frame k's state). ``step`` (the whole update, e.g. :func:`step_of` of its parts) adds the
    result; nothing here computes one.
    """
    h = hyperparameters(name, params)
    out: dict[str, Any] = {"lr": float(h["lr"] if lr is None else lr), "t": _count(state) + 1}
    for key, hk in (("eps", "eps"), ("wd", "weight_decay"), ("mu", "momentum"), ("alpha", "alpha"),
                    ("rho", "rho"), ("dampening", "dampening")):
        if hk in h:
            out[key] = float(h[hk])
    if "betas" in h:
        out["beta1"], out["beta2"] = (float(b) for b in h["betas"])
    if "etas" in h:
        out["eta_minus"], out["eta_plus"] = (float(e) for e in h["etas"])
    for key, value in (("g", grad), ("x", xy), ("delta", step)):
        row = None if value is None else _row(value, index)
        if row is not None:
            out[key] = row
    for sym, key in (("m", "exp_avg"), ("v", "exp_avg_sq"), ("b", "momentum_buffer"), ("G", "sum"),
                     ("sq", "square_avg"), ("gbar", "grad_avg"), ("u", "acc_delta"), ("uinf", "exp_inf"),
                     ("s", "step_size")):
        if key in state:
            row = _row(state[key], index)
            if row is not None:
                out[sym] = row
    return out


def _tex_num(value: float) -> str:
    text = f"{float(value):.4g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    exp = int(exponent)
    if mantissa in ("1", "-1"):
        return f"{'-' if mantissa == '-1' else ''}10^{{{exp}}}"
    return rf"{mantissa}\times 10^{{{exp}}}"


def _tex(value: Any) -> str:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return str(int(arr)) if float(arr).is_integer() and abs(arr) < 1e6 else _tex_num(arr)
    return r"(" + r",\ ".join(_tex_num(v) for v in arr.ravel()) + ")"


def update_rule_lines(name: str, values: Mapping[str, Any] | None = None) -> list[str]:
    """The update rule as a list of mathtext-compatible equations, numbers substituted where given.

    A symbol whose value is missing from ``values`` stays a symbol, so ``update_rule_lines(name)``
    is the plain rule. Vectors are per-axis pairs; products and powers of them are elementwise.
    """
    values = dict(values or {})
    fam = family(name)
    h = hyperparameters(name, None)

    def v(key: str, symbol: str) -> str:
        value = values.get(key)
        return symbol if value is None else _tex(value)

    eta, lam, eps, t = v("lr", r"\eta"), v("wd", r"\lambda"), v("eps", r"\epsilon"), v("t", "t")
    x = v("x", "x_t")
    # A missing wd keeps the decay line symbolic; wd == 0 (or none to set, as in plain Adam) drops it.
    decays = supports_weight_decay(name) and values.get("wd") != 0.0
    decoupled = decays and bool(h.get("decoupled_weight_decay"))
    lines: list[str] = []
    if decoupled:
        lines.append(rf"x_t \leftarrow (1 - {eta}\cdot{lam})\,{x}")
        x = "x_t"
    if decays and not decoupled:
        lines.append(rf"g_t \leftarrow {v('g', 'g_t')} + {lam}\,{x}")
        g = "g_t"
    else:
        g = v("g", "g_t")
    b1, b2 = v("beta1", r"\beta_1"), v("beta2", r"\beta_2")
    if fam == "sgd":
        mu = values.get("mu", h.get("momentum", 0.0))
        if not mu:
            lines.append(rf"x_{{t+1}} = {x} - {eta}\,{g}")
        else:
            muv = v("mu", r"\mu")
            damp = values.get("dampening") or 0.0
            gin = rf"(1 - {_tex(damp)})\,{g}" if damp else g
            lines.append(rf"b_t = {muv}\,{v('b', 'b_{t-1}')} + {gin}")
            if h.get("nesterov"):
                lines.append(rf"x_{{t+1}} = {x} - {eta}\,({g} + {muv}\,b_t)")
            else:
                lines.append(rf"x_{{t+1}} = {x} - {eta}\,b_t")
    elif fam == "adagrad":
        lines.append(rf"G_t = {v('G', 'G_{t-1}')} + {g}^2")
        lines.append(rf"x_{{t+1}} = {x} - \frac{{{eta}\,{g}}}{{\sqrt{{G_t}} + {eps}}}")
    elif fam == "rmsprop":
        a = v("alpha", r"\alpha")
        lines.append(rf"v_t = {a}\,{v('sq', 'v_{t-1}')} + (1 - {a})\,{g}^2")
        root = r"\sqrt{v_t}"
        if h.get("centered"):
            gbar = v("gbar", r"\bar g_{t-1}")
            lines.append(rf"\bar g_t = {a}\,{gbar} + (1 - {a})\,{g}")
            root = r"\sqrt{v_t - \bar g_t^2}"
        if values.get("mu", h.get("momentum", 0.0)):
            muv, b = v("mu", r"\mu"), v("b", "b_{t-1}")
            lines.append(rf"b_t = {muv}\,{b} + \frac{{{g}}}{{{root} + {eps}}}")
            lines.append(rf"x_{{t+1}} = {x} - {eta}\,b_t")
        else:
            lines.append(rf"x_{{t+1}} = {x} - \frac{{{eta}\,{g}}}{{{root} + {eps}}}")
    elif fam in _ADAM_LIKE:
        lines.append(rf"m_t = {b1}\,{v('m', 'm_{t-1}')} + (1 - {b1})\,{g}")
        if fam == "adamax":
            lines.append(rf"u_t = \max({b2}\,{v('uinf', 'u_{t-1}')},\ |{g}| + {eps})")
            lines.append(rf"x_{{t+1}} = {x} - \frac{{{eta}}}{{1 - {b1}^{{{t}}}}}\,\frac{{m_t}}{{u_t}}")
        else:
            lines.append(rf"v_t = {b2}\,{v('v', 'v_{t-1}')} + (1 - {b2})\,{g}^2")
            vhat = rf"\hat v_t = \frac{{v_t}}{{1 - {b2}^{{{t}}}}}"
            if fam == "adam":
                lines.append(vhat)
                lines.append(rf"x_{{t+1}} = {x} - \frac{{{eta}}}{{1 - {b1}^{{{t}}}}}\,"
                             rf"\frac{{m_t}}{{\sqrt{{\hat v_t}} + {eps}}}")
            elif fam == "nadam":
                lines.append(vhat)
                lines.append(rf"x_{{t+1}} = {x} - {eta}\,\frac{{(1-\mu_t)\,{g}/(1-\Pi_t) + \mu_{{t+1}}\,m_t/"
                             rf"(1-\Pi_{{t+1}})}}{{\sqrt{{\hat v_t}} + {eps}}}")
            else:
                lines.append(rf"x_{{t+1}} = {x} - {eta}\,r_t\,"
                             rf"\frac{{\sqrt{{1 - {b2}^{{{t}}}}}}}{{\sqrt{{v_t}} + {eps}}}"
                             rf"\,\frac{{m_t}}{{1 - {b1}^{{{t}}}}}\ \mathrm{{if}}\ \rho_t > 5,\ "
                             rf"\mathrm{{else}}\ {x} - {eta}\,\frac{{m_t}}{{1 - {b1}^{{{t}}}}}")
    elif fam == "adadelta":
        r = v("rho", r"\rho")
        u = v("u", "u_{t-1}")
        lines.append(rf"v_t = {r}\,{v('sq', 'v_{t-1}')} + (1 - {r})\,{g}^2")
        lines.append(rf"\Delta_t = \frac{{\sqrt{{{u} + {eps}}}}}{{\sqrt{{v_t + {eps}}}}}\,{g}")
        lines.append(rf"u_t = {r}\,{u} + (1 - {r})\,\Delta_t^2")
        lines.append(rf"x_{{t+1}} = {x} - {eta}\,\Delta_t")
    elif fam == "rprop":
        lines.append(rf"s_t = \mathrm{{clip}}({v('s', 's_{t-1}')}\,\eta_\pm)")
        if values.get("eta_minus") is not None and values.get("eta_plus") is not None:
            lines.append(rf"\eta_- = {_tex(values['eta_minus'])},\ \eta_+ = {_tex(values['eta_plus'])}")
        lines.append(rf"x_{{t+1}} = {x} - s_t\,\mathrm{{sign}}({g})")
    else:
        lines.append(rf"x_{{t+1}} = {x} - {eta}\,H_t\,{g}")
    if values.get("delta") is not None:
        lines.append(rf"\Delta x = {_tex(values['delta'])}")
    return lines


def update_rule_latex(name: str, values: Mapping[str, Any] | None = None) -> str:
    """:func:`update_rule_lines` on one line (mathtext has no line breaks), without ``$`` delimiters."""
    return r",\quad ".join(update_rule_lines(name, values))


def live_params(frame: Any, i: int, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The configured hyperparameters with the values torch actually used at this frame: a schedule
    that cycles momentum or beta1 (CyclicLR, OneCycleLR) changes them step by step."""
    out = dict(params or {})
    hyper = getattr(frame, "hyper", ())
    if hyper and i < len(hyper):
        out.update(hyper[i])
    return out

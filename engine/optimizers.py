"""The optimiser registry: every entry builds a real ``torch.optim`` optimiser.

Each spec lists its hyperparameters (defaults, ranges, one-line meaning) so the GUI builds its
forms from here and validation happens before torch sees a value.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import torch

from .registry import ConfigError, Param, Registry, resolve_params


def _lr(default: float) -> Param:
    return Param("lr", "learning rate", default, "Step size multiplying each update.", minimum=0.0,
                 min_exclusive=True, maximum=100.0, log=True, typical="1e-4 to 1")


_WD = Param("weight_decay", "weight decay", 0.0,
            "L2 penalty added to the gradient (coupled): g <- g + wd * w.", minimum=0.0, maximum=10.0,
            typical="0 to 1e-2")
_EPS = Param("eps", "epsilon", 1e-8, "Added to the denominator so the step stays finite where v is tiny.",
             minimum=0.0, min_exclusive=True, maximum=1.0, log=True, typical="1e-10 to 1e-6")
_BETA1 = Param("beta1", "beta1", 0.9, "Decay of the first-moment (mean gradient) average.", minimum=0.0,
               maximum=0.9999, typical="0.8 to 0.95")
_BETA2 = Param("beta2", "beta2", 0.999, "Decay of the second-moment (squared gradient) average.",
               minimum=0.0, maximum=0.99999, typical="0.99 to 0.9999")
_NOISE = Param("noise", "gradient noise", 0.5,
               "2D only: std of the seeded Gaussian noise added to each gradient, standing in for mini-batch "
               "noise. Ignored on MNIST, where the mini-batch itself is the noise.", minimum=0.0, maximum=1e3,
               typical="0.1 to 5")
_MOMENTUM = Param("momentum", "momentum", 0.9, "Fraction of the previous update carried into this one.",
                  minimum=0.0, maximum=0.9999, typical="0.5 to 0.99")
_NESTEROV = Param("nesterov", "Nesterov", False, "Evaluate the gradient at the look-ahead point.", kind="bool")

# Settings the engine uses itself and never passes to torch.
ENGINE_ONLY = frozenset({"noise"})


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    label: str
    help: str
    torch_class: type
    params: tuple[Param, ...]
    formula: str
    fixed: Mapping[str, Any] = None  # torch kwargs the spec pins (GD: momentum 0)
    elementwise: bool = True  # False: couples coordinates (L-BFGS), so one trajectory per optimiser
    state_keys: tuple[str, ...] = ()
    # Maps the form's flat values onto torch's argument shapes where they differ (Rprop's etas pair).
    adapt: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def resolve(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        values = resolve_params(self.params, given, f"optimizer {self.name}")
        if values.get("nesterov") and values.get("momentum", 0) <= 0:
            raise ConfigError(f"optimizer {self.name}.nesterov", "needs momentum greater than 0")
        return values

    def torch_kwargs(self, values: Mapping[str, Any]) -> dict[str, Any]:
        kwargs = {k: v for k, v in values.items() if k not in ENGINE_ONLY}
        if "beta1" in kwargs:
            kwargs["betas"] = (kwargs.pop("beta1"), kwargs.pop("beta2"))
        kwargs.update(self.fixed or {})
        return self.adapt(kwargs) if self.adapt else kwargs

    def build(self, parameters: Iterable[torch.Tensor], given: Mapping[str, Any] | None = None
              ) -> torch.optim.Optimizer:
        """A fresh torch optimiser: a re-used one would carry its state into the next run."""
        return self.torch_class(parameters, **self.torch_kwargs(self.resolve(given)))

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")


def _add(spec: OptimizerSpec) -> None:
    OPTIMIZERS.register(spec.name, spec)


_add(OptimizerSpec(
    "gd", "GD", "Full-batch gradient descent: every step uses the exact gradient of all the data.",
    torch.optim.SGD, (_lr(0.01), _WD), r"x_{t+1} = x_t - \eta \nabla f(x_t)", fixed={"momentum": 0.0}))
_add(OptimizerSpec(
    "sgd", "SGD", "Stochastic gradient descent: the gradient of a mini-batch (2D: the gradient plus seeded noise).",
    torch.optim.SGD, (_lr(0.01), _NOISE, _WD), r"x_{t+1} = x_t - \eta \tilde g_t", fixed={"momentum": 0.0}))
_add(OptimizerSpec(
    "momentum", "Momentum", "SGD with a velocity that accumulates past gradients (heavy ball, or Nesterov).",
    torch.optim.SGD, (_lr(0.01), _MOMENTUM, _NESTEROV, _WD),
    r"b_t = \mu b_{t-1} + g_t,\quad x_{t+1} = x_t - \eta b_t", state_keys=("momentum_buffer",)))
_add(OptimizerSpec(
    "adagrad", "Adagrad", "Divides each coordinate's step by the root of its summed squared gradients.",
    torch.optim.Adagrad,
    (_lr(0.1), Param("initial_accumulator_value", "initial accumulator", 0.0, "Starting value of the sum G.",
                     minimum=0.0, maximum=10.0),
     Param("eps", "epsilon", 1e-10, "Added to sqrt(G) so the first step stays finite.", minimum=0.0,
           min_exclusive=True, maximum=1.0, log=True, typical="1e-10 to 1e-6"), _WD),
    r"G_t = G_{t-1} + g_t^2,\quad x_{t+1} = x_t - \eta\, g_t / (\sqrt{G_t} + \epsilon)", state_keys=("sum",)))
_add(OptimizerSpec(
    "rmsprop", "RMSprop", "Divides each step by the root of a running average of squared gradients.",
    torch.optim.RMSprop,
    (_lr(0.01), Param("alpha", "alpha", 0.99, "Decay of the squared-gradient average.", minimum=0.0,
                      maximum=0.9999, typical="0.9 to 0.999"),
     _EPS, Param("momentum", "momentum", 0.0, "Momentum on the scaled step.", minimum=0.0, maximum=0.9999),
     Param("centered", "centered", False, "Divide by the variance estimate instead of the raw second moment.",
           kind="bool"), _WD),
    r"v_t = \alpha v_{t-1} + (1-\alpha) g_t^2,\quad x_{t+1} = x_t - \eta\, g_t / (\sqrt{v_t} + \epsilon)",
    state_keys=("square_avg", "momentum_buffer", "grad_avg")))
_ADAM_FORMULA = (r"m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\ v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\ "
                 r"x_{t+1} = x_t - \eta\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)")
_add(OptimizerSpec(
    "adam", "Adam", "Momentum on the gradient and per-coordinate scaling by its running RMS, bias-corrected.",
    torch.optim.Adam, (_lr(0.01), _BETA1, _BETA2, _EPS), _ADAM_FORMULA, fixed={"weight_decay": 0.0},
    state_keys=("exp_avg", "exp_avg_sq")))
_add(OptimizerSpec(
    "adam_l2", "Adam + L2", "Adam with coupled weight decay: wd*x is added to the gradient, so it is rescaled "
    "by 1/sqrt(v) like the gradient.", torch.optim.Adam,
    (_lr(0.01), _BETA1, _BETA2, _EPS,
     Param("weight_decay", "weight decay (L2)", 0.01, "Coupled L2: g <- g + wd * x before the moments.",
           minimum=0.0, maximum=10.0, typical="1e-4 to 1e-1")),
    r"g_t \leftarrow g_t + \lambda x_t;\ " + _ADAM_FORMULA, state_keys=("exp_avg", "exp_avg_sq")))
_add(OptimizerSpec(
    "adamw", "AdamW", "Adam with decoupled weight decay: x shrinks by lr*wd*x each step, outside the scaling.",
    torch.optim.AdamW,
    (_lr(0.01), _BETA1, _BETA2, _EPS,
     Param("weight_decay", "weight decay (decoupled)", 0.01, "Decoupled: x <- x - lr * wd * x each step.",
           minimum=0.0, maximum=10.0, typical="1e-4 to 1e-1")),
    r"x_t \leftarrow x_t - \eta\lambda x_t;\ " + _ADAM_FORMULA, state_keys=("exp_avg", "exp_avg_sq")))
_add(OptimizerSpec(
    "nadam", "NAdam", "Adam with a Nesterov look-ahead on the first moment.", torch.optim.NAdam,
    (_lr(0.01), _BETA1, _BETA2, _EPS, _WD), r"Adam with \hat m_t \to \beta_1 \hat m_{t+1} + (1-\beta_1) g_t / (1-\beta_1^t)",
    state_keys=("exp_avg", "exp_avg_sq")))
_add(OptimizerSpec(
    "radam", "RAdam", "Adam whose adaptive step is switched on only once the variance estimate is reliable.",
    torch.optim.RAdam, (_lr(0.01), _BETA1, _BETA2, _EPS, _WD), r"Adam with a variance rectification term r_t",
    state_keys=("exp_avg", "exp_avg_sq")))
_add(OptimizerSpec(
    "adamax", "Adamax", "Adam with the infinity norm in place of the squared-gradient average.", torch.optim.Adamax,
    (_lr(0.02), _BETA1, _BETA2, _EPS, _WD), r"u_t = \max(\beta_2 u_{t-1}, |g_t|),\ x_{t+1} = x_t - \eta \hat m_t / u_t",
    state_keys=("exp_avg", "exp_inf")))
_add(OptimizerSpec(
    "adadelta", "Adadelta", "Step sizes from the ratio of running RMS of updates and of gradients.",
    torch.optim.Adadelta,
    (_lr(1.0), Param("rho", "rho", 0.9, "Decay of both running averages.", minimum=0.0, maximum=0.9999),
     Param("eps", "epsilon", 1e-6, "Keeps the ratio finite at the start.", minimum=0.0, min_exclusive=True,
           maximum=1.0, log=True), _WD),
    r"\Delta x_t = -\frac{\sqrt{u_{t-1}+\epsilon}}{\sqrt{v_t+\epsilon}} g_t", state_keys=("square_avg", "acc_delta")))
_add(OptimizerSpec(
    "rprop", "Rprop", "Uses only the sign of each gradient coordinate, growing or shrinking a per-coordinate step.",
    torch.optim.Rprop,
    (_lr(0.01), Param("eta_minus", "eta-", 0.5, "Step shrink factor on a sign flip.", minimum=0.0,
                      min_exclusive=True, maximum=1.0),
     Param("eta_plus", "eta+", 1.2, "Step growth factor while the sign holds.", minimum=1.0, maximum=10.0)),
    r"s_t = s_{t-1}\eta^{\pm},\ x_{t+1} = x_t - s_t\,\mathrm{sign}(g_t)", state_keys=("prev", "step_size"),
    adapt=lambda kw: {**{k: v for k, v in kw.items() if k not in ("eta_minus", "eta_plus")},
                      "etas": (kw["eta_minus"], kw["eta_plus"])}))
_add(OptimizerSpec(
    "lbfgs", "L-BFGS", "Quasi-Newton: builds a curvature estimate from recent steps (one trajectory only).",
    torch.optim.LBFGS,
    (_lr(1.0), Param("history_size", "history", 10, "How many recent steps build the curvature estimate.",
                     kind="int", minimum=1, maximum=100),
     Param("max_iter", "inner iterations", 1, "Function evaluations per step (1 = one update per frame).",
           kind="int", minimum=1, maximum=100),
     Param("line_search_fn", "line search", "strong_wolfe", "Step length rule.", kind="choice",
           choices=("strong_wolfe", "none"))),
    r"x_{t+1} = x_t - \eta H_t g_t", elementwise=False,
    # torch spells "no line search" as None, which a choice field cannot hold.
    adapt=lambda kw: {**kw, "line_search_fn": None if kw["line_search_fn"] == "none" else kw["line_search_fn"]}))


def supports_weight_decay(name: str) -> bool:
    """Plain Adam keeps weight decay at 0 so that "Adam + L2" stays a distinct entry."""
    return any(p.name == "weight_decay" for p in OPTIMIZERS.get(name).params)


def get_optimizer(name: str) -> OptimizerSpec:
    return OPTIMIZERS.get(name)


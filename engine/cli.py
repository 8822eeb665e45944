"""Headless commands: run a 2D race or an MNIST training without a window, writing CSV."""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from .config import OptimizerConfig, ScheduleConfig
from .registry import ConfigError

EPILOG = """examples:
  python main.py run landscape --function rosenbrock --optimizer gd:lr=0.001 --optimizer adam:lr=0.05 --out runs/race
  python main.py run mnist --optimizer adam:lr=0.001 --epochs 3 --out runs/mnist
  python main.py list
"""


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in low else number


def parse_named(text: str, what: str) -> tuple[str, dict[str, Any]]:
    """'adam:lr=0.01,beta1=0.8' -> ('adam', {'lr': 0.01, 'beta1': 0.8})."""
    name, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq:
            raise ConfigError(what, f"expected name=value in {text!r}, got {part!r}")
        params[key.strip()] = _value(value.strip())
    return name.strip(), params


def _schedule(args) -> ScheduleConfig:
    name, params = parse_named(args.schedule, "schedule")
    return ScheduleConfig(name, params, args.warmup, args.warmup_start_factor)


def _progress(done: int, total: int, started: float, extra: str = "") -> None:
    if not sys.stderr.isatty() and done not in (total,) and done % max(1, total // 10):
        return
    width = 30
    filled = int(width * done / max(total, 1))
    rate = done / max(time.perf_counter() - started, 1e-9)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({rate:,.0f}/s) {extra}   ")
    if done >= total or not sys.stderr.isatty():
        sys.stderr.write("\n")
    sys.stderr.flush()


def _write_csv(path: Path, header: list[str], rows: Iterable[list[Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    count = 0
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_fmt(v) for v in row])
            count += 1
    tmp.replace(path)  # a crash never leaves a half-written file under the real name
    return count


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return v


def run_landscape_cmd(args) -> int:
    from .landscape import LandscapeConfig, StartsConfig, run_landscape
    from .optimizers import OPTIMIZERS

    sched = _schedule(args)
    optimizers = []
    texts = args.optimizer or ["adam"]
    for text in texts:
        name, params = parse_named(text, "optimizer")
        label = OPTIMIZERS.get(name).label
        if sum(1 for t in texts if parse_named(t, "optimizer")[0] == name) > 1:
            label = f"{label} ({text.partition(':')[2] or 'defaults'})"  # tell repeated optimisers apart
        optimizers.append(OptimizerConfig(name, params, sched, label))
    fparams = dict(parse_named(f"x:{args.function_params}", "function_params")[1]) if args.function_params else {}
    start = None
    if args.start:
        try:
            sx, sy = (float(v) for v in args.start.split(","))
        except ValueError:
            raise ConfigError("start", f"expected x,y, got {args.start!r}") from None
        start = (sx, sy)
    cfg = LandscapeConfig(function=args.function, function_params=fparams, custom_expression=args.expression or "",
                          start=start, starts=StartsConfig(args.starts, args.count, args.radius),
                          steps=args.steps, seed=args.seed, optimizers=tuple(optimizers))
    cfg.validate()
    out = Path(args.out)
    labels = [o.label for o in cfg.optimizers]
    started = time.perf_counter()
    last = None

    def rows():
        nonlocal last
        for frame in run_landscape(cfg, with_state=False):
            last = frame
            gn = frame.grad_norm
            for i, label in enumerate(labels):
                for n in range(frame.xy.shape[1]):
                    yield [frame.step, label, n, float(frame.xy[i, n, 0]), float(frame.xy[i, n, 1]),
                           float(frame.loss[i, n]), float(gn[i, n]), float(frame.lr[i]),
                           int(frame.diverged_at[i, n])]
            _progress(frame.step, cfg.steps, started)

    _write_csv(out / "trajectories.csv",
               ["step", "optimizer", "trajectory", "x", "y", "loss", "grad_norm", "lr", "diverged_at"], rows())
    (out / "config.json").write_text(json.dumps({"landscape": cfg.to_dict()}, indent=2))
    for i, label in enumerate(labels):
        d = last.diverged_at[i]
        status = f"diverged at step {int(d.min())}" if (d >= 0).all() else f"final loss {float(last.loss[i].mean()):.6g}"
        print(f"{label}: {status}")
    print(f"wrote {out / 'trajectories.csv'}")
    return 0


def run_mnist_cmd(args) -> int:
    from .training import EvalPoint, RunSummary, TrainConfig, TrainStep, run_training

    name, params = parse_named(args.optimizer or "adam:lr=0.001", "optimizer")
    if args.weight_decay is not None:
        params["weight_decay"] = args.weight_decay
    cfg = TrainConfig(dataset=args.dataset, dataset_path=args.data_path or "", train_size=args.train_size,
                      val_fraction=args.val_fraction, model=args.model,
                      model_params=parse_named(f"m:{args.model_params}", "model_params")[1] if args.model_params else {},
                      optimizer=OptimizerConfig(name, params, _schedule(args)), epochs=args.epochs,
                      batch_size=args.batch_size, label_smoothing=args.label_smoothing,
                      early_stopping=args.patience, augment=args.augment, seed=args.seed)
    if args.dropout is not None:
        cfg = TrainConfig(**{**cfg.__dict__, "model_params": {**cfg.model_params, "dropout": args.dropout}})
    cfg.validate()
    out = Path(args.out)
    steps, evals, summary = [], [], None
    started = time.perf_counter()
    for record in run_training(cfg):
        if isinstance(record, TrainStep):
            steps.append([record.step, record.epoch, record.loss, record.lr, record.grad_norm])
        elif isinstance(record, EvalPoint):
            evals.append([record.step, record.epoch, record.train_loss, record.train_acc, record.val_loss,
                          record.val_acc, record.train_loss_dropout, record.patience_count])
            _progress(int(math.ceil(record.epoch)), cfg.epochs, started,
                      f"val acc {record.val_acc:.1%} val loss {record.val_loss:.4f}")
        elif isinstance(record, RunSummary):
            summary = record
    _write_csv(out / "steps.csv", ["step", "epoch", "loss", "lr", "grad_norm"], steps)
    _write_csv(out / "evals.csv", ["step", "epoch", "train_loss", "train_acc", "val_loss", "val_acc",
                                   "train_loss_dropout", "patience_count"], evals)
    (out / "summary.json").write_text(json.dumps({"training": cfg.to_dict(), "summary": summary.__dict__}, indent=2))
    msg = f"best val acc {summary.best_val_acc:.2%} at epoch {summary.best_epoch:.2f}"
    if summary.test_acc is not None:
        msg += f", test acc {summary.test_acc:.2%}"
    if summary.stopped_early:
        msg += ", stopped early (best weights restored)"
    print(msg)
    print(f"wrote {out / 'steps.csv'} and {out / 'evals.csv'}")
    return 0


def list_cmd(args) -> int:
    from .functions import FUNCTIONS
    from .models import MODELS
    from .optimizers import OPTIMIZERS
    from .schedules import SCHEDULES
    for title, reg in (("functions", FUNCTIONS), ("optimizers", OPTIMIZERS), ("schedules", SCHEDULES),
                       ("models", MODELS)):
        print(f"{title}:")
        for name, spec in reg.items():
            params = ", ".join(f"{p.name}={p.default}" for p in getattr(spec, "params", ()))
            print(f"  {name:16s} {spec.label}" + (f"  ({params})" if params else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python main.py", description="Optiscope: watch optimisers learn. "
                                     "With no command, the window opens.", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true", help="print the versions of the app and its libraries")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run without a window and write metrics to CSV")
    kinds = run.add_subparsers(dest="kind", required=True)

    def common(p):
        p.add_argument("--schedule", default="constant", help="name[:key=value,...], e.g. cosine or step:step_size=100")
        p.add_argument("--warmup", type=int, default=0, help="linear warmup steps before the schedule")
        p.add_argument("--warmup-start-factor", type=float, default=0.01)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", default="optiscope-run", help="output folder (created)")

    land = kinds.add_parser("landscape", help="optimisers racing on a 2D function")
    land.add_argument("--function", default="rosenbrock", help="registry name, or 'custom' with --expression")
    land.add_argument("--function-params", default="", help="key=value,... e.g. kappa=100")
    land.add_argument("--expression", help="f(x, y) for --function custom, e.g. 'x**2 + 3*sin(y)'")
    land.add_argument("--optimizer", action="append", help="name[:key=value,...]; repeat to race several")
    land.add_argument("--steps", type=int, default=500)
    land.add_argument("--start", help="x,y (default: the function's own start)")
    land.add_argument("--starts", default="point", choices=["point", "grid", "disc", "random"])
    land.add_argument("--count", type=int, default=1, help="number of start points in a cloud")
    land.add_argument("--radius", type=float, default=0.5, help="disc radius for --starts disc")
    common(land)
    land.set_defaults(func=run_landscape_cmd)

    mn = kinds.add_parser("mnist", help="train a network on digits")
    mn.add_argument("--optimizer", help="name[:key=value,...], default adam:lr=0.001")
    mn.add_argument("--model", default="mlp")
    mn.add_argument("--model-params", default="", help="key=value,... e.g. hidden=256,depth=2")
    mn.add_argument("--dropout", type=float)
    mn.add_argument("--weight-decay", type=float)
    mn.add_argument("--label-smoothing", type=float, default=0.0)
    mn.add_argument("--patience", type=int, default=0, help="early stopping patience in evaluations (0 = off)")
    mn.add_argument("--augment", action="store_true", help="random shifts and rotations")
    mn.add_argument("--epochs", type=int, default=3)
    mn.add_argument("--batch-size", type=int, default=64)
    mn.add_argument("--train-size", type=int, default=0)
    mn.add_argument("--val-fraction", type=float, default=0.2)
    mn.add_argument("--dataset", default="bundled", help="bundled, folder, fashion_debian, download")
    mn.add_argument("--data-path", help="folder for --dataset folder")
    common(mn)
    mn.set_defaults(func=run_mnist_cmd)

    ls = sub.add_parser("list", help="list functions, optimisers, schedules and models")
    ls.set_defaults(func=list_cmd)
    return parser


def run_cli(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from .versions import version_text
        print(version_text())
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

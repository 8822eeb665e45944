"""Headless commands: run a 2D race or an MNIST training without a window, writing CSV."""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from .config import OptimizerConfig, ScheduleConfig
from .registry import ConfigError


class CliError(Exception):
    """A problem that is not a setting (unreadable data, an output folder that cannot be written): one line
    on stderr and exit code 2, like a ConfigError, with no field to name."""


def _data_errors() -> tuple[type[Exception], ...]:
    # Imported late: the CLI imports nothing heavy until a command needs it.
    from .datasets import DataSourceError
    from .idx import IdxError
    return IdxError, DataSourceError


def _output_folder(path: str) -> Path:
    """``--out``, created and proven writable before a run starts, so that a bad folder does not cost the run."""
    out = Path(path)
    probe = out / ".optiscope-write-check"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise CliError(f"cannot write to the output folder {out}: {exc.strerror or exc}") from None
    return out


def _distinct(labels: Iterable[str]) -> list[str]:
    """Labels with repeats told apart ('adam', 'adam (2)'): runs with the same settings must not share a name
    in the files."""
    result: list[str] = []
    for label in labels:
        name, n = label, 1
        while name in result:
            n += 1
            name = f"{label} ({n})"
        result.append(name)
    return result


def _wrote(paths: list[Path]) -> str:
    names = [str(p) for p in paths]
    return "wrote " + (f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0])


EPILOG = """examples:
  python main.py run landscape --function rosenbrock --optimizer gd:lr=0.001 --optimizer adam:lr=0.05 --out runs/race
  python main.py run mnist --optimizer adam:lr=0.001 --epochs 3 --out runs/mnist
  python main.py run my-session.json --out runs/again        # a session saved by the window, or a preset name
  python main.py render momentum_ravine --video ravine.mp4 --csv runs/ravine
  python main.py presets
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


def _batching_line(cfg) -> str:
    """How the optimisers of a validated race step: a line to print, empty for full batch."""
    from .landscape import resolve_function
    from .minibatch import FULL_BATCH_OPTIMIZERS, data_objective_of

    if not cfg.batch_size:
        return ""
    n = data_objective_of(resolve_function(cfg)).resolve(cfg.function_params)["n_points"]
    full = sorted({o.label for o in cfg.optimizers if o.name in FULL_BATCH_OPTIMIZERS})
    return (f"mini-batches of {cfg.batch_size} of the {n} points (seed {cfg.seed})"
            + (f"; full batch: {', '.join(full)}" if full else ""))


def run_landscape_cmd(args) -> int:
    from .landscape import LandscapeConfig, StartsConfig, run_landscape
    from .optimizers import OPTIMIZERS

    sched = _schedule(args)
    named, labels = [], []
    texts = args.optimizer or ["adam"]
    for text in texts:
        name, params = parse_named(text, "optimizer")
        label = OPTIMIZERS.get(name).label
        if sum(1 for t in texts if parse_named(t, "optimizer")[0] == name) > 1:
            label = f"{label} ({text.partition(':')[2] or 'defaults'})"  # tell repeated optimisers apart
        named.append((name, params))
        labels.append(label)
    optimizers = [OptimizerConfig(name, params, sched, label)
                  for (name, params), label in zip(named, _distinct(labels))]
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
                          steps=args.steps, seed=args.seed, optimizers=tuple(optimizers),
                          batch_size=args.batch_size or 0)
    cfg.validate()
    batching = _batching_line(cfg)
    out = _output_folder(args.out)
    labels = [o.label for o in cfg.optimizers]
    started = time.perf_counter()
    last = None

    def rows():
        nonlocal last, started
        for frame in run_landscape(cfg, with_state=False):
            if frame.step == 0:  # the rate counts steps from here, not the set-up before (torch's first call)
                started = time.perf_counter()
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
    if batching:
        print(batching)
    print(_wrote([out / "trajectories.csv", out / "config.json"]))
    return 0


def _loss(v: float) -> str:
    """A loss for people to read: 4 significant digits, any size (CSV files keep the exact value)."""
    return f"{v:.4g}"


def _summary_line(s) -> str:
    """The printed result of one MNIST run (``s``: a RunSummary)."""
    if s.best_acc_eval < 0 and not math.isfinite(s.best_val_acc):
        msg = "no evaluation"
    else:
        msg = f"best val acc {s.best_val_acc:.2%} at epoch {s.best_epoch:.2f}"
        if math.isfinite(s.best_val_loss):
            msg += f", lowest val loss {_loss(s.best_val_loss)} at epoch {s.best_loss_epoch:.2f}"
    if s.test_acc is not None:
        msg += f", test acc {s.test_acc:.2%}"
    if s.stopped_early:
        msg += ", stopped early"
    if s.restored_best:
        msg += f" (weights of the lowest val loss restored, epoch {s.best_loss_epoch:.2f})"
    if s.diverged:
        msg += f", diverged at step {s.diverged_at}"
    return msg


def run_mnist_cmd(args) -> int:
    from .lr_range import LRRangeConfig, RangeResult
    from .training import EvalPoint, RunSummary, TrainConfig, check_schedule
    from .training_process import DataCache, Job, JobFailed, RangeBlock, StepBlock, run_jobs_inline

    dropout_values: tuple[float, ...] = ()
    if args.dropout:
        try:
            dropout_values = tuple(float(v) for v in args.dropout.replace(";", ",").split(",") if v.strip())
        except ValueError:
            raise ConfigError("dropout", f"expected a number or numbers separated by commas, got {args.dropout!r}")
    model_params = parse_named(f"m:{args.model_params}", "model_params")[1] if args.model_params else {}
    if len(dropout_values) == 1:
        model_params["dropout"] = dropout_values[0]
    dataset_params = {"which": args.which} if args.dataset == "download" else {}
    configs = []
    texts = args.optimizer or ["adam:lr=0.001"]
    labels = _distinct(texts) if len(texts) > 1 else [""] * len(texts)
    for text, label in zip(texts, labels):
        name, params = parse_named(text, "optimizer")
        if args.weight_decay is not None:
            params["weight_decay"] = args.weight_decay
        cfg = TrainConfig(dataset=args.dataset, dataset_path=args.data_path or "", dataset_params=dataset_params,
                          train_size=args.train_size, val_fraction=args.val_fraction, model=args.model,
                          model_params=dict(model_params), optimizer=OptimizerConfig(name, params, _schedule(args)),
                          epochs=args.epochs, batch_size=args.batch_size, label_smoothing=args.label_smoothing,
                          early_stopping=args.patience, eval_every=args.eval_every, augment=args.augment,
                          seed=args.seed, dropout_per_layer=dropout_values if len(dropout_values) > 1 else (),
                          label=label)
        try:
            cfg.validate()
        except ConfigError as exc:
            if exc.field.startswith("dropout_per_layer"):  # the flag's name, not the config's
                raise ConfigError("dropout" + exc.field[len("dropout_per_layer"):], exc.problem) from None
            raise
        configs.append(cfg)
    several = len(configs) > 1
    # The data once (shared with the runs), so that a schedule that does not fit a run is refused before any
    # run starts rather than when it does.
    cache = DataCache()
    try:
        n_train = [len(cache.get(cfg).x_train) for cfg in configs]
    except _data_errors() as exc:
        raise CliError(str(exc)) from None
    if not args.lr_range:
        for k, cfg in enumerate(configs):
            try:
                check_schedule(cfg, n_train[k])
            except ConfigError as exc:
                raise ConfigError(f"optimizer {cfg.label} {exc.field}" if several else exc.field,
                                  exc.problem) from None
    out = _output_folder(args.out)
    started = time.perf_counter()
    if args.lr_range:
        rcfg = LRRangeConfig(args.lr_start, args.lr_end, args.lr_steps).validate()
        rows, result = [], None
        for _, item in run_jobs_inline([Job(configs[0], "lr_range", rcfg)], cache=cache):
            if isinstance(item, RangeBlock):
                rows += [[int(s), float(lr), float(loss), float(sm)]
                         for s, lr, loss, sm in zip(item.step, item.lr, item.loss, item.smoothed)]
            elif isinstance(item, RangeResult):
                result = item
            elif isinstance(item, JobFailed):
                raise _job_error(item, "lr range")
        _write_csv(out / "lr_range.csv", ["step", "lr", "loss", "smoothed_loss"], rows)
        print(f"suggested learning rate {result.suggested_lr:.3g} (rate at the minimum / 10: {result.min_over_10:.3g}); "
              f"{result.reason}")
        print(_wrote([out / "lr_range.csv"]))
        return 0

    steps, layers, evals, summaries = [], [], [], {}
    failures = []

    def take(items) -> None:
        for k, item in items:
            run = configs[k].display_label
            pre = [run] if several else []
            if isinstance(item, StepBlock):
                steps.extend(pre + [int(s), float(e), float(lo), float(lr), float(g)]
                             for s, e, lo, lr, g in zip(item.step, item.epoch, item.loss, item.lr, item.grad_norm))
                for row, s in enumerate(item.layer_step):
                    for j, name in enumerate(item.layer_names):
                        layers.append(pre + [int(s), name, float(item.layer_grad[row, j]),
                                             float(item.layer_weight[row, j]), float(item.update_ratio[row, j])])
            elif isinstance(item, EvalPoint):
                evals.append(pre + [item.step, item.epoch, item.train_loss, item.train_acc, item.val_loss,
                                    item.val_acc, item.train_loss_dropout, item.patience_count, item.lr,
                                    item.batch_loss_mean])
                if not several:
                    _progress(int(math.ceil(item.epoch)), configs[0].epochs, started,
                              f"val acc {item.val_acc:.1%} val loss {_loss(item.val_loss)}")
            elif isinstance(item, RunSummary):
                summaries[k] = item
            elif isinstance(item, JobFailed):
                failures.append((run, item))

    run_jobs_inline([Job(c) for c in configs], on_items=take, cache=cache)
    if len(failures) == 1 and not several:
        raise _job_error(failures[0][1], "mnist")
    if failures:
        raise ConfigError("mnist", "; ".join(f"{run}: {item.message}" for run, item in failures))
    head = ["run"] if several else []
    _write_csv(out / "steps.csv", head + ["step", "epoch", "loss", "lr", "grad_norm"], steps)
    _write_csv(out / "layers.csv", head + ["step", "layer", "grad_norm", "weight_norm", "update_ratio"], layers)
    _write_csv(out / "evals.csv", head + ["step", "epoch", "train_loss", "train_acc", "val_loss", "val_acc",
                                          "train_loss_dropout", "patience_count", "lr", "batch_loss_mean"], evals)
    runs = [{"training": c.to_dict(), "summary": summaries[k].__dict__} for k, c in enumerate(configs)]
    (out / "summary.json").write_text(json.dumps(runs[0] if not several else {"runs": runs}, indent=2, default=str))
    for k, cfg in enumerate(configs):
        msg = _summary_line(summaries[k])
        print(f"{cfg.display_label}: {msg}" if several else msg)
    print(_wrote([out / name for name in ("steps.csv", "layers.csv", "evals.csv", "summary.json")]))
    return 0


def _job_error(item, what: str) -> ConfigError | CliError:
    """A failed job's error as the ConfigError it was (the field named once, not inside the message), or, for
    data that could not be read, as its own message (it names the file)."""
    if item.kind in {cls.__name__ for cls in _data_errors()}:
        return CliError(item.message)
    prefix = f"{item.field}: "
    if item.field and item.message.startswith(prefix):
        return ConfigError(item.field, item.message[len(prefix):])
    return ConfigError(item.field or what, item.message)


def list_cmd(args) -> int:
    from .functions import FUNCTIONS
    from .models import MODELS
    from .optimizers import OPTIMIZERS
    from .schedules import SCHEDULES
    for title, reg in (("functions", FUNCTIONS), ("optimizers", OPTIMIZERS), ("schedules", SCHEDULES),
                       ("models", MODELS)):
        print(f"{title}:")
        width = max(len(name) for name in reg.names()) + 2
        for name, spec in reg.items():
            params = ", ".join(f"{p.name}={p.default}" for p in getattr(spec, "params", ()))
            print(f"  {name:{width}s}{spec.label}" + (f"  ({params})" if params else ""))
        if reg is FUNCTIONS:
            print(f"  {'custom':{width}s}your own f(x, y): --function custom --expression \"x**2 + 10*y**2\"")
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
    land.add_argument("--batch-size", type=int, default=0,
                      help="data-set objectives (linear_regression, logistic_regression): SGD and the others step "
                           "on seeded mini-batches of N points (GD and L-BFGS stay full batch); 0: full batch")
    common(land)
    land.set_defaults(func=run_landscape_cmd)

    mn = kinds.add_parser("mnist", help="train networks on digits (several --optimizer: compared side by side)")
    mn.add_argument("--optimizer", action="append",
                    help="name[:key=value,...], default adam:lr=0.001; repeat to compare runs that differ only there")
    mn.add_argument("--model", default="mlp", help="mlp or cnn")
    mn.add_argument("--model-params", default="", help="key=value,... e.g. hidden=256,depth=2")
    mn.add_argument("--dropout", help="a probability, or one per dropout layer: 0.1,0.5")
    mn.add_argument("--weight-decay", type=float)
    mn.add_argument("--label-smoothing", type=float, default=0.0)
    mn.add_argument("--patience", type=int, default=0, help="early stopping patience in evaluations (0 = off)")
    mn.add_argument("--augment", action="store_true", help="random shifts and rotations")
    mn.add_argument("--epochs", type=int, default=3)
    mn.add_argument("--batch-size", type=int, default=64)
    mn.add_argument("--eval-every", type=int, default=0, help="steps between evaluations (0 = each epoch)")
    mn.add_argument("--train-size", type=int, default=0)
    mn.add_argument("--val-fraction", type=float, default=0.2)
    mn.add_argument("--dataset", default="bundled", help="bundled, idx_folder, fashion_debian or download")
    mn.add_argument("--data-path", help="folder for --dataset idx_folder (or a torchvision root)")
    mn.add_argument("--which", default="mnist", choices=("mnist", "fashion"), help="for --dataset download")
    mn.add_argument("--lr-range", action="store_true",
                    help="run a learning-rate range test of the (first) optimiser instead: writes lr_range.csv")
    mn.add_argument("--lr-start", type=float, default=1e-6, help="range test: first rate")
    mn.add_argument("--lr-end", type=float, default=1.0, help="range test: last rate")
    mn.add_argument("--lr-steps", type=int, default=200, help="range test: steps")
    common(mn)
    mn.set_defaults(func=run_mnist_cmd)

    ls = sub.add_parser("list", help="list functions, optimisers, schedules and models")
    ls.set_defaults(func=list_cmd)
    add_session_commands(sub, kinds)
    return parser


def run_cli(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(session_argv(argv))
    try:
        return _dispatch(parser, args)
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say, and not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second failure at interpreter exit
        return 0
    except (ConfigError, CliError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _data_errors() as exc:  # data read outside run mnist's own check (sessions, render): the same one line
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.version:
        from .versions import version_text
        print(version_text())
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return args.func(args)


# ---- sessions: `run SESSION`, `render`, `presets` ------------------------------------------------------

def session_argv(argv: list[str]) -> list[str]:
    """``run FILE.json ...`` (or ``run PRESET ...``) means ``run session FILE.json ...``."""
    argv = list(argv)
    if len(argv) >= 2 and argv[0] == "run" and argv[1] not in ("landscape", "mnist", "session") \
            and not argv[1].startswith("-"):
        argv.insert(1, "session")
    return argv


def add_session_commands(sub, kinds) -> None:
    se = kinds.add_parser("session", help="repeat (or scale up) a session saved by the window, or a preset",
                          description="Runs the session's view headless and writes the same CSVs as `render`. "
                                      "Flags override the session: --steps, --epochs, --seed, --train-size.")
    se.add_argument("session", help="a session file (.json) or a preset name (python main.py presets)")
    se.add_argument("--view", choices=["landscape", "mnist"], help="which part to run (default: the session's view)")
    se.add_argument("--steps", type=int, help="2D: number of steps")
    se.add_argument("--epochs", type=int, help="MNIST: epochs of every run")
    se.add_argument("--train-size", type=int, help="MNIST: training digits of every run (0: all)")
    se.add_argument("--seed", type=int, help="seed (2D run, or every MNIST run)")
    se.add_argument("--out", default="optiscope-run", help="output folder (created)")
    se.add_argument("--quiet", action="store_true", help="no progress bar")
    se.set_defaults(func=run_session_cmd)

    from .render import add_render_arguments
    rd = sub.add_parser("render", help="render a session to a video (MP4/GIF) and/or CSVs, without a screen",
                        description="Frame i shows the run after exactly i x steps-per-frame steps, whatever the "
                                    "machine's speed. CSVs hold the whole run and are identical from one render "
                                    "to the next.")
    add_render_arguments(rd)
    rd.set_defaults(func=render_cmd)

    pr = sub.add_parser("presets", help="list the shipped presets by syllabus topic")
    pr.add_argument("--captions", action="store_true", help="print each preset's two-line caption")
    pr.set_defaults(func=presets_cmd)


def _session_overrides(session, args):
    if args.steps is not None:
        session = session.with_landscape(steps=args.steps)
    runs = {}
    if args.epochs is not None:
        runs["epochs"] = args.epochs
    if args.train_size is not None:
        runs["train_size"] = args.train_size
    if args.seed is not None:
        session = session.with_landscape(seed=args.seed)
        runs["seed"] = args.seed
    if runs:
        session = session.with_runs(**runs)
    return session


def run_session_cmd(args) -> int:
    from .presets import resolve_session
    from .render import Progress, estimated_total, run_session

    session = _session_overrides(resolve_session(args.session), args)
    view = args.view or session.view
    total = estimated_total(session, view)
    _output_folder(args.out)
    bar = Progress(total, "run", enabled=not args.quiet)
    files = run_session(session, args.out, view=view, progress=lambda done, extra: bar(done, extra))
    bar(total)
    for f in files:
        print(f"wrote {f}")
    return 0


def render_cmd(args) -> int:
    """CSVs only: here, without Qt. With --video: in a process of its own that runs Qt offscreen (the
    engine never imports Qt); it checks the session and flags itself (refusals exit 2 with the field
    named, as here) and writes the CSVs too, so both come from one pass."""
    import os
    import signal
    import subprocess

    from .paths import ROOT
    from .render import check_render_args, render_argv

    check_render_args(args)
    if args.video is None:
        from .render import Progress, estimated_total, run_session, session_for_args
        session = session_for_args(args)
        view = args.view or session.view
        bar = Progress(estimated_total(session, view), "render", enabled=not args.quiet)
        for f in run_session(session, args.csv, view=view, progress=lambda done, extra: bar(done, extra)):
            print(f"wrote {f}")
        return 0
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"  # no screen needed, whatever the machine has
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    proc = subprocess.Popen([sys.executable, "-m", "gui.recording", *render_argv(args)], env=env)
    # A TERM (a job scheduler, `kill`) ends the render too, not only this process: the child would otherwise
    # write its whole clip with nobody waiting for it. It removes a half-written file as on Ctrl-C.
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.wait()  # the child got the same Ctrl-C from the terminal and cleans up
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def presets_cmd(args) -> int:
    from .presets import presets_by_topic
    for topic, presets in presets_by_topic():
        print(f"{topic}:")
        for p in presets:
            print(f"  {p.name:34s} {p.title}")
            if args.captions:
                for line in p.caption.split("\n"):
                    print(f"  {'':34s}   {line}")
    print("\nrun one: python main.py render NAME --video clip.mp4   or   python main.py run NAME --out DIR")
    return 0

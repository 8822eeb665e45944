"""Session files: everything needed to reproduce what is on screen, as validated JSON.

A session holds the view, the 2D race (function, custom expression, optimisers, hyperparameters,
schedules, seed, start points), the MNIST runs (dataset, model, optimiser, schedule, regularisation,
seed), how it is animated (steps per frame, frame rate, theme), an optional title, caption and
syllabus topic (presets are sessions), and the versions of the app, torch and numpy that wrote it.

File layout (``schema`` is required; every other key is optional and defaults as below)::

    {
      "schema": 1,
      "app": {"optiscope": "0.1.0", "torch": "2.13.0+cpu", "numpy": "2.4.6", ...},
      "title": "", "caption": "", "topic": "",
      "view": "landscape",                       # or "mnist"
      "display": {"steps_per_frame": 10, "fps": 30, "theme": "default"},
      "landscape": {...LandscapeConfig.to_dict()...},
      "mnist": {"runs": [{...TrainConfig.to_dict()...}, ...]}
    }

Loading never executes anything from the file: it is parsed as JSON (NaN and Infinity refused),
then every value is checked by the configs' own ``from_dict``/``validate`` and, for schedules, by
building them on a throw-away optimiser. Any problem raises ``SessionError`` (a ``ConfigError``)
whose ``field`` names the offending setting as a path, e.g. ``landscape.optimizers[1].params.lr``.
A refused file changes nothing: ``load_session`` returns a new object or raises.

Saving is atomic: the JSON goes to a temporary file in the same folder, is flushed and fsynced, and
``os.replace`` moves it over the target, so a crash leaves either the old file or the new one.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from .config import OptimizerConfig, ScheduleConfig
from .landscape import LandscapeConfig
from .optimizers import OPTIMIZERS
from .registry import ConfigError, resolve_params
from .schedules import SCHEDULES, WARMUP_PARAMS, make_schedule
from .training import TrainConfig

SCHEMA_VERSION = 1
VIEWS = ("landscape", "mnist")
THEMES = ("default", "presenter-light", "presenter-dark")
TOP_LEVEL_KEYS = ("schema", "app", "title", "caption", "topic", "view", "display", "landscape", "mnist", "parked")
MAX_FILE_BYTES = 2_000_000  # a session is a few kB; anything this large is not one
MAX_RUNS = 8  # MNIST runs in a session, ticked or not: what the window's list holds
MAX_OPTIMIZERS = 8  # optimisers in a race's list, ticked or not: what the window's list holds
MAX_TEXT = {"title": 200, "caption": 1000, "topic": 100}
SUFFIX = ".json"


class SessionError(ConfigError):
    """A refused session file or value; ``field`` is the path of the offending setting."""


# ---- display settings ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Display:
    """How the session is animated and recorded: content per frame never depends on machine speed."""

    steps_per_frame: int = 10  # optimiser steps (2D) or training steps (MNIST) drawn per frame
    fps: int = 30  # frames per second of a recording
    theme: str = "default"  # one of THEMES

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "display") -> "Display":
        _object(data, where, {f.name for f in dataclasses.fields(cls)})
        out = cls(steps_per_frame=_integer(data, "steps_per_frame", where, 10, 1, 100_000),
                  fps=_integer(data, "fps", where, 30, 1, 120),
                  theme=_text(data, "theme", where, "default", 40))
        if out.theme not in THEMES:
            raise SessionError(f"{where}.theme", f"{out.theme!r} is not one of {', '.join(THEMES)}")
        return out


# ---- the session --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Session:
    """Plain data; the GUI reads it into its panels and builds a new one from them to save."""

    view: str = "landscape"
    landscape: LandscapeConfig = field(default_factory=LandscapeConfig)
    mnist_runs: tuple[TrainConfig, ...] = (TrainConfig(),)
    display: Display = field(default_factory=Display)
    title: str = ""
    caption: str = ""
    topic: str = ""
    app: Mapping[str, str] = field(default_factory=dict)  # versions that wrote the file; {} for a new one
    # Unticked in the window: kept with their place in the list, never run ((position, config) pairs). The
    # ``landscape`` and ``mnist_runs`` above are what runs, headless as in the window.
    parked_optimizers: tuple[tuple[int, OptimizerConfig], ...] = ()
    parked_runs: tuple[tuple[int, TrainConfig], ...] = ()

    def to_dict(self, stamp: bool = True) -> dict[str, Any]:
        """JSON-ready. ``stamp``: record this process's versions (what "made it") instead of ``app``."""
        return {
            "schema": SCHEMA_VERSION,
            "app": current_versions() if stamp else dict(self.app),
            "title": self.title, "caption": self.caption, "topic": self.topic,
            "view": self.view,
            "display": self.display.to_dict(),
            "landscape": self.landscape.to_dict(),
            "mnist": {"runs": [r.to_dict() for r in self.mnist_runs]},
            **({"parked": self._parked_dict()} if self.parked_optimizers or self.parked_runs else {}),
        }

    def _parked_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.parked_optimizers:
            out["landscape"] = {"at": [at for at, _ in self.parked_optimizers],
                                "optimizers": [oc.to_dict() for _, oc in self.parked_optimizers]}
        if self.parked_runs:
            out["mnist"] = {"at": [at for at, _ in self.parked_runs],
                            "runs": [r.to_dict() for _, r in self.parked_runs]}
        return out

    def to_json(self, stamp: bool = True, views: tuple[str, ...] = VIEWS) -> str:
        """Indented JSON; ``views`` leaves out the parts of other views (presets keep only their own)."""
        data = self.to_dict(stamp)
        for v in VIEWS:
            if v not in views:
                data.pop("mnist" if v == "mnist" else "landscape")
                data.get("parked", {}).pop(v, None)
        if "parked" in data and not data["parked"]:
            del data["parked"]
        return dumps(data) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> "Session":
        return session_from_dict(data)

    def replace(self, **changes: Any) -> "Session":
        return dataclasses.replace(self, **changes)

    def with_landscape(self, **changes: Any) -> "Session":
        """A copy with LandscapeConfig fields changed (validated), e.g. ``steps=5000``."""
        cfg = dataclasses.replace(self.landscape, **changes)
        _validate_landscape(cfg)
        return dataclasses.replace(self, landscape=cfg)

    def with_runs(self, **changes: Any) -> "Session":
        """A copy with the same TrainConfig fields changed in every MNIST run (validated)."""
        runs = tuple(dataclasses.replace(r, **changes) for r in self.mnist_runs)
        for i, r in enumerate(runs):
            _validate_run(r, f"mnist.runs[{i}]")
        return dataclasses.replace(self, mnist_runs=runs)


def dumps(value: Any, indent: int = 0) -> str:
    """JSON with objects indented and short lists of numbers or text on one line (readable diffs)."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {dumps(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, (list, tuple)):
        flat = all(not isinstance(v, (Mapping, list, tuple)) for v in value)
        one_line = "[" + ", ".join(dumps(v) for v in value) + "]"
        if all(isinstance(v, (list, tuple)) and all(not isinstance(w, (Mapping, list, tuple)) for w in v)
               for v in value) or (flat and len(one_line) <= 100):
            if len(one_line) <= 100:
                return one_line
        if not value:
            return "[]"
        return "[\n" + ",\n".join(inner + dumps(v, indent + 1) for v in value) + "\n" + pad + "]"
    return json.dumps(value, allow_nan=False, ensure_ascii=False)


def current_versions() -> dict[str, str]:
    from .versions import versions
    return dict(versions())


# ---- validation helpers ---------------------------------------------------------------------------

def _object(data: Any, where: str, known: set[str] | tuple[str, ...]) -> None:
    if not isinstance(data, Mapping):
        raise SessionError(where, f"expected an object {{...}}, got {_kind(data)}")
    for key in data:
        if not isinstance(key, str):
            raise SessionError(where, f"keys must be text, got {key!r}")
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise SessionError(f"{where}.{unknown[0]}" if where else unknown[0],
                           f"unknown key; known: {', '.join(sorted(known))}")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "true/false", int: "a whole number",
             float: "a number", type(None): "null"}
    return f"{names.get(type(value), type(value).__name__)} {_short(value)}"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _integer(data: Mapping[str, Any], key: str, where: str, default: int, lo: int, hi: int) -> int:
    if key not in data:
        return default
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise SessionError(f"{where}.{key}", f"expected a whole number, got {_kind(value)}")
    if not lo <= value <= hi:
        raise SessionError(f"{where}.{key}", f"must be between {lo:,} and {hi:,}, got {value:,}")
    return value


def _text(data: Mapping[str, Any], key: str, where: str, default: str, limit: int) -> str:
    if key not in data:
        return default
    value = data[key]
    if not isinstance(value, str):
        raise SessionError(f"{where}.{key}" if where else key, f"expected text, got {_kind(value)}")
    if len(value) > limit:
        raise SessionError(f"{where}.{key}" if where else key, f"at most {limit} characters, got {len(value)}")
    return value


def _relocated(exc: ConfigError, field_name: str) -> SessionError:
    out = SessionError(field_name, exc.problem)
    out.__cause__ = exc
    return out


_SCHEDULE_ERROR = re.compile(r"^schedule\.(?P<key>\w+)$")


def _schedule_field(exc: ConfigError, sched: ScheduleConfig, where: str) -> str:
    """Map a ConfigError from make_schedule ("schedule.gamma") onto the session path."""
    m = _SCHEDULE_ERROR.match(exc.field)
    if exc.field == "schedule":  # unknown schedule name (registry kind)
        return f"{where}.name"
    if m:
        key = m.group("key")
        if key in {p.name for p in WARMUP_PARAMS}:
            return f"{where}.{key}"
        return f"{where}.params.{key}"
    return where


def _check_optimizer(oc: OptimizerConfig, where: str, total_steps: int | None) -> None:
    """Optimiser name, hyperparameters and schedule, each error named by its path under ``where``."""
    try:
        spec = OPTIMIZERS.get(oc.name)
    except ConfigError as exc:
        raise _relocated(exc, f"{where}.name") from None
    try:
        spec.resolve(oc.params)
    except ConfigError as exc:
        raise _relocated(exc, f"{where}.params.{exc.field.rsplit('.', 1)[-1]}") from None
    sched = oc.schedule
    try:
        sspec = SCHEDULES.get(sched.name)
        resolve_params(sspec.params, sched.params, "schedule")
        WARMUP_PARAMS[0].validate(sched.warmup_steps, "schedule")
        WARMUP_PARAMS[1].validate(sched.warmup_start_factor, "schedule")
        if total_steps is not None:
            # Build it for real on a throw-away optimiser: catches what only the builder checks
            # (one-cycle phases, cyclic bounds, warmup longer than the run, momentum cycling).
            leaf = torch.zeros(1, 2, requires_grad=True)
            make_schedule(spec.build([leaf], oc.params), sched, total_steps)
    except ConfigError as exc:
        raise _relocated(exc, _schedule_field(exc, sched, f"{where}.schedule")) from None


def _landscape_field(exc: ConfigError) -> str:
    f = exc.field
    if f.startswith("landscape"):
        return f
    if f == "expression":
        return "landscape.custom_expression"
    if f.startswith("domain"):
        return "landscape.custom_domain" + f[len("domain"):]
    if f.startswith("function "):  # "function rosenbrock.b"
        return "landscape.function_params." + f.rsplit(".", 1)[-1]
    return "landscape." + f


def _validate_landscape(cfg: LandscapeConfig) -> None:
    for i, oc in enumerate(cfg.optimizers):
        _check_optimizer(oc, f"landscape.optimizers[{i}]", cfg.steps if 1 <= cfg.steps <= 10_000_000 else None)
    try:
        cfg.validate()
    except ConfigError as exc:
        raise _relocated(exc, _landscape_field(exc)) from None


def _landscape_from_dict(data: Any) -> LandscapeConfig:
    if not isinstance(data, Mapping):
        raise SessionError("landscape", f"expected an object {{...}}, got {_kind(data)}")
    # Optimisers first, one by one, so that a bad hyperparameter is named by its index.
    opts = data.get("optimizers")
    parsed: list[OptimizerConfig] = []
    if isinstance(opts, list):
        for i, o in enumerate(opts):
            where = f"landscape.optimizers[{i}]"
            try:
                oc = OptimizerConfig.from_dict(o, where)
            except ConfigError as exc:
                raise _relocated(exc, exc.field if exc.field.startswith(where) else where) from None
            _check_optimizer(oc, where, None)
            parsed.append(oc)
    try:
        cfg = LandscapeConfig.from_dict(data, "landscape")
    except ConfigError as exc:
        raise _relocated(exc, _landscape_field(exc)) from None
    except (TypeError, ValueError) as exc:  # a malformed nested value the config did not anticipate
        raise SessionError("landscape", f"cannot read: {exc}") from None
    _validate_landscape(cfg)
    return cfg


_RUN_FIELDS = {"epochs", "batch_size", "label_smoothing", "early_stopping", "eval_every", "train_size",
               "val_fraction", "train_eval_size", "layer_stats_every", "dataset", "model", "dropout_per_layer"}


def _run_field(exc: ConfigError, where: str) -> str:
    f = exc.field
    if f.startswith(where):
        return f
    if f.startswith("model "):  # "model mlp.hidden"
        return f"{where}.model_params.{f.rsplit('.', 1)[-1]}"
    if f.startswith("dataset "):
        return f"{where}.dataset_params.{f.rsplit('.', 1)[-1]}"
    if f.startswith("optimizer "):
        return f"{where}.optimizer.params.{f.rsplit('.', 1)[-1]}"
    if f in ("optimizer", "schedule", "model", "dataset"):
        return f"{where}.optimizer.name" if f == "optimizer" else (
            f"{where}.optimizer.schedule.name" if f == "schedule" else f"{where}.{f}")
    head = re.split(r"[.\[]", f, maxsplit=1)[0]
    if head in _RUN_FIELDS:
        return f"{where}.{f}"
    return f"{where}.{f}" if f else where


BUNDLED_DIGITS = 5000


def estimated_steps(cfg: TrainConfig) -> int | None:
    """Optimiser steps a run will take, where that is known without loading data (None otherwise)."""
    if cfg.train_size:
        n = cfg.train_size
    elif cfg.dataset == "bundled":
        n = BUNDLED_DIGITS - round(cfg.val_fraction * BUNDLED_DIGITS)
    else:
        return None
    batch = n if cfg.optimizer.name == "gd" else min(cfg.batch_size, n)
    return cfg.epochs * max(1, math.ceil(n / max(batch, 1)))


def _validate_run(cfg: TrainConfig, where: str) -> None:
    _check_optimizer(cfg.optimizer, f"{where}.optimizer", estimated_steps(cfg) if 1 <= cfg.epochs <= 1000
                     and 1 <= cfg.batch_size <= 100_000 and cfg.train_size >= 0 else None)
    try:
        cfg.validate()
    except ConfigError as exc:
        raise _relocated(exc, _run_field(exc, where)) from None


def _runs_from_dict(data: Any) -> tuple[TrainConfig, ...]:
    _object(data, "mnist", ("runs",))
    runs = data.get("runs", [{}])
    if not isinstance(runs, list):
        raise SessionError("mnist.runs", f"expected a list of runs, got {_kind(runs)}")
    if not 1 <= len(runs) <= MAX_RUNS:
        raise SessionError("mnist.runs", f"expected 1 to {MAX_RUNS} runs, got {len(runs)}")
    out = []
    for i, r in enumerate(runs):
        where = f"mnist.runs[{i}]"
        if not isinstance(r, Mapping):
            raise SessionError(where, f"expected an object {{...}}, got {_kind(r)}")
        if isinstance(r.get("optimizer"), Mapping):
            try:
                oc = OptimizerConfig.from_dict(r["optimizer"], f"{where}.optimizer")
            except ConfigError as exc:
                raise _relocated(exc, _run_field(exc, where)) from None
            _check_optimizer(oc, f"{where}.optimizer", None)
        try:
            cfg = TrainConfig.from_dict(r, where)
        except ConfigError as exc:
            raise _relocated(exc, _run_field(exc, where)) from None
        except (TypeError, ValueError) as exc:
            raise SessionError(where, f"cannot read: {exc}") from None
        _validate_run(cfg, where)
        out.append(cfg)
    return tuple(out)


def _app_from_dict(data: Any) -> dict[str, str]:
    if not isinstance(data, Mapping):
        raise SessionError("app", f"expected an object of version texts, got {_kind(data)}")
    out = {}
    for k, v in data.items():
        if not isinstance(v, str) or len(v) > 200:
            raise SessionError(f"app.{k}", f"expected a version text, got {_kind(v)}")
        out[str(k)] = v
    return out


def session_from_dict(data: Any) -> Session:
    """Validate a parsed JSON document; raises SessionError naming the field."""
    if not isinstance(data, Mapping):
        raise SessionError("file", f"expected a JSON object at the top, got {_kind(data)}")
    if "schema" not in data:
        raise SessionError("schema", "missing: this is not an Optiscope session file "
                                     "(it needs \"schema\": 1 at the top)")
    schema = data["schema"]
    if isinstance(schema, bool) or not isinstance(schema, int):
        raise SessionError("schema", f"expected a whole number, got {_kind(schema)}")
    if schema > SCHEMA_VERSION:
        made_by = data.get("app", {}).get("optiscope") if isinstance(data.get("app"), Mapping) else None
        by = f" by Optiscope {made_by}" if isinstance(made_by, str) else ""
        raise SessionError("schema", f"this file was written{by} with session schema {schema}; this Optiscope "
                                     f"reads schema {SCHEMA_VERSION} and older. Update Optiscope to open it.")
    if schema < 1:
        raise SessionError("schema", f"must be 1 or more, got {schema}")
    _object(data, "", TOP_LEVEL_KEYS)
    view = _text(data, "view", "", "landscape", 40)
    if view not in VIEWS:
        raise SessionError("view", f"{view!r} is not one of {', '.join(VIEWS)}")
    texts = {k: _text(data, k, "", "", n) for k, n in MAX_TEXT.items()}
    landscape = _landscape_from_dict(data["landscape"]) if "landscape" in data else LandscapeConfig()
    runs = _runs_from_dict(data["mnist"]) if "mnist" in data else (TrainConfig(),)
    return Session(
        view=view,
        landscape=landscape,
        mnist_runs=runs,
        display=Display.from_dict(data.get("display", {})),
        app=_app_from_dict(data.get("app", {})),
        **_parked_from_dict(data.get("parked", {}), landscape, runs),
        **texts,
    )


def _parked_from_dict(data: Any, landscape: LandscapeConfig, runs: tuple[TrainConfig, ...]) -> dict[str, tuple]:
    """The unticked optimisers and runs, each validated as its ticked kind is (an optimiser's schedule against
    the race's steps), with its place in the list; with the ticked ones, no more than the window's list holds."""
    _object(data, "parked", ("landscape", "mnist"))
    out: dict[str, tuple] = {}
    for view, items_key, field_name, ticked, most in (
            ("landscape", "optimizers", "parked_optimizers", len(landscape.optimizers), MAX_OPTIMIZERS),
            ("mnist", "runs", "parked_runs", len(runs), MAX_RUNS)):
        if view not in data:
            continue
        where = f"parked.{view}"
        part = data[view]
        _object(part, where, ("at", items_key))
        at, items = part.get("at", []), part.get(items_key, [])
        if not isinstance(at, list) or not isinstance(items, list) or len(at) != len(items):
            raise SessionError(where, f"expected \"at\" and \"{items_key}\" lists of the same length")
        if ticked + len(items) > most:
            raise SessionError(where, f"{ticked} ticked and {len(items)} unticked {items_key} are more than the "
                                      f"{most} a list holds")
        parked = []
        for i, (pos, item) in enumerate(zip(at, items)):
            if isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos < most:
                raise SessionError(f"{where}.at[{i}]", f"expected a place in the list (0 to {most - 1}), "
                                                       f"got {_kind(pos)}")
            item_where = f"{where}.{items_key}[{i}]"
            if not isinstance(item, Mapping):
                raise SessionError(item_where, f"expected an object {{...}}, got {_kind(item)}")
            if view == "landscape":
                try:
                    config: Any = OptimizerConfig.from_dict(item, item_where)
                except ConfigError as exc:
                    raise _relocated(exc, exc.field if exc.field.startswith(item_where) else item_where) from None
                _check_optimizer(config, item_where, landscape.steps)
            else:
                try:
                    config = TrainConfig.from_dict(item, item_where)
                except ConfigError as exc:
                    raise _relocated(exc, _run_field(exc, item_where)) from None
                _validate_run(config, item_where)
            parked.append((pos, config))
        out[field_name] = tuple(parked)
    return out


def _no_constants(name: str) -> Any:
    raise SessionError("file", f"{name} is not allowed in a session file (numbers must be finite)")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise SessionError(k, "appears twice in the same object")
        out[k] = v
    return out


def parse_session(text: str | bytes) -> Session:
    """A Session from JSON text. Refuses non-JSON, truncated files, NaN/Infinity and duplicate keys."""
    if isinstance(text, bytes):
        if len(text) > MAX_FILE_BYTES:
            raise SessionError("file", f"is {len(text):,} bytes; a session file is at most {MAX_FILE_BYTES:,}")
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SessionError("file", f"is not UTF-8 text (byte {exc.start}); not a session file") from None
    if not text.strip():
        raise SessionError("file", "is empty")
    try:
        data = json.loads(text, parse_constant=_no_constants, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        hint = " (the file ends too early: truncated?)" if exc.pos >= len(text.rstrip()) else ""
        # json's own messages may end in "at" ("Unterminated string starting at"): one "at" before the place
        what = re.sub(r"\s+at$", "", exc.msg.strip())
        raise SessionError("file", f"is not valid JSON: {what} at line {exc.lineno}, column {exc.colno}"
                                   f"{hint}") from None
    except RecursionError:
        raise SessionError("file", "is nested too deeply to be a session file") from None
    return session_from_dict(data)


def load_session(path: str | os.PathLike) -> Session:
    """Read and validate a session file. Raises SessionError (field "file" for I/O and JSON problems)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SessionError("file", f"is {size:,} bytes; a session file is at most {MAX_FILE_BYTES:,}")
        raw = p.read_bytes()
    except SessionError:
        raise
    except OSError as exc:
        raise SessionError("file", f"cannot read {p}: {exc.strerror or exc}") from None
    return parse_session(raw)


def save_session(session: Session, path: str | os.PathLike, stamp: bool = True,
                 views: tuple[str, ...] = VIEWS) -> Path:
    """Write atomically: a temporary file beside the target, fsync, then ``os.replace``.

    If anything fails the target is untouched (an existing file keeps its old content) and the
    temporary file is removed. Returns the path written.
    """
    p = Path(path)
    text = session.to_json(stamp, views)  # serialise before touching the disk: a bad value fails here
    return atomic_write_text(p, text)


def atomic_write_text(path: Path, text: str) -> Path:
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.chmod(tmp, 0o644 if not path.exists() else (path.stat().st_mode & 0o777))
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)
    return path


def _fsync_dir(folder: Path) -> None:
    try:  # make the rename itself durable where the platform allows it (not on Windows)
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- versions, recent files, the last session ------------------------------------------------------

def version_notes(session: Session) -> list[str]:
    """Human-readable differences between the versions that wrote the file and the running ones.

    Empty when the file records none or they match. Numbers can differ in the last digits across
    torch or numpy versions; the GUI can show these lines when a session is opened.
    """
    if not session.app:
        return []
    now = current_versions()
    notes = []
    for key in ("optiscope", "torch", "numpy", "python"):
        then = session.app.get(key)
        if then and now.get(key) and then != now[key]:
            notes.append(f"written with {key} {then}; running {key} {now[key]}")
    return notes


def push_recent(recent: list[str] | tuple[str, ...], path: str | os.PathLike, limit: int = 10) -> list[str]:
    """The recent-files list with ``path`` first, without duplicates, at most ``limit`` long."""
    p = str(Path(path).resolve())
    return [p] + [r for r in recent if r != p][: limit - 1]


def prune_recent(recent: list[str] | tuple[str, ...]) -> list[str]:
    """Only the recent files that still exist."""
    return [r for r in recent if Path(r).is_file()]


def state_dir() -> Path:
    """Where the app keeps its own state (the last session). ``OPTISCOPE_STATE_DIR`` overrides it."""
    override = os.environ.get("OPTISCOPE_STATE_DIR")
    if override:
        return Path(override)
    try:
        from platformdirs import user_state_dir
        return Path(user_state_dir("Optiscope", appauthor=False))
    except ImportError:  # platformdirs is a dependency; this is only a fallback
        return Path.home() / ".local" / "state" / "optiscope"


def last_session_path() -> Path:
    return state_dir() / "last-session.json"


def restore_last_session(path: str | os.PathLike | None = None) -> tuple[Session | None, str]:
    """(session, "") when the last session loads; (None, reason) when it is absent or refused.

    A refused file is kept aside as ``last-session.json.rejected`` so it is not lost and not retried.
    """
    p = Path(path) if path is not None else last_session_path()
    if not p.exists():
        return None, ""
    try:
        return load_session(p), ""
    except SessionError as exc:
        try:
            os.replace(p, p.with_name(p.name + ".rejected"))
        except OSError:
            pass
        return None, f"the last session could not be restored: {exc}"

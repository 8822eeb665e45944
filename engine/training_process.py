"""Training runs in worker processes, so that the process that draws never shares an interpreter lock with them.

Why a process: a Python thread training beside the GUI thread kept only a third to a half of its
throughput here (the two contend for the GIL at every small torch call), and the drawing stuttered.
A worker process has its own interpreter; the GUI process only unpickles small records and draws.

Protocol (one duplex ``multiprocessing`` Pipe per worker, 'spawn' context, so nothing of Qt is inherited):

- parent -> worker: ``("start", batch_id, [(job_index, Job), ...])``, ``("stop", batch_id, job_index | None)``,
  ``("quit",)``.
- worker -> parent: ``(batch_id, [(job_index, item), ...])`` every ``flush_s`` seconds at most, where item is
  a ``JobStarted``, a ``StepBlock`` (many TrainSteps, columnar), an ``EvalPoint``, a ``RunSummary``, a
  ``RangePoint`` block (``RangeBlock``), a ``RangeResult``, a ``JobFailed`` or a ``JobEnded``; in order per job.

A worker interleaves the jobs it was given, one step of each in turn, in one torch thread (runs stay
independent: see ``engine.training``). Workers are started once and kept for later batches (torch takes
seconds to import); ``shutdown`` asks them to quit, waits, and terminates any that do not.
``run_jobs_inline`` runs the same loop without a process, for scripts, tests and the benchmark.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Callable, Iterator, Sequence

import numpy as np

FLUSH_S = 0.025
# Torch threads for training. float32 sums come out different in the last bits according to how many threads
# split them, so the window's workers, the command line and a render all train on one: a run repeated on this
# machine gives the same numbers wherever it runs (several runs use several worker processes instead).
TRAINING_THREADS = 1
# Niceness added to the workers (0: none). A positive value lets the window's drawing come first on a busy
# machine, at the cost of training speed against every other process there.
WORKER_NICE = 0


@dataclass(frozen=True)
class Job:
    """One thing to run: a training run, or a learning-rate range test of a run's settings."""

    config: Any  # engine.training.TrainConfig (kept untyped here so the module imports without torch)
    kind: str = "train"  # "train" | "lr_range"
    lr_range: Any = None  # engine.lr_range.LRRangeConfig for kind "lr_range"


@dataclass(frozen=True)
class JobStarted:
    dataset: str
    n_train: int
    n_val: int
    n_test: int
    steps_per_epoch: int
    total_steps: int
    layer_names: tuple[str, ...]
    layer_stats_every: int
    load_s: float  # seconds spent loading and preparing the data for this job


@dataclass(frozen=True)
class JobFailed:
    message: str
    details: str
    field: str = ""  # the setting at fault, for a ConfigError
    kind: str = ""  # the exception's class name: ConfigError, DataSourceError, IdxError, ...


@dataclass(frozen=True)
class JobEnded:
    stopped: bool  # True: stopped on request before its end


@dataclass(frozen=True)
class StepBlock:
    """Consecutive TrainSteps of one run, column by column (cheap to pickle, ready to append)."""

    step: np.ndarray  # (K,) int64
    epoch: np.ndarray
    loss: np.ndarray
    lr: np.ndarray
    grad_norm: np.ndarray
    elapsed: np.ndarray
    layer_names: tuple[str, ...]
    layer_step: np.ndarray  # (M,) steps that carry layer statistics
    layer_grad: np.ndarray  # (M, L)
    layer_weight: np.ndarray  # (M, L)
    update_ratio: np.ndarray  # (M, L)

    @classmethod
    def from_steps(cls, steps: Sequence[Any]) -> "StepBlock":
        names = steps[0].layer_names
        width = len(names)
        with_stats = [s for s in steps if len(s.layer_grad_norms)]

        def col(attr: str) -> np.ndarray:
            return np.array([getattr(s, attr) for s in steps], dtype=np.float64)

        def layers(attr: str) -> np.ndarray:
            if not with_stats:
                return np.zeros((0, width))
            return np.stack([getattr(s, attr) for s in with_stats]).astype(np.float64, copy=False)

        return cls(np.array([s.step for s in steps], dtype=np.int64), col("epoch"), col("loss"), col("lr"),
                   col("grad_norm"), col("elapsed"), names,
                   np.array([s.step for s in with_stats], dtype=np.int64), layers("layer_grad_norms"),
                   layers("layer_weight_norms"), layers("update_ratios"))

    def __len__(self) -> int:
        return len(self.step)


@dataclass(frozen=True)
class RangeBlock:
    step: np.ndarray
    lr: np.ndarray
    loss: np.ndarray
    smoothed: np.ndarray

    @classmethod
    def from_points(cls, points: Sequence[Any]) -> "RangeBlock":
        return cls(np.array([p.step for p in points], dtype=np.int64),
                   *(np.array([getattr(p, a) for p in points], dtype=np.float64) for a in ("lr", "loss", "smoothed")))

    def __len__(self) -> int:
        return len(self.step)


# ---- the worker's side (also used inline) ------------------------------------------------------------


class _DataCache:
    """Loaded datasets by source, prepared splits by data_key: loaded once per worker, shared by its jobs."""

    def __init__(self) -> None:
        self.raw: dict[tuple, Any] = {}
        self.prepared: dict[tuple, Any] = {}

    def get(self, cfg: Any) -> Any:
        from .training import data_key, load_data, prepare_data

        key = data_key(cfg)
        if key not in self.prepared:
            source = key[:3]
            if source not in self.raw:
                self.raw[source] = load_data(cfg)
            self.prepared[key] = prepare_data(cfg, self.raw[source])
        return self.prepared[key]


DataCache = _DataCache  # for callers that load the data before running jobs inline (the CLI checks settings)


def _job_records(job: Job, cache: _DataCache) -> Iterator[Any]:
    from .training import layer_stats_interval, run_training, steps_per_epoch

    t0 = time.perf_counter()
    cfg = job.config
    cfg.validate()
    data = cache.get(cfg)
    if job.kind == "lr_range":
        from .lr_range import run_lr_range

        yield JobStarted(data.name, len(data.x_train), len(data.x_val), 0 if data.x_test is None else len(data.x_test),
                         0, job.lr_range.steps, (), 0, time.perf_counter() - t0)
        yield from run_lr_range(cfg, job.lr_range, data)
        return
    if job.kind != "train":
        raise ValueError(f"unknown job kind {job.kind!r}")
    n_train = len(data.x_train)
    _, per_epoch = steps_per_epoch(cfg, n_train) if n_train else (0, 0)
    from .models import MODELS

    names = tuple(n.rsplit(".", 1)[0] for n, p in MODELS.get(cfg.model).build(cfg.model_params).named_parameters()
                  if p.dim() > 1)
    yield JobStarted(data.name, n_train, len(data.x_val), 0 if data.x_test is None else len(data.x_test),
                     per_epoch, per_epoch * cfg.epochs, names, layer_stats_interval(cfg, max(per_epoch, 1)),
                     time.perf_counter() - t0)
    yield from run_training(cfg, data)


def _failure(exc: BaseException) -> JobFailed:
    from .registry import ConfigError

    field_name = exc.field if isinstance(exc, ConfigError) else ""
    return JobFailed(str(exc) or type(exc).__name__, traceback.format_exc(), field_name, type(exc).__name__)


class _Interleaver:
    """Steps several jobs in turn; collects their records into ordered (job, item) lists."""

    def __init__(self, jobs: Sequence[tuple[int, Job]], cache: _DataCache):
        self.iters: dict[int, Iterator[Any]] = {index: _job_records(job, cache) for index, job in jobs}
        self.pending_steps: dict[int, list] = {index: [] for index, _ in jobs}
        self.pending_range: dict[int, list] = {index: [] for index, _ in jobs}
        self.out: list[tuple[int, Any]] = []

    @property
    def active(self) -> bool:
        return bool(self.iters)

    def _flush_job(self, index: int) -> None:
        steps = self.pending_steps.get(index)
        if steps:
            self.out.append((index, StepBlock.from_steps(steps)))
            steps.clear()
        points = self.pending_range.get(index)
        if points:
            self.out.append((index, RangeBlock.from_points(points)))
            points.clear()

    def take(self) -> list[tuple[int, Any]]:
        for index in list(self.pending_steps):
            self._flush_job(index)
        out, self.out = self.out, []
        return out

    def end(self, index: int, stopped: bool) -> None:
        if index in self.iters:
            self._flush_job(index)
            self.iters.pop(index).close()
            self.out.append((index, JobEnded(stopped)))

    def round(self) -> None:
        """One record from every active job."""
        from .lr_range import RangePoint
        from .training import TrainStep

        for index in list(self.iters):
            try:
                record = next(self.iters[index])
            except StopIteration:
                self.end(index, False)
                continue
            except Exception as exc:  # one failing run must not take the others down
                self._flush_job(index)
                self.out.append((index, _failure(exc)))
                self.iters.pop(index)
                self.out.append((index, JobEnded(False)))
                continue
            if isinstance(record, TrainStep):
                self.pending_steps[index].append(record)
            elif isinstance(record, RangePoint):
                self.pending_range[index].append(record)
            else:
                self._flush_job(index)
                self.out.append((index, record))


def run_jobs_inline(jobs: Sequence[Job], on_items: Callable[[list[tuple[int, Any]]], None] | None = None,
                    flush_s: float = FLUSH_S, threads: int | None = None, cache: "_DataCache | None" = None
                    ) -> list[tuple[int, Any]]:
    """Run ``jobs`` interleaved in this process, exactly as a worker does. Returns every item unless
    ``on_items`` takes them as they are flushed. ``cache``: data already loaded (``DataCache``), shared."""
    import torch

    torch.set_num_threads(threads or TRAINING_THREADS)  # the workers' count: the same numbers as the window
    inter = _Interleaver(list(enumerate(jobs)), cache if cache is not None else _DataCache())
    collected: list[tuple[int, Any]] = []
    last = time.perf_counter()
    while inter.active:
        inter.round()
        now = time.perf_counter()
        if now - last >= flush_s or not inter.active:
            items = inter.take()
            last = now
            if on_items is not None:
                on_items(items)
            else:
                collected += items
    return collected


def _worker_main(conn: Connection, threads: int, nice: int = 0) -> None:
    if nice and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            pass
    import torch

    torch.set_num_threads(threads)
    cache = _DataCache()
    pending = None
    try:
        while True:
            try:
                msg = pending if pending is not None else conn.recv()
            except EOFError:
                return
            pending = None
            if msg[0] == "quit":
                return
            if msg[0] != "start":
                continue  # a stop for a batch that has ended already
            pending = _run_batch(conn, msg[1], msg[2], cache)
    except (BrokenPipeError, ConnectionResetError, KeyboardInterrupt):
        return  # the parent went away


def _run_batch(conn: Connection, batch: int, jobs: list[tuple[int, Job]], cache: _DataCache) -> Any:
    """Run one batch; returns a message that ended it early ("quit", or the next "start"), else None."""
    inter = _Interleaver(jobs, cache)
    last = time.perf_counter()
    while inter.active:
        while conn.poll():
            msg = conn.recv()
            if msg[0] == "stop" and msg[1] == batch:
                for index in ([msg[2]] if msg[2] is not None else list(inter.iters)):
                    inter.end(index, True)
            elif msg[0] in ("quit", "start"):
                for index in list(inter.iters):
                    inter.end(index, True)
                conn.send((batch, inter.take()))
                return msg
        inter.round()
        now = time.perf_counter()
        if now - last >= FLUSH_S:
            items = inter.take()
            if items:
                conn.send((batch, items))
            last = now
    conn.send((batch, inter.take()))
    return None


# ---- the parent's side -----------------------------------------------------------------------------------


def default_workers(n_jobs: int) -> int:
    """One worker per job up to the cores less one (the GUI keeps a core); at least one."""
    cores = os.cpu_count() or 2
    return max(1, min(n_jobs, cores - 1))


@dataclass
class _Worker:
    process: Any
    conn: Connection
    jobs: list[int] = field(default_factory=list)  # global job indices of the current batch


class TrainingRunner:
    """Runs jobs in worker processes and hands back what they report. No Qt; poll it from a timer.

    ``start(jobs)`` begins a batch (stopping any current one: its late records are dropped).
    ``poll()`` returns the (job index, item) pairs that arrived, without blocking. ``stop()`` asks the
    current batch (or one job) to end; a ``JobEnded(stopped=True)`` follows for each. ``shutdown()``
    ends the workers and waits for them. A worker that dies is reported as a ``JobFailed`` for each of
    its unfinished jobs.
    """

    def __init__(self, workers: int | None = None, threads: int | None = None, nice: int = WORKER_NICE):
        self._ctx = mp.get_context("spawn")
        self._want_workers = workers
        self._threads = threads
        self._nice = nice
        self._workers: list[_Worker] = []
        self.batch = 0
        self._open: set[int] = set()  # jobs of the current batch that have not ended

    # -- lifecycle --
    def _spawn(self, threads: int) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=_worker_main, args=(child, threads, self._nice), name="optiscope-training",
                                    daemon=True)
        process.start()
        child.close()
        return _Worker(process, parent)

    def warm_up(self, n_jobs: int = 1) -> None:
        """Start the worker processes now (importing torch takes seconds), before the first ``start``."""
        want = self._want_workers or default_workers(n_jobs)
        threads = self._threads or TRAINING_THREADS
        self._workers = [w for w in self._workers if w.process.is_alive()]
        while len(self._workers) < want:
            self._workers.append(self._spawn(threads))

    def alive(self) -> bool:
        return any(w.process.is_alive() for w in self._workers)

    @property
    def running(self) -> bool:
        return bool(self._open)

    def start(self, jobs: Sequence[Job]) -> int:
        if self._open:
            self.stop()
        self.warm_up(len(jobs))
        self.batch += 1
        self._open = set(range(len(jobs)))
        workers = self._workers[: max(1, min(len(self._workers), self._want_workers or default_workers(len(jobs))))]
        for w in self._workers:
            w.jobs = []
        for index in range(len(jobs)):
            workers[index % len(workers)].jobs.append(index)
        for w in workers:
            if w.jobs:
                self._send(w, ("start", self.batch, [(i, jobs[i]) for i in w.jobs]))
        return self.batch

    def stop(self, job: int | None = None) -> None:
        for w in self._workers:
            if job is None or job in w.jobs:
                self._send(w, ("stop", self.batch, job))

    def _send(self, w: _Worker, msg: Any) -> None:
        try:
            w.conn.send(msg)
        except (BrokenPipeError, OSError):
            pass  # reported by poll() as a dead worker

    def poll(self) -> list[tuple[int, Any]]:
        out: list[tuple[int, Any]] = []
        for w in self._workers:
            try:
                while w.conn.poll():
                    batch, items = w.conn.recv()
                    if batch == self.batch:
                        out += items
            except (EOFError, OSError):
                pass
            if not w.process.is_alive() and w.jobs:
                for index in w.jobs:
                    if index in self._open:
                        code = w.process.exitcode
                        out.append((index, JobFailed(f"the training process ended unexpectedly (exit code {code})",
                                                     "")))
                        out.append((index, JobEnded(False)))
                w.jobs = []
        for index, item in out:
            if isinstance(item, JobEnded):
                self._open.discard(index)
        self._workers = [w for w in self._workers if w.process.is_alive() or w.jobs]
        return out

    def wait(self, timeout: float = 60.0, on_items: Callable[[list[tuple[int, Any]]], None] | None = None
             ) -> list[tuple[int, Any]]:
        """Block until every job of the current batch has ended (or ``timeout``); for scripts and tests."""
        from multiprocessing.connection import wait as wait_conns

        collected: list[tuple[int, Any]] = []
        end = time.perf_counter() + timeout
        while self._open and time.perf_counter() < end:
            wait_conns([w.conn for w in self._workers] + [w.process.sentinel for w in self._workers], 0.05)
            items = self.poll()
            if on_items is not None:
                on_items(items)
            else:
                collected += items
        return collected

    def shutdown(self, timeout: float = 3.0) -> None:
        """Ask every worker to quit, wait up to ``timeout`` s, then terminate and reap what is left."""
        self._open.clear()
        for w in self._workers:
            self._send(w, ("quit",))
        end = time.perf_counter() + timeout
        for w in self._workers:
            while w.process.is_alive() and time.perf_counter() < end:
                try:  # keep the pipe drained so a worker blocked in send() can read "quit"
                    while w.conn.poll():
                        w.conn.recv()
                except (EOFError, OSError):
                    pass
                w.process.join(0.02)
        for w in self._workers:
            if w.process.is_alive():
                w.process.terminate()
                w.process.join(2.0)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(2.0)
            w.conn.close()
            if not w.process.is_alive():
                w.process.close()
        self._workers = []

"""The worker-process protocol: jobs interleaved in a process give the same records as run alone; stop,
failures, a dead worker and shutdown are reported and leave nothing running."""
import multiprocessing as mp
from collections import defaultdict

import numpy as np
import pytest
import torch

from engine.config import OptimizerConfig
from engine.lr_range import LRRangeConfig, RangeResult
from engine.training import EvalPoint, RunSummary, TrainConfig, TrainStep, run_training
from engine.training_process import (Job, JobEnded, JobFailed, JobStarted, RangeBlock, StepBlock, TrainingRunner,
                                     run_jobs_inline)


def small(name="adam", **kw):
    base = dict(optimizer=OptimizerConfig(name, {"lr": 1e-3 if name != "sgd" else 0.05}), epochs=2, train_size=300,
                batch_size=50, seed=4)
    base.update(kw)
    return TrainConfig(**base)


def by_job(items):
    out = defaultdict(list)
    for job, item in items:
        out[job].append(item)
    return out


def losses(records):
    return np.concatenate([r.loss for r in records if isinstance(r, StepBlock)])


def test_inline_jobs_report_in_order_and_match_runs_alone():
    jobs = [Job(small("adam")), Job(small("sgd")), Job(small("adam", model_params={"dropout": 0.5}))]
    got = by_job(run_jobs_inline(jobs))
    assert sorted(got) == [0, 1, 2]
    for k, job in enumerate(jobs):
        records = got[k]
        assert isinstance(records[0], JobStarted) and records[0].steps_per_epoch == 6
        assert isinstance(records[-1], JobEnded) and not records[-1].stopped
        assert isinstance(records[-2], RunSummary)
        assert [type(r) for r in records if isinstance(r, EvalPoint)] == [EvalPoint, EvalPoint]
        alone = [r.loss for r in run_training(job.config) if isinstance(r, TrainStep)]
        # Interleaved with other runs (dropout included) and yet the very same losses.
        np.testing.assert_array_equal(losses(records), alone)
        steps = np.concatenate([r.step for r in records if isinstance(r, StepBlock)])
        assert steps.tolist() == list(range(1, 13))


def test_step_blocks_carry_layer_statistics_where_they_were_taken():
    cfg = small(layer_stats_every=4)
    blocks = [r for _, r in run_jobs_inline([Job(cfg)]) if isinstance(r, StepBlock)]
    layer_steps = np.concatenate([b.layer_step for b in blocks])
    assert layer_steps.tolist() == [1, 5, 9]
    grads = np.concatenate([b.layer_grad for b in blocks])
    assert grads.shape == (3, 2) and (grads > 0).all()


def test_a_failing_job_is_reported_and_the_others_go_on():
    jobs = [Job(small()), Job(small(dataset="idx_folder", dataset_path="/no/such/folder")),
            Job(small(epochs=1, model_params={"hidden": 3}))]
    got = by_job(run_jobs_inline(jobs))
    assert isinstance(got[0][-2], RunSummary)
    failed = [r for r in got[1] if isinstance(r, JobFailed)]
    assert failed and "not a folder" in failed[0].message and failed[0].kind == "DataSourceError"
    bad = [r for r in got[2] if isinstance(r, JobFailed)][0]
    assert bad.kind == "ConfigError" and bad.field == "model mlp.hidden"
    assert all(isinstance(got[k][-1], JobEnded) for k in range(3))


def test_lr_range_jobs_send_blocks_then_the_result():
    got = by_job(run_jobs_inline([Job(small(), "lr_range", LRRangeConfig(steps=30))]))[0]
    blocks = [r for r in got if isinstance(r, RangeBlock)]
    assert sum(len(b) for b in blocks) >= 10
    assert isinstance(got[-2], RangeResult) and isinstance(got[-1], JobEnded)


@pytest.fixture
def runner(shared_runner):
    return shared_runner


def test_the_process_gives_the_same_records_as_inline(runner):
    jobs = [Job(small("adam")), Job(small("rmsprop"))]
    runner.start(jobs)
    got = by_job(runner.wait(120))
    assert not runner.running
    torch.set_num_threads(2)  # whatever this process had: training uses the workers' one thread
    inline = by_job(run_jobs_inline(jobs))
    for k in range(2):
        # Equal to the last bit: a run's numbers do not depend on where it was trained.
        assert losses(got[k]).tolist() == losses(inline[k]).tolist()
        assert got[k][-2].best_val_loss == inline[k][-2].best_val_loss


def test_stop_ends_every_job_early_and_the_worker_stays_for_the_next_batch(runner):
    long = [Job(small(epochs=500)), Job(small("sgd", epochs=500))]
    runner.start(long)
    seen = []
    while not any(isinstance(item, StepBlock) for _, item in seen):
        seen += runner.wait(0.2)
    runner.stop()
    rest = by_job(seen + runner.wait(60))
    assert not runner.running
    for k in range(2):
        assert isinstance(rest[k][-1], JobEnded) and rest[k][-1].stopped
        assert not any(isinstance(r, RunSummary) for r in rest[k])
    assert runner.alive()
    runner.start([Job(small(epochs=1))])
    again = by_job(runner.wait(60))
    assert isinstance(again[0][-2], RunSummary)


def test_a_new_batch_drops_the_late_records_of_the_old_one(runner):
    runner.start([Job(small(epochs=500))])
    runner.start([Job(small("sgd", epochs=1))])
    got = by_job(runner.wait(60))
    assert list(got) == [0]
    summary = got[0][-2]
    assert isinstance(summary, RunSummary) and summary.steps == 6  # the one-epoch run's, not the long one's


def test_a_dead_worker_is_reported_and_shutdown_leaves_nothing_running():
    r = TrainingRunner(workers=1, threads=1)
    r.start([Job(small(epochs=500)), Job(small(epochs=500))])
    while not any(isinstance(item, StepBlock) for _, item in r.wait(0.2)):
        pass
    process = r._workers[0].process
    process.kill()
    got = by_job(r.wait(30))
    for k in range(2):
        failed = [x for x in got[k] if isinstance(x, JobFailed)]
        assert failed and "ended unexpectedly" in failed[0].message
    assert not r.running
    r.shutdown()
    assert not r.alive()
    assert process not in mp.active_children()


def test_shutdown_mid_run_joins_the_worker():
    r = TrainingRunner(workers=1, threads=1)
    r.start([Job(small(epochs=500))])
    r.shutdown(timeout=5)
    assert not r.alive()
    assert r.poll() == []

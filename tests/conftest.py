"""Test-wide settings. OpenMP threads that spin while idle slow everything 10x on a busy 2-core machine."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def shared_runner():
    """One training worker process for a module: importing torch in it takes seconds."""
    from engine.training_process import TrainingRunner

    runner = TrainingRunner(workers=1, threads=1)
    runner.warm_up(1)
    yield runner
    runner.shutdown()
    assert not runner.alive()

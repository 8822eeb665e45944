"""The worker that runs an engine generator off the GUI thread: how far it may run ahead."""
import numpy as np

from gui.worker import GeneratorWorker


def _records(made, size_bytes):
    def gen():
        while True:
            made.append(1)
            yield np.zeros(size_bytes // 8)
    return gen


def test_the_run_ahead_is_bounded_by_bytes_as_well_as_by_records(qtbot):
    made = []
    w = GeneratorWorker(_records(made, 1_000_000), capacity=4096, max_bytes=10_000_000,
                        sizeof=lambda r: r.nbytes)
    w.start()
    qtbot.waitUntil(lambda: w.pending() == 10, timeout=10_000)
    assert w.capacity == 10, "10 MB of 1 MB records, not 4,096 of them"
    assert len(made) <= 11, "one record more at most, waiting for room"
    assert len(w.take(4)) == 4
    qtbot.waitUntil(lambda: w.pending() == 10, timeout=10_000)
    w.stop()
    assert not w.isRunning() and w.pending() == 0, "a stopped worker gives back what it ran ahead"


def test_the_record_bound_holds_when_records_are_small(qtbot):
    made = []
    w = GeneratorWorker(_records(made, 80), capacity=16, max_bytes=10_000_000, sizeof=lambda r: r.nbytes)
    w.start()
    qtbot.waitUntil(lambda: w.pending() == 16, timeout=10_000)
    assert w.capacity == 16 and len(made) <= 17
    w.stop()


def test_a_huge_record_still_runs_two_ahead(qtbot):
    w = GeneratorWorker(_records([], 800), capacity=4096, max_bytes=100, sizeof=lambda r: r.nbytes)
    w.start()
    qtbot.waitUntil(lambda: w.pending() == 2, timeout=10_000)
    assert w.capacity == 2
    w.stop()

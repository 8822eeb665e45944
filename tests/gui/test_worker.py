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


def _tail_blocked_worker(gate):
    """A worker whose thread is still running after its generator ended and its records were taken (what
    happens for a moment after every computation: ``exhausted`` is set, then ``done`` emitted, then run()
    returns). The gate holds it in that moment."""
    from PySide6.QtCore import Qt

    w = GeneratorWorker(lambda: iter([1]), capacity=None)
    w.done.connect(lambda: gate.wait(10), Qt.DirectConnection)  # runs on the worker's thread
    w.start()
    return w


def test_a_worker_is_not_finished_while_its_thread_still_runs(qtbot):
    import threading

    gate = threading.Event()
    w = _tail_blocked_worker(gate)
    qtbot.waitUntil(lambda: w.exhausted, timeout=5_000)
    assert w.take() == [1] and w.isRunning()
    assert not w.finished_and_drained()  # dropping it now would abort the process
    gate.set()
    qtbot.waitUntil(w.finished_and_drained, timeout=5_000)


def test_a_job_started_again_keeps_the_previous_thread_until_it_ends(window, qtbot):
    import threading

    from gui.explore_panel import _Job

    panel = window.explore
    job = _Job(panel, panel.basin_progress, panel.basin_button, "Compute basins")
    gate = threading.Event()
    first = _tail_blocked_worker(gate)
    job.worker = first
    qtbot.waitUntil(lambda: first.exhausted, timeout=5_000)
    job.start(lambda: iter([2]), lambda record: None)  # B starts the moment A's result is shown
    assert job._stopping == [first] and first.isRunning()
    gate.set()
    qtbot.waitUntil(lambda: job._stopping == [], timeout=5_000)
    job.worker.wait(5_000)
    job.poll()
    assert job.worker is None


def test_the_button_stays_cancel_while_a_second_map_is_queued(window, qtbot):
    from gui.explore_panel import _Job

    panel = window.explore
    queued = [True]
    job = _Job(panel, panel.basin_progress, panel.basin_button, "Compute basins", more=lambda: queued[0])
    job.start(lambda: iter([1]), lambda record: None)
    qtbot.waitUntil(job.worker.isFinished, timeout=5_000)
    job.poll()
    assert job.worker is None and panel.basin_button.text() == "Cancel"  # B is next: a click cancels, as it says
    queued[0] = False
    job.start(lambda: iter([2]), lambda record: None)
    qtbot.waitUntil(job.worker.isFinished, timeout=5_000)
    job.poll()
    assert panel.basin_button.text() == "Compute basins"

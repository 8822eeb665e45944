"""Engine tests share one fixture: a single torch thread for the modules that step many small tensors."""
import pytest
import torch

ONE_THREAD_MODULES = ("test_basins", "test_sweep", "test_minibatch")


@pytest.fixture(autouse=True, scope="module")
def one_thread(request):
    """One torch thread, as the app runs on two cores (gui/app.py leaves the GUI a core). On tensors
    this small a second OpenMP thread only spin-waits, and against any other load on the machine
    that makes runs tens of times slower."""
    if request.module.__name__.rsplit(".", 1)[-1] not in ONE_THREAD_MODULES:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

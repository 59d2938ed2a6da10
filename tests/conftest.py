import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The unit tests run tiny networks: one thread is fastest, and two threads on a busy 2-core machine
    (or beside another pytest-xdist worker) can be tens of times slower from spin-waiting."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def no_profile_override(monkeypatch):
    """``tests/run.sh`` exports ``CVTUTOR_PROFILE=fast`` for the notebooks; a unit test that asks for
    ``Config.for_profile("full")`` must get ``full`` (tests of the override set it themselves)."""
    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)

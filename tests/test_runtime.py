import random

import numpy as np
import pytest
import torch

from cvtutor import runtime


def test_profiles_resolve(monkeypatch):
    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    assert runtime.resolve_profile("fast") == "fast"
    assert runtime.resolve_profile("FULL") == "full"
    expected = "full" if torch.cuda.is_available() else "fast"
    assert runtime.resolve_profile("auto") == expected
    assert runtime.resolve_profile(None) == expected


def test_environment_overrides_profile(monkeypatch):
    monkeypatch.setenv("CVTUTOR_PROFILE", "full")
    assert runtime.resolve_profile("fast") == "full"


@pytest.mark.parametrize("bad", ["quick", "gpu", "fastest"])
def test_unknown_profile_names_the_valid_ones(monkeypatch, bad):
    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    with pytest.raises(ValueError, match=r"expected one of \('fast', 'full', 'auto', 'smoke'\)"):
        runtime.resolve_profile(bad)


def test_bad_env_profile_is_named(monkeypatch):
    monkeypatch.setenv("CVTUTOR_PROFILE", "turbo")
    with pytest.raises(ValueError, match="CVTUTOR_PROFILE='turbo'"):
        runtime.resolve_profile("fast")


def test_device_choice(monkeypatch):
    monkeypatch.delenv("CVTUTOR_DEVICE", raising=False)
    dev = runtime.get_device()
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    elif torch.backends.mps.is_available():
        assert dev.type == "mps"
    else:
        assert dev.type == "cpu"
    monkeypatch.setenv("CVTUTOR_DEVICE", "cpu")
    assert runtime.get_device() == torch.device("cpu")


def test_unavailable_or_bogus_device_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("CVTUTOR_DEVICE", raising=False)
    with pytest.raises(ValueError, match="not a torch device"):
        runtime.get_device("tpu-ish")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            runtime.get_device("cuda")


def test_seed_everything_repeats_every_generator():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    runtime.seed_everything(123)
    a = draw()
    runtime.seed_everything(123)
    b = draw()
    runtime.seed_everything(124)
    c = draw()
    assert a == b
    assert a != c


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_seed(bad):
    with pytest.raises(ValueError, match="non-negative int"):
        runtime.seed_everything(bad)


def test_setup_prints_what_it_resolved(monkeypatch, capsys):
    monkeypatch.setenv("CVTUTOR_PROFILE", "fast")
    monkeypatch.setenv("CVTUTOR_DEVICE", "cpu")
    rt = runtime.setup("full", seed=7)
    out = capsys.readouterr().out
    assert rt.profile == "fast" and rt.device.type == "cpu" and rt.seed == 7
    for word in ("profile=fast", "device=cpu", "seed=7", "torch", "numpy", "python"):
        assert word in out
    assert rt.amp_dtype is None


def test_autocast_is_bf16_only_on_cuda():
    with runtime.autocast("cpu"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_progress_mode(monkeypatch):
    monkeypatch.setenv("CVTUTOR_PROGRESS", "text")
    assert runtime.progress_mode() == "text"
    monkeypatch.setenv("CVTUTOR_PROGRESS", "fancy")
    with pytest.raises(ValueError, match="auto.*text.*off"):
        runtime.progress_mode()


def test_profile_config(monkeypatch):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Config(runtime.ProfileConfig):
        n: int = 1

        @classmethod
        def fast(cls):
            return cls(n=1)

        @classmethod
        def full(cls):
            return cls(n=100)

    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    assert Config.for_profile("fast").n == 1
    assert Config.for_profile("full").n == 100
    assert Config.fast().replace(n=5).n == 5
    with pytest.raises(TypeError, match="no field"):
        Config.fast().replace(m=5)


# ---------------------------------------------------------------------------------------------
# smoke profile, determinism, how a Config shows in a notebook
# ---------------------------------------------------------------------------------------------
from dataclasses import dataclass  # noqa: E402


@dataclass
class _Cfg(runtime.ProfileConfig):
    steps: int = 10
    lr: float = 1e-3
    name: str = "a <b>"
    seeds: tuple = (0, 1)

    @classmethod
    def fast(cls):
        return cls()

    @classmethod
    def full(cls):
        return cls(steps=1000)


@dataclass
class _CfgSmoke(_Cfg):
    @classmethod
    def smoke(cls):
        return cls(steps=2)


def test_smoke_is_never_autos_choice(monkeypatch):
    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    for cuda in (True, False):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        assert runtime.resolve_profile("auto") == ("full" if cuda else "fast")
        assert runtime.resolve_profile(None) != "smoke"
    assert runtime.resolve_profile("smoke") == "smoke"
    monkeypatch.setenv("CVTUTOR_PROFILE", "smoke")
    assert runtime.resolve_profile("fast") == "smoke"


def test_for_profile_smoke(monkeypatch):
    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    assert _CfgSmoke.for_profile("smoke").steps == 2
    assert _CfgSmoke.for_profile("full").steps == 1000 and _CfgSmoke.for_profile("fast").steps == 10
    with pytest.raises(ValueError, match=r"_Cfg has no smoke\(\) profile"):
        _Cfg.for_profile("smoke")


def test_config_replace():
    c = _Cfg().replace(steps=3)
    assert c.steps == 3 and c.lr == 1e-3
    with pytest.raises(TypeError, match=r"no field\(s\) \['stepz'\]"):
        _Cfg().replace(stepz=3)


def test_config_displays_one_field_a_line():
    c = _Cfg()
    text = str(c)
    assert text.splitlines() == ["_Cfg:", "  steps = 10", "  lr    = 0.001", "  name  = 'a <b>'", "  seeds = (0, 1)"]
    assert repr(c).startswith("_Cfg(steps=10")  # repr() stays the dataclass's
    html = c._repr_html_()
    assert html.count("<tr>") == 5  # header + 4 fields
    assert "<th>field</th><th>value</th>" in html and "&lt;b&gt;" in html and "<b>" not in html


def test_config_as_last_line_of_a_cell_is_not_one_long_line():
    IPython = pytest.importorskip("IPython")
    from IPython.core.formatters import DisplayFormatter

    data, _ = DisplayFormatter().format(_Cfg(name="x" * 40, seeds=tuple(range(20))))
    assert "text/html" in data
    assert max(len(line) for line in data["text/plain"].splitlines()) < 120
    assert len(data["text/plain"].splitlines()) == 5


def test_deterministic_flag(monkeypatch):
    try:
        runtime.set_deterministic(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.benchmark is False and torch.backends.cudnn.deterministic is True
        import os

        assert os.environ.get("CUBLAS_WORKSPACE_CONFIG")
        runtime.set_deterministic(False)
        assert not torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic is False
        runtime.setup("fast", seed=0, device="cpu", verbose=False)
        assert torch.are_deterministic_algorithms_enabled()
        runtime.setup("fast", seed=0, device="cpu", verbose=False, deterministic=False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        runtime.set_deterministic(False)


def _short_run():
    from torch import nn

    from cvtutor import train

    runtime.setup("fast", seed=5, device="cpu", verbose=False)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Dropout(0.3), nn.Flatten(), nn.Linear(4 * 6 * 6, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(32, 1, 8, 8), torch.randn(32, 1)
    hist = train.fit(model, opt, train.minibatches(x, y, batch_size=8), lambda m, b, s: {
        "loss": ((m["model"](b[0]) - b[1]) ** 2).mean()}, steps=12, progress=False)
    return hist, model.state_dict()


def test_two_cpu_runs_after_setup_are_bit_identical():
    try:
        h1, w1 = _short_run()
        h2, w2 = _short_run()
    finally:
        runtime.set_deterministic(False)
    assert h1["loss"].tolist() == h2["loss"].tolist()
    for k in w1:
        assert torch.equal(w1[k], w2[k]), k

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
    with pytest.raises(ValueError, match=r"expected one of \('fast', 'full', 'auto'\)"):
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

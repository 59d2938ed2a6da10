import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
import torch
from torch import nn

from cvtutor import train
from cvtutor.runtime import seed_everything


def make_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 5, generator=g)
    y = x @ torch.randn(5, 1, generator=g) + 0.1 * torch.randn(64, 1, generator=g)
    return x, y


def make_model():
    # dropout makes the run consume the global RNG, so resume must restore it
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))


def mse(models, batch, step):
    x, y = batch
    pred = models["model"](x)
    return {"loss": ((pred - y) ** 2).mean(), "mae": (pred - y).abs().mean().detach()}


def run(steps, ckpt=None, every=None, fail_at=None, progress=False):
    seed_everything(0)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=20, gamma=0.5)
    x, y = make_problem()

    def loss_fn(models, batch, step):
        if fail_at is not None and step == fail_at:
            raise KeyboardInterrupt("simulated interruption")
        return mse(models, batch, step)

    hist = train.fit(model, opt, train.minibatches(x, y, batch_size=16, seed=3), loss_fn, steps=steps,
                     schedulers=sched, checkpoint_dir=ckpt, checkpoint_every=every, progress=progress)
    return model, hist


def test_fit_learns_and_returns_history():
    model, hist = run(60)
    assert isinstance(hist, pd.DataFrame)
    assert list(hist.columns) == ["step", "loss", "mae"]
    assert hist["step"].tolist() == list(range(1, 61))
    assert hist["loss"].iloc[-10:].mean() < hist["loss"].iloc[:10].mean() / 2


def test_resume_equals_uninterrupted(tmp_path):
    straight, hist_a = run(30)
    with pytest.raises(KeyboardInterrupt):
        run(30, ckpt=tmp_path, every=5, fail_at=17)
    assert [p.name for p in train.checkpoints(tmp_path)] == ["ckpt-00000010.pt", "ckpt-00000015.pt"]
    resumed, hist_b = run(30, ckpt=tmp_path, every=5)
    assert hist_b.attrs["resumed_from"] == 15
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    pd.testing.assert_frame_equal(hist_a, hist_b)


def test_finished_run_is_not_repeated(tmp_path):
    run(10, ckpt=tmp_path, every=5)
    _, hist = run(10, ckpt=tmp_path, every=5)
    assert hist.attrs["resumed_from"] == 10 and len(hist) == 10


def test_checkpoint_is_loaded_with_weights_only(tmp_path, monkeypatch):
    run(5, ckpt=tmp_path, every=5)
    seen = {}
    real = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    state = train.latest_checkpoint(tmp_path)
    assert seen.get("weights_only") is True
    assert state["step"] == 5 and set(state) >= {"models", "optimizers", "rng", "history"}


def test_failed_write_leaves_previous_checkpoint(tmp_path, monkeypatch):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train.save_checkpoint(tmp_path, 1, {"model": model}, {"optimizer": opt})
    real_save = torch.save

    def half_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_save)
    with pytest.raises(OSError, match="disk full"):
        train.save_checkpoint(tmp_path, 2, {"model": model}, {"optimizer": opt})
    monkeypatch.setattr(torch, "save", real_save)
    assert [p.name for p in train.checkpoints(tmp_path)] == ["ckpt-00000001.pt"]
    assert not list(tmp_path.glob("*.tmp"))
    assert train.latest_checkpoint(tmp_path)["step"] == 1


def test_killed_write_leaves_previous_checkpoint_loadable(tmp_path):
    """A process killed (SIGKILL) while writing a large checkpoint leaves the previous one intact."""
    script = textwrap.dedent(f"""
        import torch
        from torch import nn
        from cvtutor import train
        small = nn.Linear(2, 2)
        opt = torch.optim.SGD(small.parameters(), lr=0.1)
        train.save_checkpoint({str(tmp_path)!r}, 1, {{"model": small}}, {{"optimizer": opt}})
        print("first", flush=True)
        big = nn.Linear(4000, 4000)   # 64 MB: the write takes a while
        opt = torch.optim.SGD(big.parameters(), lr=0.1)
        while True:
            train.save_checkpoint({str(tmp_path)!r}, 2, {{"model": big}}, {{"optimizer": opt}}, keep=5)
            (__import__("pathlib").Path({str(tmp_path)!r}) / "ckpt-00000002.pt").unlink()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "first"
    deadline = time.time() + 60
    while not list(tmp_path.glob("*.tmp")) and time.time() < deadline:
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    names = [p.name for p in train.checkpoints(tmp_path)]
    assert "ckpt-00000001.pt" in names
    state = train.load_checkpoint(tmp_path / "ckpt-00000001.pt")
    assert state["step"] == 1
    latest = train.latest_checkpoint(tmp_path)
    assert latest is not None and latest["step"] in (1, 2)


def test_corrupt_latest_is_skipped_with_warning(tmp_path):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train.save_checkpoint(tmp_path, 1, {"model": model}, {"optimizer": opt})
    (tmp_path / "ckpt-00000002.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable checkpoint"):
        assert train.latest_checkpoint(tmp_path)["step"] == 1


def test_keep_only_newest(tmp_path):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for s in range(1, 6):
        train.save_checkpoint(tmp_path, s, {"model": model}, {"optimizer": opt}, keep=2)
    assert [p.name for p in train.checkpoints(tmp_path)] == ["ckpt-00000004.pt", "ckpt-00000005.pt"]


def test_minibatches_are_a_function_of_the_step():
    x = torch.arange(10).float()
    a = train.minibatches(x, batch_size=4, seed=1)
    b = train.minibatches(x, batch_size=4, seed=1)
    assert a.steps_per_epoch == 2
    assert torch.equal(a(5)[0], b(5)[0])
    epoch0 = torch.cat([a(0)[0], a(1)[0]])
    assert len(set(epoch0.tolist())) == 8  # no repeats within an epoch
    assert not torch.equal(a(0)[0], train.minibatches(x, batch_size=4, seed=2)(0)[0])


def test_bad_inputs_are_clear():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = make_problem()
    batches = train.minibatches(x, y, batch_size=8)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        train.fit(model, opt, batches, mse, steps=0, progress=False)
    with pytest.raises(ValueError, match="checkpoint_every needs a checkpoint_dir"):
        train.fit(model, opt, batches, mse, steps=2, checkpoint_every=1, progress=False)
    with pytest.raises(TypeError, match="dict of named loss terms"):
        train.fit(model, opt, batches, lambda m, b, s: 1.0, steps=2, progress=False)
    with pytest.raises(TypeError, match="requires grad"):
        train.fit(model, opt, batches, lambda m, b, s: {"loss": torch.tensor(1.0)}, steps=2, progress=False)
    with pytest.raises(FloatingPointError, match="non-finite loss at step 0"):
        train.fit(model, opt, batches, lambda m, b, s: {"loss": m["model"](b[0]).sum() * float("nan")},
                  steps=2, progress=False)
    with pytest.raises(ValueError, match="same first dimension"):
        train.minibatches(x, y[:3], batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        train.minibatches(x, batch_size=1000)
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        train.load_checkpoint("/nonexistent/ckpt-00000001.pt")


def test_sum_of_terms_is_backpropagated_without_a_loss_key():
    seed_everything(0)
    model = nn.Linear(5, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    x, y = make_problem()
    hist = train.fit(model, opt, [(x, y)], lambda m, b, s: {"a": m["model"](b[0]).pow(2).mean(),
                                                            "b": m["model"](b[0]).abs().mean()},
                     steps=3, progress=False)
    assert list(hist.columns) == ["step", "a", "b", "loss"]
    assert torch.allclose(torch.tensor(hist["loss"].values), torch.tensor((hist["a"] + hist["b"]).values))


def test_manual_mode_and_grad_clip():
    seed_everything(0)
    gen, disc = nn.Linear(2, 2), nn.Linear(2, 1)
    og = torch.optim.SGD(gen.parameters(), lr=0.1)
    od = torch.optim.SGD(disc.parameters(), lr=0.1)

    def gan_like(models, batch, step):
        d_loss = models["disc"](models["gen"](batch).detach()).mean()
        train.backward_and_step(d_loss, od, grad_clip=1.0)
        g_loss = -models["disc"](models["gen"](batch)).mean()
        train.backward_and_step(g_loss, og)
        return {"d": d_loss.detach(), "g": g_loss.detach()}

    hist = train.fit({"gen": gen, "disc": disc}, {"g": og, "d": od}, lambda s: torch.randn(8, 2), gan_like,
                     steps=4, manual=True, progress=False)
    assert list(hist.columns) == ["step", "d", "g"]

    # clipping bounds the update of a huge gradient
    w = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        w.weight.fill_(0.0)
    opt = torch.optim.SGD(w.parameters(), lr=1.0)
    train.fit(w, opt, [torch.ones(1, 1)], lambda m, b, s: {"loss": 1e6 * m["model"](b).sum()}, steps=1,
              grad_clip=0.5, progress=False)
    assert abs(float(w.weight.detach())) == pytest.approx(0.5)


def test_rng_state_round_trip():
    state = train.rng_state()
    a = (torch.rand(3), __import__("numpy").random.rand(3), __import__("random").random())
    train.set_rng_state(state)
    b = (torch.rand(3), __import__("numpy").random.rand(3), __import__("random").random())
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2]


def test_text_progress_bar(monkeypatch, capsys):
    monkeypatch.setenv("CVTUTOR_PROGRESS", "text")
    run(5, progress=True)
    err = capsys.readouterr().err
    assert "5/5" in err

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


def test_text_progress_is_one_summary_line(monkeypatch, capsys):
    monkeypatch.setenv("CVTUTOR_PROGRESS", "text")
    run(50, progress=True)
    out = capsys.readouterr()
    lines = [ln for ln in (out.err + out.out).replace("\r", "\n").splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("fit: 50/50 steps in ") and ", loss " in lines[0]


def test_text_progress_after_resume_says_so(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("CVTUTOR_PROGRESS", "text")
    run(10, ckpt=tmp_path, every=5)
    capsys.readouterr()
    run(10, ckpt=tmp_path, every=5, progress=True)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "10/10 steps (resumed at 10)" in lines[0]


def test_progress_off_prints_nothing(monkeypatch, capsys):
    monkeypatch.setenv("CVTUTOR_PROGRESS", "text")
    run(5, progress=False)
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""


def reference_history(steps, log_every=1):
    """The loop written out by hand: what fit's history must equal."""
    seed_everything(0)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=20, gamma=0.5)
    x, y = make_problem()
    batches = train.minibatches(x, y, batch_size=16, seed=3)
    rows = []
    model.train()
    for step in range(steps):
        terms = mse({"model": model}, batches(step), step)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        sched.step()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            rows.append({"step": step + 1, "loss": terms["loss"].item(), "mae": terms["mae"].item()})
    return model, pd.DataFrame(rows)


def fit_plain(steps, **kw):
    seed_everything(0)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=20, gamma=0.5)
    x, y = make_problem()
    hist = train.fit(model, opt, train.minibatches(x, y, batch_size=16, seed=3), mse, steps=steps,
                     schedulers=sched, progress=False, **kw)
    return model, hist


@pytest.mark.parametrize("sync_every", [None, 1, 4, 7, 100])
@pytest.mark.parametrize("log_every", [1, 3, 23])
def test_history_equals_reference_loop_at_every_cadence(sync_every, log_every):
    ref_model, ref = reference_history(23, log_every)
    model, hist = fit_plain(23, log_every=log_every, sync_every=sync_every)
    pd.testing.assert_frame_equal(hist, ref)
    for a, b in zip(ref_model.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)


def test_log_every_rows_exactly():
    _, hist = fit_plain(10, log_every=3)
    assert hist["step"].tolist() == [3, 6, 9, 10]
    _, hist = fit_plain(9, log_every=3)
    assert hist["step"].tolist() == [3, 6, 9]
    _, hist = fit_plain(2, log_every=3)
    assert hist["step"].tolist() == [2]


def test_terms_are_read_once_per_sync_not_per_step(monkeypatch):
    reads = []
    real = torch.Tensor.tolist

    def spy(self):
        reads.append(self.numel())
        return real(self)

    monkeypatch.setattr(torch.Tensor, "tolist", spy)
    fit_plain(10, sync_every=4)
    assert reads == [8, 8, 4]  # steps 1-4, 5-8, 9-10; two terms a step


def test_nan_is_reported_at_its_step_when_read():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    x, y = make_problem()

    def loss_fn(m, b, step):
        out = m["model"](b[0]).pow(2).mean()
        return {"loss": out * float("nan") if step == 5 else out}

    with pytest.raises(FloatingPointError, match="non-finite loss at step 5"):
        train.fit(model, opt, train.minibatches(x, y, batch_size=8), loss_fn, steps=20, sync_every=8,
                  progress=False)


def test_checkpoint_schedule_and_callback_timing(tmp_path, monkeypatch):
    saved, calls = [], []
    real = train.save_checkpoint

    def spy(directory, step, *a, **k):
        saved.append((step, len(a[3])))
        return real(directory, step, *a, **k)

    monkeypatch.setattr(train, "save_checkpoint", spy)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = make_problem()
    hist = train.fit(model, opt, train.minibatches(x, y, batch_size=8), mse, steps=11, checkpoint_dir=tmp_path,
                     checkpoint_every=4, sync_every=3, progress=False,
                     callback=lambda step, logged: calls.append((step, sorted(logged))))
    assert [s for s, _ in saved] == [4, 8, 11]
    assert [n for _, n in saved] == [4, 8, 11]  # the history is complete in every checkpoint
    assert calls == [(s, ["loss", "mae"]) for s in range(1, 12)]
    assert len(hist) == 11


def test_checkpoint_every_one_and_no_schedule(tmp_path, monkeypatch):
    saved = []
    real = train.save_checkpoint
    monkeypatch.setattr(train, "save_checkpoint", lambda d, step, *a, **k: (saved.append(step), real(d, step, *a, **k))[1])
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = make_problem()
    train.fit(model, opt, train.minibatches(x, y, batch_size=8), mse, steps=3, checkpoint_dir=tmp_path / "a",
              checkpoint_every=1, progress=False)
    assert saved == [1, 2, 3]
    saved.clear()
    train.fit(model, opt, train.minibatches(x, y, batch_size=8), mse, steps=3, checkpoint_dir=tmp_path / "b",
              progress=False)
    assert saved == [3]


def test_resume_with_deferred_reads(tmp_path):
    _, ref = reference_history(30)
    with pytest.raises(KeyboardInterrupt):
        run(30, ckpt=tmp_path, every=6, fail_at=20)
    assert train.latest_checkpoint(tmp_path)["step"] == 18
    seed_everything(0)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=20, gamma=0.5)
    x, y = make_problem()
    hist = train.fit(model, opt, train.minibatches(x, y, batch_size=16, seed=3), mse, steps=30, schedulers=sched,
                     checkpoint_dir=tmp_path, checkpoint_every=6, sync_every=5, progress=False)
    assert hist.attrs["resumed_from"] == 18
    assert hist["step"].tolist() == list(range(1, 31))


def test_bad_cadences_are_clear():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = make_problem()
    b = train.minibatches(x, y, batch_size=8)
    for kw in ({"log_every": 0}, {"sync_every": 0}):
        with pytest.raises(ValueError, match="log_every and sync_every"):
            train.fit(model, opt, b, mse, steps=2, progress=False, **kw)
    with pytest.raises(ValueError, match="checkpoint_every must be"):
        train.fit(model, opt, b, mse, steps=2, checkpoint_dir="/tmp/x", checkpoint_every=0, progress=False)
    with pytest.raises(ValueError, match="at least one model"):
        train.fit({}, opt, b, mse, steps=2, progress=False)
    with pytest.raises(ValueError, match="at least one optimizer"):
        train.fit(model, {}, b, mse, steps=2, progress=False)
    with pytest.raises(ValueError, match="batch iterable is empty"):
        train.fit(model, opt, [], mse, steps=2, progress=False)


def test_iterable_batches_are_cycled():
    seen = []
    model = nn.Linear(5, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    data = [torch.full((2, 5), float(i)) for i in range(3)]

    def loss_fn(m, b, step):
        seen.append(float(b[0, 0]))
        return {"loss": m["model"](b).sum()}

    train.fit(model, opt, data, loss_fn, steps=7, progress=False)
    assert seen == [0, 1, 2, 0, 1, 2, 0]


class _AutocastProbe(torch.autograd.Function):
    seen: list = []

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        _AutocastProbe.seen.append(torch.is_autocast_enabled("cpu"))
        return g


def test_manual_backward_runs_outside_autocast():
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    _AutocastProbe.seen.clear()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
        loss = _AutocastProbe.apply(model(torch.ones(2, 3))).float().mean()
        train.backward_and_step(loss, opt)
        with train.outside_autocast("cpu"):
            assert not torch.is_autocast_enabled("cpu")
        assert torch.is_autocast_enabled("cpu")
    assert _AutocastProbe.seen == [False]


def test_measure_phases_runs_a_few_steps_and_records():
    with train.measure_phases(steps=3, warmup=2) as rec:
        _, hist = fit_plain(40, desc="phase A")
        _, hist2 = fit_plain(4, desc="phase B")
    assert hist["step"].tolist() == [1, 2, 3, 4, 5]
    assert hist2["step"].tolist() == [1, 2, 3, 4]
    assert [r["desc"] for r in rec] == ["phase A", "phase B"]
    assert [r["planned_steps"] for r in rec] == [40, 4]
    assert [r["measured_steps"] for r in rec] == [5, 4]
    assert all(r["s_per_step"] > 0 for r in rec)
    assert rec[0]["peak_mem_mb"] is None and rec[0]["gpu_wait_share"] is None  # CPU: n/a
    assert [r["timed_steps"] for r in rec] == [3, 2] and rec[0]["probe"] is None
    calls = iter(range(100))
    with train.measure_phases(steps=3, warmup=2, probe=lambda: {"n": float(next(calls))}) as rec:
        fit_plain(40)
    assert rec[0]["probe"] == {"n": 1.0}  # read once when the timed steps start, once after them
    _, full = fit_plain(7)
    assert len(full) == 7  # outside the context fit runs everything
    with pytest.raises(ValueError, match="steps >= 1"):
        with train.measure_phases(steps=0):
            pass

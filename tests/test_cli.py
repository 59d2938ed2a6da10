import subprocess
import sys

import pytest

from cvtutor import cli, report


def test_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "getting_started" in out and "knowledge_as_priors" in out and "planned" in out


def test_table(capsys):
    assert cli.main(["table"]) == 0
    assert capsys.readouterr().out.startswith("| id | paper |")


def test_unknown_slug_lists_available(capsys):
    assert cli.main(["run", "no_such_paper", "--profile", "fast"]) == 2
    err = capsys.readouterr().err
    assert "unknown tutorial slug 'no_such_paper'" in err and "getting_started" in err


def test_bad_profile(capsys, monkeypatch):
    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    assert cli.main(["run", "getting_started", "--profile", "turbo"]) == 2
    assert "expected one of" in capsys.readouterr().err


def test_run_getting_started_writes_results(tmp_path, monkeypatch):
    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    monkeypatch.setenv("CVTUTOR_DEVICE", "cpu")
    proc = subprocess.run([sys.executable, "-m", "cvtutor", "run", "getting_started", "--profile", "fast",
                           "--seed", "1", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results, meta = report.load_results(tmp_path / "getting_started-fast-seed1.json")
    assert meta["slug"] == "getting_started" and meta["profile"] == "fast" and meta["seed"] == 1
    assert meta["wall_time_s"] > 0 and meta["seeds"] == [0]
    assert meta["source"] == "python -m cvtutor run"
    assert 0.9 < results["svc_accuracy"] <= 1.0
    assert set(results["accuracy"]["model"]) == {"softmax", "mlp"}


def test_usage_error():
    with pytest.raises(SystemExit):
        cli.main(["frobnicate"])


def test_table_write(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- papers:start -->\nold\n<!-- papers:end -->\nafter\n")
    assert cli.main(["table", "--write", str(readme)]) == 0
    text = readme.read_text()
    assert "old" not in text and "| id | paper |" in text and text.endswith("after\n")
    (tmp_path / "plain.md").write_text("no markers")
    assert cli.main(["table", "--write", str(tmp_path / "plain.md")]) == 2
    assert "markers" in capsys.readouterr().err


def test_closed_pipe_exits_quietly():
    proc = subprocess.run(f"{sys.executable} -m cvtutor list | head -1", shell=True, capture_output=True,
                          text=True, timeout=120, executable="/bin/bash")
    assert proc.returncode == 0
    assert "BrokenPipeError" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stdout.splitlines()) == 1


def test_broken_pipe_in_process(monkeypatch, capsys):
    import os

    def boom():
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "_list", boom)
    saved = os.dup(1)
    try:
        assert cli.main(["list"]) == 0
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def test_run_smoke_profile_with_a_fake_paper(tmp_path, monkeypatch, capsys):
    """``run SLUG --profile smoke`` builds Config.smoke() and writes SLUG-smoke-seed0.json."""
    import types
    from dataclasses import dataclass

    from cvtutor import papers, runtime

    @dataclass
    class Config(runtime.ProfileConfig):
        size: int = 100

        @classmethod
        def fast(cls):
            return cls(10)

        @classmethod
        def full(cls):
            return cls(1000)

        @classmethod
        def smoke(cls):
            return cls(2)

    seen = []
    fake = types.SimpleNamespace(Config=Config, run=lambda c: seen.append(c) or {"size": c.size})
    monkeypatch.setattr(papers, "load", lambda slug: fake)
    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    monkeypatch.setenv("CVTUTOR_DEVICE", "cpu")
    try:
        assert cli.main(["run", "fake_paper", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    finally:
        runtime.set_deterministic(False)
    assert seen == [Config(2)]
    results, meta = report.load_results(tmp_path / "fake_paper-smoke-seed0.json")
    assert results == {"size": 2} and meta["profile"] == "smoke" and meta["slug"] == "fake_paper"
    assert "fake_paper-smoke-seed0.json" in capsys.readouterr().out


def test_run_smoke_getting_started(tmp_path, monkeypatch):
    from cvtutor.papers import getting_started

    if not hasattr(getting_started.Config, "smoke"):
        pytest.skip("no Config.smoke() yet")
    monkeypatch.delenv("CVTUTOR_PROFILE", raising=False)
    monkeypatch.setenv("CVTUTOR_DEVICE", "cpu")
    proc = subprocess.run([sys.executable, "-m", "cvtutor", "run", "getting_started", "--profile", "smoke",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    _, meta = report.load_results(tmp_path / "getting_started-smoke-seed0.json")
    assert meta["profile"] == "smoke"

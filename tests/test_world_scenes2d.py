"""Tests of the chapter module cvtutor.papers.world_scenes2d: its checks hold on the world,
its findings and the fast profile's time budget."""

from __future__ import annotations

import time

import torch

from cvtutor.data.scenes2d import scenes2d
from cvtutor.papers import world_scenes2d as W


def test_every_visible_pixel_is_its_front_object():
    checks = W.consistency_checks(scenes2d(16, 48, seed=3))
    assert (
        checks["ids equal the front object"] == 1.0 and checks["RGB equals the front colour"] == 1.0
    )
    assert checks["visible inside amodal"] and checks["max |sum of weights - 1|"] < 1e-5


def test_each_bias_knob_moves_its_metric():
    df = W.bias_checks(W.Config.smoke().replace(n_bias=1500, size=48))
    assert df["moves as planted"].all(), df[~df["moves as planted"]]


def test_raster_checks_meet_the_closed_forms():
    df = W.raster_checks()
    assert (df["relative error"] < 0.01).all()


def test_smoke_run_has_every_check_and_all_findings_hold():
    results = W.run(W.Config.smoke())
    assert {"raster", "consistency", "language", "coco", "biases", "timing", "findings"} <= set(
        results
    )
    assert results["findings"]["holds"].all(), results["findings"]


def test_fast_scenes_generate_within_the_budget():
    torch.set_num_threads(1)
    cfg = W.Config.fast()
    start = time.process_time()
    scenes2d(
        cfg.n_scenes, cfg.size, max_objects=cfg.max_objects, max_overlap=cfg.max_overlap, seed=0
    ).render()
    assert time.process_time() - start < 3.0

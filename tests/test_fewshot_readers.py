"""cvtutor.data.domains.fewshot: class folders, few-shot split, FUNIT list files (fixtures)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cvtutor.data.domains import fewshot


def _write(path, color, size=(12, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), color, np.uint8)).save(path)


def test_class_folders_and_split(tmp_path):
    for c, name in enumerate(["n01", "n02", "n03"]):
        for i in range(3):
            _write(tmp_path / name / f"{i}.png", 40 * c)
    (tmp_path / "n01" / "notes.txt").write_text("x")
    t = fewshot.class_folders(tmp_path)
    assert len(t) == 9 and sorted(t["label"].unique()) == [0, 1, 2]
    s = fewshot.few_shot_split(t, ["n02"], k_shot=2, n_episodes=3)
    assert s["unseen"].tolist() == [1] and s["seen"].tolist() == [0, 2]
    way, support, _ = s["sampler"].episode(0)
    assert way.tolist() == [1] and (t["label"].to_numpy()[support[0].numpy()] == 1).all()
    with pytest.raises(ValueError, match="not among"):
        fewshot.few_shot_split(t, ["n09"])
    with pytest.raises(FileNotFoundError, match="class folders"):
        fewshot.class_folders(tmp_path / "n01")


def test_funit_list_and_crops(tmp_path):
    img = np.zeros((10, 12, 3), np.uint8)
    img[2:6, 3:9] = 200
    Image.fromarray(img).save(tmp_path / "a.png")
    (tmp_path / "list.txt").write_text("a.png 3 2 9 6\n\n")
    t = fewshot.read_funit_list(tmp_path / "list.txt", root=tmp_path)
    assert t.iloc[0][["x1", "y1", "x2", "y2"]].tolist() == [3, 2, 9, 6]
    crops = fewshot.load_crops(t, 8)
    assert crops.shape == (1, 3, 8, 8) and float(crops.min()) > 0.7
    (tmp_path / "bad.txt").write_text("a.png 3 2 9\n")
    with pytest.raises(ValueError, match="x1 y1 x2 y2"):
        fewshot.read_funit_list(tmp_path / "bad.txt")
    (tmp_path / "bad2.txt").write_text("a.png 9 2 3 6\n")
    with pytest.raises(ValueError, match="x2 > x1"):
        fewshot.read_funit_list(tmp_path / "bad2.txt")

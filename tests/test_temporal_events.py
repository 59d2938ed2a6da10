import numpy as np
import pytest
import torch

from cvtutor.data.events import PATTERNS, AudioVisualEvents
from cvtutor.data.temporal import UntrimmedFeatures


def test_untrimmed_annotations_agree_with_the_timeline():
    w = UntrimmedFeatures(n_classes=4, dim=8, length=48, max_instances=3, max_duration=12)
    b = w.sample(50, seed=1)
    seg = b["segments"]
    # rasterising the annotations gives the snippet labels
    raster = torch.full((50, 48), -1)
    for r in seg.itertuples():
        assert (raster[r.video_id, r.start : r.end] == -1).all()  # no overlap
        raster[r.video_id, r.start : r.end] = r.label
    assert torch.equal(raster, b["snippet_labels"])
    assert np.allclose(seg.t_start, seg.start * 0.5) and np.allclose(seg.e_norm, seg.end / 48)
    assert (seg.end - seg.start).between(4, 12).all() and (seg.end <= 48).all()
    assert torch.equal(b["features"], w.sample(50, seed=1)["features"])


def test_untrimmed_features_are_the_stated_sum():
    w = UntrimmedFeatures(n_classes=3, dim=6, length=48, noise=0.0, walk=0.0, context=2)
    b = w.sample(10, seed=2)
    P = w.prototypes()
    expect = torch.zeros(10, 48, 6)
    near = torch.zeros(10, 48, dtype=torch.bool)
    for r in b["segments"].itertuples():
        near[r.video_id, max(r.start - 2, 0) : r.end + 2] = True
    for r in b["segments"].itertuples():
        expect[r.video_id][near[r.video_id]] = 0.5 * P["context"][r.label]
    for r in b["segments"].itertuples():
        d = r.end - r.start
        tau = (torch.arange(d) + 0.5) / d
        expect[r.video_id, r.start : r.end] = (1 - tau)[:, None] * P["start"][r.label] + tau[
            :, None
        ] * P["end"][r.label]
    assert torch.allclose(b["features"], expect, atol=1e-5)
    m = w.trimmed_moments(5, length=4)
    lab = m["label"]
    tau = (torch.arange(4) + 0.5) / 4
    exp = (1 - tau)[None, :, None] * P["start"][lab][:, None] + tau[None, :, None] * P["end"][lab][
        :, None
    ]
    assert torch.allclose(m["features"], exp)
    with pytest.raises(ValueError, match="do not fit"):
        UntrimmedFeatures(length=20, max_instances=3, max_duration=10)


def test_av_events_labels_and_features():
    w = AudioVisualEvents(noise=0.0)
    b = w.sample(400, seed=0)
    pat, pres = b["pattern"], b["present"]
    a, v = b["audio_labels"], b["visual_labels"]
    assert torch.equal(b["weak"], pres)
    assert (
        not a[pat == PATTERNS.index("visual")].any() and not v[pat == PATTERNS.index("audio")].any()
    )
    avp = pat == PATTERNS.index("av")
    assert torch.equal(a[avp], v[avp]) and torch.equal(b["av_labels"], a & v)
    asy = pat == PATTERNS.index("async")
    assert (b["shift"][asy] != 0).all() and (b["shift"][~asy] == 0).all()
    assert torch.equal(a.sum(-1)[pres & (pat != 2)], b["duration"][pres & (pat != 2)])
    assert torch.equal(v.sum(-1)[pres & (pat != 1)], b["duration"][pres & (pat != 1)])
    t = torch.arange(10)
    on = (t >= b["onset"][..., None]) & (t < (b["onset"] + b["duration"])[..., None])
    assert torch.equal(a, on & (pres & (pat != 2))[..., None])
    # the pattern frequencies follow pattern_probs
    freq = torch.bincount(pat[pres], minlength=4).float() / pres.sum()
    assert torch.allclose(freq, torch.tensor(w.pattern_probs), atol=0.06)
    P = w.prototypes()
    exp_a = torch.einsum("nct,cd->ntd", a.float() * b["intensity"][..., None], P["audio"])
    assert torch.allclose(b["audio"], exp_a + b["scene_audio"][:, None], atol=1e-5)
    exp_v = torch.einsum("nct,cd->ntd", v.float() * b["intensity"][..., None], P["visual"])
    assert torch.allclose(b["visual"], exp_v + b["scene_visual"][:, None], atol=1e-5)
    assert pres.sum(1).min() >= 1 and pres.sum(1).max() <= 3
    c = w.sample(400, seed=0)
    assert all(torch.equal(b[k], c[k]) for k in b)
    with pytest.raises(ValueError, match="pattern_probs"):
        AudioVisualEvents(pattern_probs=(1.0, 0.0, 0.0))

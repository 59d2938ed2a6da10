"""The image-classification world's chapter module: profiles, run, findings."""

import pytest
import torch

from cvtutor import report
from cvtutor.nn.resnet_mini import ResNetMini
from cvtutor.nn.small_cnn import SmallCNN
from cvtutor.papers import world_images as wi


def test_profiles():
    fast, full, smoke = wi.Config.fast(), wi.Config.full(), wi.Config.smoke()
    assert wi.Config.for_profile("smoke") == smoke and len(smoke.seeds) >= 2
    # smoke keeps full's code paths: the model, the digits size and the fine variant
    assert (smoke.model, smoke.digits_size, smoke.fine) == (full.model, full.digits_size, full.fine)
    assert fast.model == "small" and not fast.fine


def test_make_model():
    assert isinstance(wi.make_model(wi.Config.fast(), 1, 10), SmallCNN)
    r20 = wi.make_model(wi.Config.full(), 3, 16)
    assert isinstance(r20, ResNetMini) and r20(torch.zeros(1, 3, 32, 32)).shape == (1, 16)
    with pytest.raises(ValueError, match="model must be"):
        wi.make_model(wi.Config.fast().replace(model="vgg"), 3, 10)


def test_openness_paper_values():
    for name, (a, b) in wi._OPENNESS_CLASSES.items():
        assert int(10000 * wi.cm.openness(a, b)) / 100 == wi.PAPER["openness"][name]


def test_smoke_run_findings_and_results_file(tmp_path):
    r = wi.run(wi.Config.smoke())
    f = r["findings"]
    assert set(f["kind"]) <= set(report.KINDS)
    for text in (
        "a seed gives bit-identical images",
        "RandAugment with magnitude 0 is the identity",
        "every set's and every corruption's values stay in [0, 1]",
        "each corruption moves images further at each higher severity",
        "our AUROC, AUPR-in/out and (k+1)-F1 equal scikit-learn's on this run's scores",
        "FlopCounterMode's MAdds equal the closed form of every convolution and linear layer",
        "our openness formula gives E07's four openness values (to their two decimals)",
    ):
        assert bool(f.loc[text, "holds"]), text  # tool and construction checks hold at any size
    assert f.loc["a seed gives bit-identical images", "kind"] == "construction"
    assert set(r["accuracy"]["set"]) == {"digits16", "ShapesTextures", "ShapesTextures-fine"}
    assert set(r["corruption"]["corruption"]) == {"clean", *wi.corruptions.CORRUPTIONS}
    report.save_results(
        r, tmp_path / "r.json", report.run_metadata("world_images", "smoke", "cpu", 0)
    )
    back, _ = report.load_results(tmp_path / "r.json")
    assert back["scores"]["known_classes"] == r["scores"]["known_classes"]


def test_open_set_digits_rejects_about_five_percent_of_known():
    cfg = wi.Config.fast().replace(epochs=1)
    digits = wi.sets.digits16(16)
    o = wi.open_set_digits(digits, cfg, 0, "cpu")
    known = o["y"] < cfg.n_known
    rejected = (o["pred"][known] == cfg.n_known).double().mean()
    assert 0.03 < rejected < 0.07 and len(o["known"]) == cfg.n_known
    assert o["openness"] == pytest.approx(wi.cm.openness(6, 10))

"""The world chapter's run: every table, identities holding, smoke covering full's paths."""
import dataclasses

import pytest

from cvtutor.papers import world_people as wp

KEYS = {
    "identities",
    "world_identities",
    "triangulation",
    "density",
    "ordinal",
    "keypoint_ap",
    "findings",
    "lm_cost_before",
    "lm_cost_after",
}


@pytest.fixture(scope="module")
def smoke():
    return wp.run(wp.Config.smoke())


def test_smoke_returns_every_table_and_the_checks_hold(smoke):
    assert set(smoke) == KEYS
    assert smoke["identities"].holds.all() and smoke["world_identities"].holds.all()
    assert smoke["keypoint_ap"].loc[0, "AP"] == pytest.approx(1.0)
    assert (smoke["ordinal"]["true depths"] == 1.0).all()
    full = wp.Config.full()
    assert len(smoke["density"]) == len(full.densities) and len(smoke["ordinal"]) == len(
        full.scale_ranges
    )
    assert smoke["lm_cost_after"] <= smoke["lm_cost_before"]
    assert set(smoke["findings"].kind) <= {
        "sanity check",
        "construction",
    }  # a world chapter claims no paper


def test_smoke_keeps_full_code_paths():
    s, f = wp.Config.smoke(), wp.Config.full()
    same = {"n_views", "densities", "scale_ranges", "detector_sigma", "seed", "device"}
    for field in dataclasses.fields(wp.Config):
        if field.name in same:
            assert getattr(s, field.name) == getattr(f, field.name), field.name


def test_run_is_seeded(smoke):
    again = wp.run(wp.Config.smoke())
    for key in ("triangulation", "density", "ordinal", "keypoint_ap"):
        assert again[key].equals(smoke[key]), key

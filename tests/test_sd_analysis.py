"""utils.sd_analysis on synthetic records whose answers are known."""
import json

import numpy as np
import pytest

from utils import sd, sd_analysis


def _records(n=10, seeds=3, seed=0):
    """Memorized prompts (first half): higher probe std, high consistency on their first two seeds."""
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(2 * n):
        mem = int(i < n)
        std = list(rng.normal(1.0 + mem, 0.1, seeds))
        cons = [0.99, 0.99] + [0.5] * (seeds - 2) if mem else [0.5] * seeds
        recs.append({"index": i, "prompt": f"p{i}", "memorized": mem, "wen": list(rng.normal(2, 1, seeds)),
                     "probe": {sd.PROBE_LAYER: {"std": std, "hoyer": std, "l4_over_l2": std,
                                                "top1_share": list(rng.random(seeds))}},
                     "consistency": cons, "curve": {sd.PROBE_LAYER: [1.0, 0.5 - 0.3 * mem, 0.1]},
                     "seconds_generate": 2.0, "seconds_probe": 0.1})
    return recs


def test_generation_table_and_labels():
    g = sd_analysis.generation_table(_records(n=2, seeds=3))
    assert g["prompt"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert g["copy"].tolist() == [1, 1, 0, 1, 1, 0] + [0] * 6
    with pytest.raises(ValueError, match="no records"):
        sd_analysis.generation_table([])


def test_detection_levels_separate_what_they_should():
    recs = _records()
    res, labels, scores, units = sd_analysis.detection_results(recs, level="prompt", draws=200)
    assert units == 20 and labels.sum() == 10 and len(labels) == 20
    assert res["probe std (official)"]["auroc"] == 1.0
    assert 0.2 < res["Wen et al. (first step)"]["auroc"] < 0.8           # noise scores: near chance
    lo = np.nanpercentile(res["Wen et al. (first step)"]["auroc_draws"], 2.5)
    assert lo < 0.5                                                      # the interval says so
    res_g, labels_g, _, units_g = sd_analysis.detection_results(recs, level="generation", draws=200)
    assert units_g == 20 and labels_g.sum() == 20 and len(labels_g) == 60
    with pytest.raises(ValueError, match="level"):
        sd_analysis.detection_results(recs, level="image")
    one_class = [dict(r, consistency=[0.1] * 3) for r in recs]
    with pytest.raises(ValueError, match="every label is 0"):
        sd_analysis.detection_results(one_class, level="generation")


def test_curves_cost_and_loading(tmp_path):
    recs = _records(n=2)
    c = sd_analysis.mean_curves(recs)
    np.testing.assert_allclose(c[1], [1.0, 0.2, 0.1])
    np.testing.assert_allclose(c[0], [1.0, 0.5, 0.1])
    cost = sd_analysis.cost_table(recs)
    assert cost["probe (official)"][:2] == (1, 1) and cost["Wen et al. (first step)"][:2] == (0, 0)
    path = tmp_path / "results.json"
    with pytest.raises(FileNotFoundError, match="results.json"):
        sd_analysis.load_results(path)
    path.write_text(json.dumps({"records": recs}))
    with pytest.raises(ValueError, match="meta"):
        sd_analysis.load_results(path)
    path.write_text(json.dumps({"records": recs, "meta": {}}))
    assert len(sd_analysis.load_results(path)["records"]) == 4


def test_steering_summary_changes_from_the_unsteered_image():
    rows = []
    for prompt in ("p0", "p1", "p2"):
        for seed in range(2):
            for kind, a in (("attribute", 0.0), ("attribute", 0.5), ("random0", 0.5)):
                change = 0.2 if kind == "attribute" and a else 0.0
                rows.append({"target": "generalized", "prompt": prompt, "seed": seed, "kind": kind,
                             "alpha": a, "score": 1.0 + seed + change + (prompt == "p2") * 0.1 * a,
                             "distance": 0.1 * a})
    s = sd_analysis.steering_summary(rows, draws=200)
    ds, ci, dist, _, n_prompts = s[("generalized", "attribute", 0.5)]
    assert n_prompts == 3 and abs(ds - (0.2 + 0.05 / 3)) < 1e-12 and ci[0] <= ds <= ci[1]
    assert ci[1] - ci[0] > 0                          # prompts differ, so the interval is not a point
    assert abs(dist - 0.05) < 1e-12
    assert abs(s[("generalized", "random", 0.5)][0] - 0.05 / 3) < 1e-12


def test_training_image_summary_counts_dead_links():
    recs = _records(n=3)
    for r in recs:
        r["has_url"], r["training_cosine"] = False, None          # no link: counts neither way
    recs[0].update(has_url=True, training_cosine=[0.9, 0.8, 0.95])
    recs[1].update(has_url=True, training_cosine=None)            # a dead link
    recs[2].update(has_url=True, training_cosine=[0.2, 0.3, 0.1])
    s = sd_analysis.training_image_summary(recs)
    assert s["with_url"] == 3 and s["dead"] == 1 and len(s["cosines"]) == 6

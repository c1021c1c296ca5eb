import json
import os

import numpy as np
import pytest

from pudet.pu.prior import elkan_noto_prior, estimate_prior
from pudet.purification import prior as prior_estimation

from .helpers import pu_cfg


def test_elkan_noto_formula_by_hand():
    # c = 0.5, n_l = 100, n_u = 1000: pi = 100 * 0.5 / (1000 * 0.5) = 0.1
    assert elkan_noto_prior([0.4, 0.6], 100, 1000) == pytest.approx(0.1)
    # c = n_l / (n_l + n_u pi) inverts: pi = 0.3 -> c = 100 / 400 = 0.25
    assert elkan_noto_prior([0.25], 100, 1000) == pytest.approx(0.3)
    assert elkan_noto_prior([1.0], 100, 1000) == pytest.approx(1e-3)  # clipped


@pytest.mark.parametrize("true_prior", [0.1, 0.3, 0.5])
def test_estimate_recovers_prior_of_separable_mixture(true_prior):
    rng = np.random.default_rng(0)
    n_l, n_u, d = 400, 3000, 4
    n_pos = int(true_prior * n_u)
    xl = rng.normal(2.5, 1.0, size=(n_l, d))
    xu = np.concatenate([rng.normal(2.5, 1.0, size=(n_pos, d)), rng.normal(-2.5, 1.0, size=(n_u - n_pos, d))])
    estimates = estimate_prior(xl, xu)
    prior, c = estimates["elkan-noto"], estimates["c"]
    assert prior == pytest.approx(true_prior, abs=0.05)
    assert c == pytest.approx(n_l / (n_l + n_u * true_prior), abs=0.05)
    assert estimates["bbe"] == pytest.approx(true_prior, abs=0.05)


def test_estimate_rejects_bad_shapes():
    with pytest.raises(ValueError, match="one D"):
        estimate_prior(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(ValueError, match="at least"):
        estimate_prior(np.zeros((2, 3)), np.zeros((10, 3)))


def test_resolve_prior_estimates_once_and_reuses_prior_json(tmp_path, monkeypatch):
    cfg = pu_cfg()
    cfg.PU.PRIOR = -1.0
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.freeze()
    calls = []

    def estimate(cfg_, model):
        calls.append(model)
        return {"prior": 0.2, "c": 0.5, "n_labeled": 3, "n_unlabeled": 5}

    monkeypatch.setattr(prior_estimation, "estimate_prior_from_splits", estimate)
    monkeypatch.setattr(prior_estimation.PUTrainer, "build_model", classmethod(lambda cls, cfg_: "model"))
    resolved = prior_estimation.resolve_prior(cfg)
    assert resolved.PU.PRIOR == 0.2 and cfg.PU.PRIOR == -1.0 and resolved.is_frozen()
    assert calls == ["model"]
    with open(tmp_path / "prior.json") as f:
        assert json.load(f)["prior"] == 0.2
    # a resumed run reads prior.json and estimates nothing
    (tmp_path / "prior.json").write_text(json.dumps({"prior": 0.125, "job": prior_estimation.prior_job(cfg)}))
    assert prior_estimation.resolve_prior(cfg).PU.PRIOR == 0.125 and len(calls) == 1
    # a file that records no job cannot be told from another job's: refused, never reused
    (tmp_path / "prior.json").write_text(json.dumps({"prior": 0.125}))
    with pytest.raises(ValueError, match="records no job"):
        prior_estimation.resolve_prior(cfg)
    assert len(calls) == 1
    # a given prior is used as it is
    given = pu_cfg()
    given.OUTPUT_DIR = str(tmp_path / "given")
    assert prior_estimation.resolve_prior(given) is given and not os.path.exists(given.OUTPUT_DIR)

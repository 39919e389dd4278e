"""Every scoring family over HTTP, held to its trained torch model: `/score` equals the
model's forward and `/recommend` the brute-force ranking of every unseen item, for FM, NFM,
TransFM, a pairwise-only GML-FM distance (Manhattan: no additive state) and DeepFM (the
whole path). test_scoring.py holds GML-FM-dnn to the same, on every store."""

from __future__ import annotations

import numpy as np
import pytest

from tests.service.api.conftest import Trained, fit_and_export, serving, settings_for
from tests.service.api.reference import TorchModel, assert_same_ranking, brute_force_top

pytestmark = pytest.mark.anyio
FAMILIES = {"fm": ["fm"], "nfm": ["nfm"], "transfm": ["transfm"],
            "gmlfm-manhattan": ["gmlfm", "--distance", "manhattan"], "deepfm": ["deepfm"]}
USERS = ["0", "31", "59"]


@pytest.fixture(scope="module", params=FAMILIES)
def trained(request, tmp_path_factory) -> tuple[Trained, TorchModel]:
    model, *options = FAMILIES[request.param]
    run = fit_and_export(tmp_path_factory.mktemp(request.param), model, 0, *options)
    return run, TorchModel(run)


async def test_score_and_recommend_equal_the_trained_model(trained):
    run, torch_model = trained
    async with serving(settings_for(run.models_dir)) as client:
        for user in USERS:
            want = torch_model.scores(user)
            r = await client.post("/score", json={"user_id": user,
                                                  "item_ids": torch_model.item_ids})
            assert r.status_code == 200, r.text
            got = np.array([s["score"] for s in r.json()["scores"]])
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())

            r = await client.get(f"/recommend/{user}", params={"n": 20})
            assert r.status_code == 200, r.text
            assert_same_ranking([(i["item_id"], i["score"]) for i in r.json()["items"]],
                                brute_force_top(want, torch_model.item_ids,
                                                torch_model.seen(user), 20))

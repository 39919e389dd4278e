"""`diversity` on /recommend and every answer's `intra_list_similarity`, against their
definitions (docs/math.md, Diversity): λ = 0 is the plain exact top n (the same answer, to
the bit, as without the parameter); λ > 0 is maximal marginal relevance over the exact top K,
replayed here with a naive loop on the pair sums written out pair by pair; the intra-list
similarity is the mean of those sums over the answer's pairs. Random-weight bundles of FM,
TransFM (whose pair value depends on the order: symmetrised), GML-FM-dnn, DeepFM, and
GML-FM-dnn with a history field, with an added item in the catalog."""

from __future__ import annotations

import numpy as np
import pytest

from bundle import AddedItems
from service.similar import pool_size
from tests.export.helpers import export, random_model
from tests.factories import tiny_interactions
from tests.service.api.conftest import serving, settings_for
from tests.support.naive_similarity import naive_sim
from training.data.history import with_history_field
from training.data.protocols import make_split

pytestmark = pytest.mark.anyio
CASES = {"fm": ("fm", {}, False), "transfm": ("transfm", {}, False),
         "gmlfm-dnn": ("gmlfm", {"distance": "dnn", "layers": 1}, False),
         "deepfm": ("deepfm", {}, False),
         "history-gmlfm": ("gmlfm", {"distance": "dnn", "layers": 1}, True)}
ADDED = {"genre": ["y", "z"]}
USERS = ["0", "17", "never-seen"]


@pytest.fixture(scope="module", params=CASES)
def models_dir(request, tmp_path_factory):
    model, options, history = CASES[request.param]
    data = tiny_interactions(seed=1)
    data = with_history_field(data, 4, "sqrt") if history else data
    split = make_split(data, "topn", seed=0)
    models = tmp_path_factory.mktemp(request.param)
    export(random_model(data, split, model, seed=3, **options), data, split, models)
    return models


def rows_of(bundle, ids: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    idx, val = bundle.catalog.rows()
    at = {str(i): p for p, i in enumerate(bundle.catalog.ids.tolist())}
    added = AddedItems(bundle).encode(ADDED, "new-b")
    return [(added.idx, added.val) if i == "new-b" else (idx[at[i]], val[at[i]]) for i in ids]


def naive_matrix(bundle, ids: list[str]) -> np.ndarray:
    """½ (sim(a, b) + sim(b, a)) of every pair of the listed items, by the double sum."""
    rows = rows_of(bundle, ids)
    sim = np.array([[naive_sim(bundle, a, b) for b in rows] for a in rows])
    return 0.5 * (sim + sim.T)


def naive_ils(bundle, ids: list[str]) -> float | None:
    if len(ids) < 2:
        return None
    sim = naive_matrix(bundle, ids)
    return float(np.mean([sim[i, j] for i in range(len(ids)) for j in range(i + 1, len(ids))]))


def naive_mmr(scores: list[float], sim: np.ndarray, n: int, lam: float) -> list[int]:
    """MMR as docs/math.md states it: scores and off-diagonal similarities each min-max
    scaled over the K candidates; the best first; then the highest (1 − λ) r − λ max s,
    the better ranked of equals."""
    k = len(scores)
    s = np.asarray(scores, np.float64)
    r = (s - s.min()) / (s.max() - s.min()) if s.max() > s.min() else np.zeros(k)
    off = sim[~np.eye(k, dtype=bool)]
    low, span = off.min(), off.max() - off.min()
    chosen = [0]
    while len(chosen) < min(n, k):
        gains = [(1 - lam) * r[i] - lam * max((sim[i, j] - low) / span for j in chosen)
                 if i not in chosen else -np.inf for i in range(k)]
        chosen.append(int(np.argmax(gains)))
    return chosen


def items(r) -> list[tuple[str, float]]:
    assert r.status_code == 200, r.text
    return [(i["item_id"], i["score"]) for i in r.json()["items"]]


def same(r) -> dict:
    """An answer less its recommendation_id, new on every answer."""
    return {k: v for k, v in r.json().items() if k != "recommendation_id"}


async def test_zero_is_the_plain_answer_and_lambda_is_mmr(models_dir):
    async with serving(settings_for(models_dir)) as client:
        bundle = client.app.state.model_host.current.bundle
        r = await client.put("/items/new-b", json={"features": ADDED})
        assert r.status_code == 200, r.text
        for user in USERS:
            for n in (1, 2, 10):
                plain = await client.get(f"/recommend/{user}", params={"n": n})
                zero = await client.get(f"/recommend/{user}", params={"n": n, "diversity": 0})
                posted = await client.post("/recommend", json={"user_id": user, "n": n,
                                                               "diversity": 0.0})
                assert same(plain) == same(zero) == same(posted)  # to the bit
                ids = [i for i, _ in items(plain)]
                ils = plain.json()["intra_list_similarity"]
                want = naive_ils(bundle, ids)
                assert (ils is None) == (want is None) and (ils is None or np.isclose(
                    ils, want, rtol=1e-5, atol=1e-6 * max(abs(want), 1.0)))
            n = 10
            k = pool_size(n)
            pool = items(await client.get(f"/recommend/{user}", params={"n": k}))
            sim = naive_matrix(bundle, [i for i, _ in pool])
            for lam in (0.3, 0.6, 1.0):
                got = items(await client.get(f"/recommend/{user}",
                                             params={"n": n, "diversity": lam}))
                want = [pool[i] for i in naive_mmr([s for _, s in pool], sim, n, lam)]
                assert got == want, (user, lam)
                posted = await client.post("/recommend", json={"user_id": user, "n": n,
                                                               "diversity": lam})
                assert items(posted) == got
                assert np.isclose(posted.json()["intra_list_similarity"],
                                  naive_ils(bundle, [i for i, _ in got]), rtol=1e-5)
        r = await client.get("/recommend/0", params={"diversity": 1.5})
        assert r.status_code == 422
        r = await client.post("/recommend", json={"user_id": "0", "diversity": -0.1})
        assert r.status_code == 422

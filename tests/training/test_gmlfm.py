"""GML-FM's fast forms equal its definition for every distance and weight setting: naive
double loop == pairwise vectorized == additive state == user/item split (float64, 1e-9)."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.training.references import naive_gmlfm
from training.models.gmlfm import ADDITIVE, DISTANCES, GMLFM
from training.models.gram import gram_square, squared_distance_pairs

N_FEATURES = 15


def make(distance: str, weight: bool, layers: int = 2, dim: int = 4, seed: int = 0) -> GMLFM:
    torch.manual_seed(seed)
    model = GMLFM(N_FEATURES, dim, distance, layers, weight, dropout=0.3, init_std=0.5)
    model = model.double().eval()
    with torch.no_grad():  # move the transform off its identity start: a general metric
        for weight in model.transform.parameters():
            weight.add_(torch.randn_like(weight) * 0.5)
    return model


rows = st.integers(2, 8).flatmap(lambda w: st.tuples(
    st.lists(st.integers(0, N_FEATURES - 1), min_size=w, max_size=w),
    st.lists(st.floats(-2, 2, allow_nan=False).filter(lambda x: abs(x) > 1e-3),
             min_size=w, max_size=w)))
settings_ = settings(max_examples=25, deadline=None)


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))


@pytest.mark.parametrize("weight", [True, False])
@pytest.mark.parametrize("name", DISTANCES)
@settings_
@given(row=rows, seed=st.integers(0, 1000))
def test_every_exact_form_equals_the_definition(name, weight, row, seed):
    idx, val = row
    model = make(name, weight, seed=seed)
    idx_t, val_t = torch.tensor([idx]), torch.tensor([val], dtype=torch.float64)
    with torch.no_grad():
        expected = naive_gmlfm(model, idx, val)
        assert close(model.w0 + model.linear(idx_t, val_t) + model.pairwise(idx_t, val_t),
                     expected)
        cut = len(idx) // 2
        user, item = model.state(idx_t[:, :cut], val_t[:, :cut]), model.state(idx_t[:, cut:],
                                                                              val_t[:, cut:])
        assert close(model.combine(user, item), expected)
        if name in ADDITIVE:
            for form in (model.gram, model.additive):
                assert close(model.w0 + model.linear(idx_t, val_t) + form(idx_t, val_t),
                             expected)


@pytest.mark.parametrize("weight", [True, False])
@pytest.mark.parametrize("name", DISTANCES)
def test_one_user_state_scores_a_batch_of_items(name, weight):
    model = make(name, weight, seed=2)
    user_idx, user_val = torch.tensor([[0, 4, 9]]), torch.tensor([[1.0, 0.5, -1.0]]).double()
    item_idx = torch.randint(0, N_FEATURES, (7, 3), generator=torch.Generator().manual_seed(0))
    item_val = torch.rand(7, 3, dtype=torch.float64)
    joined = model(torch.cat([user_idx.expand(7, -1), item_idx], 1),
                   torch.cat([user_val.expand(7, -1), item_val], 1))
    with torch.no_grad():
        split = model.combine(model.state(user_idx, user_val), model.state(item_idx, item_val))
        assert torch.allclose(split, joined, rtol=1e-9)


@pytest.mark.parametrize("weight", [True, False])
def test_mahalanobis_with_identity_and_dnn_without_layers_are_euclidean(weight):
    idx = torch.tensor([[0, 3, 7, 7, 11]])
    val = torch.tensor([[1.0, -0.5, 2.0, 0.3, 1.5]], dtype=torch.float64)
    euclid = make("euclidean", weight)
    maha = make("mahalanobis", weight)
    dnn0 = make("dnn", weight, layers=0)
    with torch.no_grad():
        maha.transform.L.copy_(torch.eye(4))
        for other in (maha, dnn0):
            other.load_state_dict(euclid.state_dict(), strict=False)
            assert close(other(idx, val), euclid(idx, val))


def test_cosine_counts_its_nonzero_diagonal_only_between_distinct_slots():
    model = make("cosine", weight=False)
    idx, val = torch.tensor([[4, 4]]), torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    with torch.no_grad():  # one pair of identical vectors: D = 1, no self pairs
        assert close(model.pairwise(idx, val), torch.tensor(1.0))
        assert close(model.additive(idx, val), torch.tensor(1.0))


@pytest.mark.parametrize("name", ["dnn", "mahalanobis", "cosine"])
def test_gradients_of_fast_forms_match_the_naive_form(name):
    idx, val = [1, 5, 5, 9, 12], [1.0, 0.5, -1.5, 2.0, 0.7]
    grads = []
    for form in ("naive", "pairwise", "gram", "additive"):
        model = make(name, weight=True, seed=3)
        idx_t, val_t = torch.tensor([idx]), torch.tensor([val], dtype=torch.float64)
        out = naive_gmlfm(model, idx, val) if form == "naive" else \
            model.w0 + model.linear(idx_t, val_t) + getattr(model, form)(idx_t, val_t)
        out.sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for fast in grads[1:]:
        for g_fast, g_naive in zip(fast, grads[0]):
            assert torch.allclose(g_fast, g_naive, rtol=1e-9, atol=1e-12)


def test_training_mode_dropout_hits_every_form_alike():
    model = make("dnn", weight=True, layers=1)
    model.train()
    idx = torch.randint(0, N_FEATURES, (6, 5))
    val = torch.rand(6, 5, dtype=torch.float64)
    torch.manual_seed(1)
    pairwise = model.pairwise(idx, val)
    for form in (model.gram, model.additive):
        torch.manual_seed(1)
        assert torch.allclose(form(idx, val), pairwise, rtol=1e-9)


def test_auto_form_picks_gram_for_few_fields_and_additive_for_many():
    model = GMLFM(N_FEATURES, 16, "dnn")
    assert model.cheapest_form(5) == "gram" and model.cheapest_form(40) == "additive"
    assert GMLFM(N_FEATURES, 16, "dnn", weight=False).cheapest_form(5) == "additive"
    assert GMLFM(N_FEATURES, 16, "manhattan").cheapest_form(5) == "pairwise"


def test_gram_square_backward_passes_gradcheck():
    xv = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    t = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gram_square, (xv, t))
    explicit = torch.einsum("bwk,bwc->bkc", xv, t).square().sum(-1)
    assert torch.allclose(gram_square(xv, t), explicit, rtol=1e-12)


def test_squared_distance_pairs_backward_passes_gradcheck():
    xv = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    t = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(squared_distance_pairs, (xv, t))
    pairs = [(xv[:, i] * xv[:, j]) * (t[:, i] - t[:, j]).square().sum(-1, keepdim=True)
             for i, j in itertools.combinations(range(5), 2)]
    assert torch.allclose(squared_distance_pairs(xv, t), sum(pairs), rtol=1e-12)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_every_dnn_depth_starts_as_the_euclidean_metric(layers):
    """At the papers' N(0, 0.01) embeddings a fresh DNN transform is ≈ the identity, so the
    pair term is the Euclidean model's, not the ~0.01^L of N(0, 0.01) layer weights."""
    torch.manual_seed(0)
    dnn = GMLFM(N_FEATURES, 8, "dnn", layers).double().eval()
    euclid = GMLFM(N_FEATURES, 8, "euclidean").double().eval()
    euclid.load_state_dict(dnn.state_dict(), strict=False)
    idx, val = torch.tensor([[0, 3, 7, 11]]), torch.ones(1, 4, dtype=torch.float64)
    with torch.no_grad():
        expected = euclid.pairwise(idx, val)
        assert torch.allclose(dnn.pairwise(idx, val), expected, rtol=1e-3, atol=0)


@pytest.mark.parametrize("layers", [2, 3])
def test_deep_transforms_learn_from_the_papers_initial_scale(layers):
    """With layers started at N(0, 0.01) a 2- or 3-layer GML-FM sat at its starting point."""
    torch.manual_seed(0)
    model = GMLFM(N_FEATURES, 8, "dnn", layers)
    gen = torch.Generator().manual_seed(1)
    idx = torch.randint(0, N_FEATURES, (64, 4), generator=gen)
    val = torch.ones(64, 4)
    y = torch.where((idx[:, 0] - idx[:, 1]).abs() < 5, 1.0, -1.0)  # a pair effect, no bias
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    first = None
    for _ in range(150):
        loss = (model(idx, val) - y).square().mean()
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize("distance", ["dnn", "mahalanobis"])
def test_transform_starts_at_the_identity_or_at_the_papers_normal(distance):
    torch.manual_seed(0)
    start = GMLFM(N_FEATURES, 32, distance, layers=2).transform
    for weight in (p for p in start.parameters() if p.dim() == 2):
        assert torch.equal(weight, torch.eye(32))
    paper = GMLFM(N_FEATURES, 32, distance, layers=2, transform_init="paper").transform
    for weight in paper.parameters():
        assert 0.007 < float(weight.detach().std()) < 0.013

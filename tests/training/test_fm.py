"""FM's fast forms equal the definition: naive double loop == O(rk) forward == additive state
== user/item split, on random real-valued inputs in float64."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.training.references import naive_fm
from training.models.fm import FM


def random_model(n: int, k: int, seed: int) -> FM:
    torch.manual_seed(seed)
    model = FM(n, k, init_std=0.5).double().eval().requires_grad_(False)
    with torch.no_grad():
        model.w0.fill_(0.3)
    return model


rows = st.integers(2, 9).flatmap(lambda w: st.tuples(
    st.lists(st.integers(0, 19), min_size=w, max_size=w),
    st.lists(st.floats(-2, 2, allow_nan=False), min_size=w, max_size=w)))


@settings(max_examples=60, deadline=None)
@given(rows, st.integers(1, 6), st.integers(0, 10_000))
def test_forward_state_and_split_equal_naive(row, k, seed):
    idx, val = row
    model = random_model(20, k, seed)
    idx_t, val_t = torch.tensor([idx]), torch.tensor([val], dtype=torch.float64)
    expected = naive_fm(model, idx, val)
    scale = max(1.0, abs(expected))
    assert abs(float(model(idx_t, val_t)) - expected) <= 1e-9 * scale
    assert abs(float(model.score_state(model.state(idx_t, val_t))) - expected) <= 1e-9 * scale
    cut = len(idx) // 2  # any disjoint partition: "user" columns and "item" columns
    user = model.state(idx_t[:, :cut], val_t[:, :cut])
    item = model.state(idx_t[:, cut:], val_t[:, cut:])
    assert abs(float(model.combine(user, item)) - expected) <= 1e-9 * scale


def test_padding_with_zero_values_changes_nothing():
    model = random_model(20, 4, 0)
    idx, val = torch.tensor([[3, 7, 0, 0]]), torch.tensor([[1.0, 0.5, 0.0, 0.0]]).double()
    assert torch.allclose(model(idx, val), model(idx[:, :2], val[:, :2]), rtol=1e-12)


def test_gradients_of_fast_form_match_naive_autograd():
    model = random_model(12, 3, 1).requires_grad_(True)
    idx, val = [1, 4, 4, 9], [1.0, 0.5, -1.5, 2.0]  # a repeated feature too
    model(torch.tensor([idx]), torch.tensor([val]).double()).sum().backward()
    fast = model.embedding.weight.grad.clone()
    model.zero_grad()
    v = model.embedding.weight
    naive = sum((v[idx[a]] * v[idx[b]]).sum() * val[a] * val[b]
                for a in range(4) for b in range(a + 1, 4))
    naive.backward()
    assert torch.allclose(fast, model.embedding.weight.grad, rtol=1e-9, atol=1e-12)


def test_float32_forward_is_within_1e4_of_float64():
    model = random_model(50, 16, 2)
    idx = torch.randint(0, 50, (64, 8))
    val = torch.rand(64, 8, dtype=torch.float64)
    exact = model(idx, val)
    approx = model.float()(idx, val.float()).double()
    assert torch.allclose(approx, exact, rtol=1e-4, atol=1e-5)

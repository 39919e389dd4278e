"""The baselines (NFM, TransFM, DeepFM, xDeepFM, AFM) and the registry.

NFM's and TransFM's fast forms and user/item splits equal a naive double loop (float64, 1e-9
relative); DeepFM's FM part is FM; every registered model builds from its options, scores a
padded batch, learns a tiny problem, and ignores padding columns (val 0).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from training.models import MODELS, build_model
from training.models.deepfm import DeepFM, FieldPool
from training.models.fm import FM
from training.models.nfm import NFM
from training.models.transfm import TransFM

N_FEATURES = 20


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy CPU torch's thread pool makes the
    training test 100× slower: use one thread here, restore the setting after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

rows = st.integers(2, 9).flatmap(lambda w: st.tuples(
    st.lists(st.integers(0, N_FEATURES - 1), min_size=w, max_size=w),
    st.lists(st.floats(-2, 2, allow_nan=False), min_size=w, max_size=w)))
hypothesis_settings = settings(max_examples=40, deadline=None)


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))


def tensors(idx: list[int], val: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor([idx]), torch.tensor([val], dtype=torch.float64)


def linear_part(model, idx: list[int], val: list[float]) -> torch.Tensor:
    return model.w0 + sum(model.bias.weight[i, 0] * x for i, x in zip(idx, val))


# ---- NFM --------------------------------------------------------------------------------------
def naive_nfm(model: NFM, idx: list[int], val: list[float]) -> torch.Tensor:
    """w0 + Σ w x + pᵀ MLP(Σ_{a<b} x_a x_b v_a ⊙ v_b), the bi-interaction pair by pair."""
    v = model.embedding.weight
    bi = torch.zeros(v.shape[1], dtype=v.dtype)
    for a, b in itertools.combinations(range(len(idx)), 2):
        bi = bi + val[a] * val[b] * v[idx[a]] * v[idx[b]]
    return linear_part(model, idx, val) + model.mlp(bi).squeeze(-1)


@hypothesis_settings
@given(row=rows, k=st.integers(1, 6), layers=st.integers(0, 2), seed=st.integers(0, 10_000))
def test_nfm_forward_state_and_split_equal_naive(row, k, layers, seed):
    idx, val = row
    torch.manual_seed(seed)
    model = NFM(N_FEATURES, k, dropout=0.3, init_std=0.5, hidden_layers=layers).double().eval()
    idx_t, val_t = tensors(idx, val)
    cut = len(idx) // 2
    with torch.no_grad():
        expected = naive_nfm(model, idx, val)
        assert close(model(idx_t, val_t), expected)
        assert close(model.score_state(model.state(idx_t, val_t)), expected)
        user = model.state(idx_t[:, :cut], val_t[:, :cut])
        item = model.state(idx_t[:, cut:], val_t[:, cut:])
        assert close(model.combine(user, item), expected)


# ---- TransFM ----------------------------------------------------------------------------------
def naive_transfm(model: TransFM, idx: list[int], val: list[float]) -> torch.Tensor:
    """w0 + Σ w x + Σ_{a<b} x_a x_b |v_a + v'_a − v_b|², in column order."""
    v, shift = model.embedding.weight, model.translation.weight
    total = linear_part(model, idx, val)
    for a, b in itertools.combinations(range(len(idx)), 2):
        i, j = idx[a], idx[b]
        total = total + val[a] * val[b] * (v[i] + shift[i] - v[j]).square().sum()
    return total


def make_transfm(k: int, seed: int, form: str = "auto") -> TransFM:
    torch.manual_seed(seed)
    return TransFM(N_FEATURES, k, init_std=0.5, form=form).double().eval()


@hypothesis_settings
@given(row=rows, k=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_transfm_every_form_and_split_equal_naive(row, k, seed):
    idx, val = row
    idx_t, val_t = tensors(idx, val)
    cuts = sorted({len(idx) // 3, 2 * len(idx) // 3})
    for form in ("auto", "pairwise", "prefix"):
        model = make_transfm(k, seed, form)
        with torch.no_grad():
            expected = naive_transfm(model, idx, val)
            lin = model.w0 + model.linear(idx_t, val_t)
            assert close(lin + model.pairwise(idx_t, val_t), expected)
            assert close(lin + model.prefix(idx_t, val_t), expected)
            assert close(model(idx_t, val_t), expected)
            assert close(model.score_state(model.state(idx_t, val_t)), expected)
            user = model.state(idx_t[:, :cuts[0]], val_t[:, :cuts[0]])
            item = model.state(idx_t[:, cuts[0]:], val_t[:, cuts[0]:])
            assert close(model.combine(user, item), expected)
            # `+` concatenates columns in order: associative, so any cut into three agrees
            first, middle, last = (model.state(idx_t[:, s], val_t[:, s]) for s in (
                slice(0, cuts[0]), slice(cuts[0], cuts[-1]), slice(cuts[-1], None)))
            assert close(model.score_state(first + (middle + last)), expected)
            assert close(model.score_state((first + middle) + last), expected)


def test_transfm_gradients_agree_between_forms():
    idx, val = torch.tensor([[1, 5, 5, 9, 12]]), torch.tensor([[1.0, 0.5, -1.5, 2.0, 0.7]]).double()
    grads = []
    for form in ("pairwise", "prefix"):
        model = make_transfm(3, 4, form)
        model(idx, val).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for g_pairwise, g_prefix in zip(*grads):
        assert torch.allclose(g_pairwise, g_prefix, rtol=1e-9, atol=1e-12)


def test_transfm_split_is_ordered_and_broadcasts_one_user_over_items():
    model = make_transfm(4, 0)
    user_idx, user_val = torch.tensor([[1, 2]]), torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    item_idx = torch.randint(3, N_FEATURES, (7, 3))
    item_val = torch.rand(7, 3, dtype=torch.float64)
    joined = model(torch.cat([user_idx.expand(7, -1), item_idx], 1),
                   torch.cat([user_val.expand(7, -1), item_val], 1))
    user, item = model.state(user_idx, user_val), model.state(item_idx, item_val)
    with torch.no_grad():
        assert torch.allclose(model.combine(user, item), joined, rtol=1e-9)
        assert not torch.allclose(model.combine(item, user), joined, rtol=1e-3)


def test_nfm_split_broadcasts_one_user_over_items():
    torch.manual_seed(0)
    model = NFM(N_FEATURES, 4, init_std=0.5).double().eval()
    user_idx, user_val = torch.tensor([[1, 2]]), torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    item_idx = torch.randint(3, N_FEATURES, (7, 3))
    item_val = torch.rand(7, 3, dtype=torch.float64)
    with torch.no_grad():
        joined = model(torch.cat([user_idx.expand(7, -1), item_idx], 1),
                       torch.cat([user_val.expand(7, -1), item_val], 1))
        split = model.combine(model.state(user_idx, user_val), model.state(item_idx, item_val))
    assert torch.allclose(split, joined, rtol=1e-9)


# ---- field pooling and DeepFM -----------------------------------------------------------------
SLOTS = [4, 0, 2, 2, 7]  # any field positions; field 2 is multi-hot over two columns


def test_field_pool_sums_each_fields_columns_in_sorted_field_order():
    pool = FieldPool(SLOTS).double()
    v = torch.randn(3, 5, 4, dtype=torch.float64)
    val = torch.randn(3, 5, dtype=torch.float64)
    pooled = pool(v, val)
    assert pooled.shape == (3, 4, 4)
    for f, field in enumerate(sorted(set(SLOTS))):
        cols = [j for j, s in enumerate(SLOTS) if s == field]
        expected = sum(val[:, j, None] * v[:, j] for j in cols)
        assert torch.allclose(pooled[:, f], expected, rtol=1e-12)
    with pytest.raises(ValueError, match="columns"):
        pool(v[:, :4], val[:, :4])


def test_deepfm_is_fm_plus_its_dnn_over_field_vectors():
    torch.manual_seed(0)
    deep = DeepFM(N_FEATURES, 4, SLOTS, init_std=0.5).double().eval()
    fm = FM(N_FEATURES, 4).double().eval()
    fm.load_state_dict(deep.state_dict(), strict=False)  # shared w0, biases, embeddings
    idx = torch.randint(0, N_FEATURES, (6, 5))
    val = torch.randn(6, 5, dtype=torch.float64)
    with torch.no_grad():
        fields = torch.cat([sum(val[:, j, None] * deep.embed(idx)[:, j]
                                for j, s in enumerate(SLOTS) if s == field)
                            for field in sorted(set(SLOTS))], 1)  # (B, F*k), by hand
        assert torch.allclose(deep(idx, val), fm(idx, val) + deep.dnn(fields).squeeze(-1),
                              rtol=1e-9)
        deep.dnn[-1].weight.zero_()
        deep.dnn[-1].bias.zero_()
        assert torch.allclose(deep(idx, val), fm(idx, val), rtol=1e-12)


# ---- every registered model -------------------------------------------------------------------
COLUMN_MODELS = ("fm", "gmlfm", "nfm", "transfm")  # pair terms multiply x: columns may drop
PAD = 3  # column 3, the second genre column, is padding (val 0, index 0) in some rows


def padded_batch(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(1, N_FEATURES, (n, len(SLOTS)), generator=gen)
    val = torch.rand(n, len(SLOTS), generator=gen) + 0.5
    idx[::2, PAD], val[::2, PAD] = 0, 0.0
    return idx, val


def build(name: str, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, N_FEATURES, SLOTS, MODELS[name].options.make({"dim": 8, **options}))


def test_registry_holds_the_baselines():
    assert {"fm", "gmlfm", "nfm", "transfm", "deepfm", "xdeepfm", "afm"} <= set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_scores_a_padded_batch_finitely(name):
    model = build(name, dropout=0.2)
    idx, val = padded_batch(16, 1)
    for mode in (model.train, model.eval):
        mode()
        scores = model(idx, val)
        assert scores.shape == (16,) and torch.isfinite(scores).all()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_learns_a_tiny_problem(name):
    """y depends on one field's features: a few Adam steps must cut the squared loss."""
    model = build(name)
    idx, val = padded_batch(64, 2)
    y = (idx[:, 1] % 3).float() - 1.0  # a per-item target in {−1, 0, 1}
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(40):
        loss = (model(idx, val) - y).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_padding_columns_change_nothing(name):
    model = build(name, dropout=0.2).double().eval()
    idx, val = padded_batch(8, 3)
    val = val.double()
    other = idx.clone()
    other[val == 0] = torch.randint(1, N_FEATURES, (int((val == 0).sum()),))
    with torch.no_grad():
        assert torch.allclose(model(idx, val), model(other, val), rtol=1e-12)
        if name in COLUMN_MODELS:  # dropping the all-padding column is the same row
            keep = [j for j in range(len(SLOTS)) if j != PAD]
            even = slice(0, None, 2)
            assert torch.allclose(model(idx[even], val[even]),
                                  model(idx[even][:, keep], val[even][:, keep]), rtol=1e-12)

"""The baselines (NFM, TransFM, DeepFM, xDeepFM, AFM) and the registry.

Every model's forward equals its definition written as loops (references.py; float64, 1e-9
relative): NFM's and TransFM's fast forms and user/item splits too, DeepFM's FM and DNN parts,
xDeepFM's CIN, AFM's attention over field pairs (the paper's over feature pairs where every
field is one-hot). The registry holds exactly the README's models, each built from its options
scoring a padded batch as its definition says; each learns a tiny problem and ignores padding
columns (val 0).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.training.references import (
    REFERENCES,
    naive_afm,
    naive_cin,
    naive_deepfm,
    naive_nfm,
    naive_transfm,
    naive_xdeepfm,
    paper_afm,
)
from training.models import MODELS, build_model
from training.models.afm import AFM
from training.models.deepfm import DeepFM, FieldPool
from training.models.nfm import NFM
from training.models.transfm import TransFM
from training.models.xdeepfm import CIN, XDeepFM

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


# ---- NFM --------------------------------------------------------------------------------------
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


# ---- the field models: DeepFM, xDeepFM's CIN, AFM's attention ---------------------------------
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


fielded_rows = st.integers(2, 6).flatmap(lambda w: st.tuples(
    st.lists(st.integers(0, 4), min_size=w, max_size=w).filter(lambda s: len(set(s)) >= 2),
    st.lists(st.integers(0, N_FEATURES - 1), min_size=w, max_size=w),
    st.lists(st.floats(-2, 2, allow_nan=False), min_size=w, max_size=w)))
nonzero = st.floats(-2, 2, allow_nan=False).filter(lambda x: abs(x) > 1e-3)


def jittered(model: torch.nn.Module) -> torch.nn.Module:
    """float64, eval mode, every parameter moved off its start (zero biases, AFM's all-ones h
    and p), so a swapped index or a dropped term shows in the score."""
    model = model.double().eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter), alpha=0.3)
    return model


SMALL_SIZES = {DeepFM: {"hidden": (5, 3)}, XDeepFM: {"cin_sizes": (3, 2), "hidden": (5, 3)},
               AFM: {"attention": 4}}


def field_model(cls: type, slots: list[int], seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return jittered(cls(N_FEATURES, 3, slots, dropout=0.3, init_std=0.5, **SMALL_SIZES[cls]))


@pytest.mark.parametrize(("cls", "reference"), [(DeepFM, naive_deepfm),
                                                (XDeepFM, naive_xdeepfm), (AFM, naive_afm)])
@hypothesis_settings
@given(row=fielded_rows, seed=st.integers(0, 10_000))
def test_field_model_forward_equals_its_definition(cls, reference, row, seed):
    slots, idx, val = row
    model = field_model(cls, slots, seed)
    with torch.no_grad():
        assert close(model(*tensors(idx, val)), reference(model, idx, val, slots))


@hypothesis_settings
@given(n_fields=st.integers(1, 5), k=st.integers(1, 4),
       sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=st.integers(0, 10_000))
def test_cin_equals_the_papers_layer_recursion(n_fields, k, sizes, seed):
    torch.manual_seed(seed)
    cin = CIN(n_fields, sizes).double()
    e = torch.randn(3, n_fields, k, dtype=torch.float64)
    with torch.no_grad():
        scores = cin(e)
    assert scores.shape == (3,)
    for row in range(3):
        assert close(scores[row], naive_cin(cin, e[row].tolist()))


@hypothesis_settings
@given(idx=st.lists(st.integers(0, N_FEATURES - 1), min_size=4, max_size=4),
       val=st.lists(nonzero, min_size=4, max_size=4), seed=st.integers(0, 10_000))
def test_afm_is_the_papers_over_feature_pairs_when_every_field_is_one_hot(idx, val, seed):
    model = field_model(AFM, [0, 1, 2, 3], seed)
    with torch.no_grad():
        assert close(model(*tensors(idx, val)), paper_afm(model, idx, val))


def test_afm_gives_an_all_padding_field_its_share_of_the_softmax():
    """Where the model departs from the paper, as its docstring says: the paper's softmax runs
    over pairs of non-zero features, the model's over every pair of fields, so a field that is
    all padding (an item without a genre) keeps pairs with a zero product and logit hᵀReLU(b),
    which thin the other pairs' weights."""
    model = field_model(AFM, SLOTS, 0)
    idx, val = [3, 5, 0, 0, 9], [1.0, 0.5, 0.0, 0.0, 1.5]  # field 2 (columns 2, 3) is padding
    with torch.no_grad():
        score = model(*tensors(idx, val))
        assert close(score, naive_afm(model, idx, val, SLOTS))
        assert not close(score, paper_afm(model, idx, val))


# ---- every registered model -------------------------------------------------------------------
COLUMN_MODELS = ("fm", "gmlfm", "nfm", "transfm")  # pair terms multiply x: columns may drop
PAD = 3  # column 3, the second genre column, is padding (val 0, index 0) in some rows
README = Path(__file__).resolve().parents[2] / "README.md"


def padded_batch(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(1, N_FEATURES, (n, len(SLOTS)), generator=gen)
    val = torch.rand(n, len(SLOTS), generator=gen) + 0.5
    idx[::2, PAD], val[::2, PAD] = 0, 0.0
    return idx, val


def build(name: str, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, N_FEATURES, SLOTS, MODELS[name].options.make({"dim": 8, **options}))


def readme_model_names() -> set[str]:
    """The backquoted names in the first column of the README's table headed `| name |`."""
    lines = README.read_text(encoding="utf-8").splitlines()
    header = next((n for n, line in enumerate(lines) if re.match(r"\|\s*name\s*\|", line)), None)
    assert header is not None, "README.md has no model table headed | name |"
    names: set[str] = set()
    for line in lines[header + 2:]:  # past the header and its |---| row
        if not line.startswith("|"):
            break
        names |= set(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return names


def test_registry_holds_exactly_the_models_the_readme_lists():
    assert readme_model_names() == set(MODELS) == set(REFERENCES)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_scores_a_batch_as_its_definition(name):
    """Built from its options as `fit` builds it, at the registry's own layer sizes."""
    model = jittered(build(name, init_std=0.5))
    idx, val = padded_batch(4, 1)
    val = val.double()
    with torch.no_grad():
        scores = model(idx, val)
        assert scores.shape == (4,)
        for row in range(4):
            expected = REFERENCES[name](model, idx[row].tolist(), val[row].tolist(), SLOTS)
            assert close(scores[row], expected)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_dropout_acts_in_training_mode_only(name):
    """A model holding a live Dropout changes its scores in training mode; one without scores
    the same in both modes. Either way evaluation is deterministic."""
    model = build(name, dropout=0.2)
    has_dropout = any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules())
    idx, val = padded_batch(16, 1)
    with torch.no_grad():
        evaluated = model.eval()(idx, val)
        assert torch.equal(model(idx, val), evaluated)
        trained = model.train()(idx, val)
    assert torch.isfinite(trained).all()
    assert torch.equal(trained, evaluated) != has_dropout


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

"""The loss library: fused == einops == literal reference (values and gradients), properties, bad input."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from ldrld_mini.losses import (
    LDRLDParts, LossParts, adw, build_loss, dkd_loss, erd, group_kl, irw, kd_loss, ldrld_loss, ldrld_terms_einops,
    ldrld_terms_fused, pair_positions, pair_weights, pairwise_kl, remaining_non_target_kl, top_k_decouple,
)
from ldrld_mini.losses.reference import ldrld_masked, ldrld_reference

IMPLS = {"fused": ldrld_terms_fused, "einops": ldrld_terms_einops, "reference": ldrld_reference}


def make_logits(batch, classes, scale, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    student = (torch.randn(batch, classes, generator=gen, dtype=torch.float64) * scale).to(dtype)
    teacher = (torch.randn(batch, classes, generator=gen, dtype=torch.float64) * scale).to(dtype)
    return student.requires_grad_(), teacher


def terms_and_grads(impl, student, teacher, **options):
    local, rest = IMPLS[impl](student, teacher, **options)
    grad_local, = torch.autograd.grad(local, student, retain_graph=True)
    grad_rest, = torch.autograd.grad(rest, student, allow_unused=True) if rest.requires_grad else (None,)
    if grad_rest is None:
        grad_rest = torch.zeros_like(student)
    return local.detach(), rest.detach(), grad_local, grad_rest


def assert_all_equal(student, teacher, **options):
    expected = terms_and_grads("reference", student, teacher, **options)
    for impl in ("fused", "einops"):
        got = terms_and_grads(impl, student, teacher, **options)
        for name, a, b in zip(("ldrld", "rntk", "grad ldrld", "grad rntk"), got, expected):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=lambda m: f"{impl} {name}: {m}")


# -- the published constants ------------------------------------------------------------------------------

def test_adw_golden_values():
    assert adw(1, 2) == pytest.approx(0.6886, abs=1e-4)
    assert adw(1, 7) == pytest.approx(0.1788, abs=1e-4)
    assert adw(6, 7) == pytest.approx(0.4176, abs=1e-4)
    assert float(pair_weights(7, dtype=torch.float64).sum()) == pytest.approx(7.7237, abs=1e-4)
    assert irw(3, 1) == pytest.approx(1 / 3.5) and erd(1, 2) == pytest.approx(2 * math.exp(-0.15))


def test_pair_positions_peel_order():
    a, b = pair_positions(4)
    assert list(zip(a.tolist(), b.tolist())) == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    assert len(pair_positions(7)[0]) == 21


# -- exactness: three implementations agree -----------------------------------------------------------------

GRID = [  # (k, C, T, scale)
    (3, 4, 1.0, 0.5), (7, 100, 4.0, 5.0), (12, 1000, 6.5, 20.0), (5, 10, 2.0, 1.0),
    (7, 7, 4.0, 3.0), (10, 50, 1.0, 20.0), (4, 200, 6.5, 0.5), (2, 5, 4.0, 2.0), (11, 12, 2.0, 10.0),
]


@pytest.mark.parametrize("k,classes,temperature,scale", GRID)
def test_fused_einops_reference_equal(k, classes, temperature, scale):
    student, teacher = make_logits(3, classes, scale, seed=k * 1000 + classes)
    assert_all_equal(student, teacher, k=k, temperature=temperature)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(k=st.integers(3, 12), extra=st.integers(0, 60), temperature=st.sampled_from([1.0, 2.0, 4.0, 6.5]),
       scale=st.floats(0.5, 20.0), seed=st.integers(0, 10_000))
def test_equal_on_random_inputs(k, extra, temperature, scale, seed):
    student, teacher = make_logits(2, k + extra, scale, seed)
    assert_all_equal(student, teacher, k=k, temperature=temperature)


@pytest.mark.parametrize("rank_by,reduction", list(itertools.product(["student", "teacher"], ["mean", "sum"])))
def test_options_equal(rank_by, reduction):
    student, teacher = make_logits(4, 30, 3.0, seed=7)
    assert_all_equal(student, teacher, k=6, rank_by=rank_by, reduction=reduction)


def test_sum_reduction_is_mean_times_groups():
    student, teacher = make_logits(4, 30, 3.0, seed=8)
    mean, _ = ldrld_terms_fused(student, teacher, k=7)
    total, _ = ldrld_terms_fused(student, teacher, k=7, reduction="sum")
    torch.testing.assert_close(total, mean * 22)


def test_masked_public_formulation_matches():
    student, teacher = make_logits(5, 100, 4.0, seed=3)
    expected = ldrld_reference(student, teacher, k=7)
    got = ldrld_masked(student, teacher, k=7)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_constants_are_options():
    student, teacher = make_logits(3, 20, 2.0, seed=5)
    options = dict(k=5, epsilon=0.5, delta=3.0, lam=0.2)
    assert_all_equal(student, teacher, **options)
    default, _ = ldrld_terms_fused(student, teacher, k=5)
    changed, _ = ldrld_terms_fused(student, teacher, **options)
    assert not torch.allclose(default, changed)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_inputs_computed_in_float32(dtype):
    student, teacher = make_logits(8, 100, 8.0, seed=11, dtype=dtype)
    target = torch.randint(0, 100, (8,))
    parts = ldrld_loss(student, teacher, target)
    upcast = student.detach().float().requires_grad_()
    expected = ldrld_loss(upcast, teacher.float(), target)
    assert parts.total.dtype == torch.float32 and torch.isfinite(parts.total)
    for a, b in zip(parts, expected):
        torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=1e-6)
    parts.total.backward()
    expected.total.backward()
    assert student.grad.dtype == dtype
    # CE and LDRLD gradients are each rounded to the input dtype before they add up
    torch.testing.assert_close(student.grad.float(), upcast.grad, rtol=1e-2, atol=2e-3)


# -- properties -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", ["fused", "einops"])
def test_kl_terms_non_negative_and_zero_on_equal_logits(impl):
    student, teacher = make_logits(6, 40, 6.0, seed=1)
    local, rest = IMPLS[impl](student, teacher, k=7)
    assert local > 0 and rest > 0
    same_local, same_rest = IMPLS[impl](teacher.clone().requires_grad_(), teacher, k=7)
    assert same_local.abs() < 1e-12 and same_rest.abs() < 1e-12
    index, s_top, t_top = top_k_decouple(student, teacher, 7)
    assert (pairwise_kl(s_top, t_top, 4.0) >= -1e-12).all()
    assert (group_kl(s_top, t_top, 4.0) >= -1e-12).all()
    assert (remaining_non_target_kl(student, teacher, index, 4.0) >= -1e-12).all()


@pytest.mark.parametrize("impl", ["fused", "einops"])
def test_invariant_to_per_row_constants(impl):
    student, teacher = make_logits(4, 25, 3.0, seed=2)
    shift_s = torch.randn(4, 1, dtype=torch.float64) * 50
    shift_t = torch.randn(4, 1, dtype=torch.float64) * 50
    base = IMPLS[impl](student, teacher, k=6)
    shifted = IMPLS[impl](student + shift_s, teacher + shift_t, k=6)
    for a, b in zip(base, shifted):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("impl", ["fused", "einops"])
def test_rntk_zero_exactly_when_k_equals_classes(impl):
    student, teacher = make_logits(3, 9, 3.0, seed=4)
    assert IMPLS[impl](student, teacher, k=9)[1].item() == 0.0
    assert IMPLS[impl](student, teacher, k=8)[1].item() == 0.0  # one class left: a 1-class softmax
    assert IMPLS[impl](student, teacher, k=7)[1].item() > 0.0


@pytest.mark.parametrize("impl", ["fused", "einops"])
def test_teacher_gets_no_gradient(impl):
    student, _ = make_logits(4, 30, 3.0, seed=6)
    teacher = torch.randn(4, 30, dtype=torch.float64, requires_grad=True)
    parts = ldrld_loss(student, teacher, torch.arange(4), impl=impl)
    assert not parts.local.grad_fn is None
    parts.total.backward()
    assert teacher.grad is None and student.grad is not None


@pytest.mark.parametrize("impl", ["fused", "einops"])
def test_finite_at_huge_logits(impl):
    student, teacher = make_logits(4, 100, 1e4, seed=9, dtype=torch.float32)
    parts = ldrld_loss(student, teacher, torch.arange(4), temperature=1.0, impl=impl)
    parts.total.backward()
    assert all(torch.isfinite(p) for p in parts) and torch.isfinite(student.grad).all()


def test_huge_logits_fused_equals_einops():
    student, teacher = make_logits(4, 50, 1e4, seed=10)
    for temperature in (1.0, 4.0):
        fast = terms_and_grads("fused", student, teacher, k=7, temperature=temperature)
        readable = terms_and_grads("einops", student, teacher, k=7, temperature=temperature)
        for a, b in zip(fast, readable):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-6)


def test_total_combines_the_parts():
    student, teacher = make_logits(5, 100, 3.0, seed=12)
    target = torch.randint(0, 100, (5,))
    parts = ldrld_loss(student, teacher, target, alpha=2.0, beta=3.0, ce_weight=0.5)
    assert isinstance(parts, LDRLDParts) and parts._fields == ("total", "ce", "local", "remaining")
    assert LossParts is LDRLDParts and (parts.ldrld, parts.rntk) == (parts.local, parts.remaining)  # old names read
    torch.testing.assert_close(parts.total, 0.5 * parts.ce + 2.0 * parts.local + 3.0 * parts.remaining)
    torch.testing.assert_close(parts.ce, F.cross_entropy(student, target))


def test_k2_weights_the_whole_group_like_the_public_code():
    student, teacher = make_logits(3, 6, 2.0, seed=13)
    local, _ = ldrld_terms_fused(student, teacher, k=2)
    _, s_top, t_top = top_k_decouple(student, teacher, 2)
    pair = pairwise_kl(s_top, t_top, 4.0)[:, 0]
    torch.testing.assert_close(local, (adw(1, 2) * pair).mean(), rtol=1e-12, atol=0)


# -- KD and DKD -------------------------------------------------------------------------------------------

def test_kd_matches_the_textbook_formula():
    student, teacher = make_logits(6, 10, 3.0, seed=14)
    target = torch.randint(0, 10, (6,))
    parts = kd_loss(student, teacher, target, temperature=4.0)
    p_t = F.softmax(teacher / 4, dim=1)
    expected = (p_t * (p_t.log() - F.log_softmax(student / 4, dim=1))).sum(1).mean() * 16
    torch.testing.assert_close(parts.kd, expected)
    torch.testing.assert_close(parts.total, 0.1 * parts.ce + 0.9 * parts.kd)


def test_dkd_matches_the_masked_mdistiller_formula():
    student, teacher = make_logits(6, 10, 3.0, seed=15)
    target = torch.randint(0, 10, (6,))
    temperature, batch = 4.0, 6
    gt = F.one_hot(target, 10).double()
    p_s, p_t = F.softmax(student / temperature, 1), F.softmax(teacher / temperature, 1)
    b_s = torch.stack([(p_s * gt).sum(1), (p_s * (1 - gt)).sum(1)], 1)
    b_t = torch.stack([(p_t * gt).sum(1), (p_t * (1 - gt)).sum(1)], 1)
    tckd = (b_t * (b_t.log() - b_s.log())).sum() * temperature**2 / batch
    q_t = F.softmax(teacher / temperature - 1000 * gt, 1)
    log_q_s = F.log_softmax(student / temperature - 1000 * gt, 1)
    nckd = (q_t * (torch.log(q_t + 1e-300) - log_q_s) * (1 - gt)).sum() * temperature**2 / batch
    parts = dkd_loss(student, teacher, target, epoch=10)
    torch.testing.assert_close(parts.tckd, tckd)
    torch.testing.assert_close(parts.nckd, nckd)
    torch.testing.assert_close(parts.total, parts.ce + 0.5 * (tckd + 8 * nckd))


def test_build_loss_registry_and_modules():
    student, teacher = make_logits(4, 20, 2.0, seed=16)
    target = torch.randint(0, 20, (4,))
    for name, fields in [("ce", ("total", "ce")), ("kd", ("total", "ce", "kd")),
                         ("dkd", ("total", "ce", "tckd", "nckd")), ("ldrld", LossParts._fields)]:
        loss_fn = build_loss(name)
        parts = loss_fn(student, teacher, target, epoch=3)
        assert parts._fields == tuple(fields) and parts.total.dim() == 0
        assert loss_fn.needs_teacher == (name != "ce")
    module = build_loss("ldrld", k=5, alpha=1.0, beta=2.0)
    torch.testing.assert_close(module(student, teacher, target).total,
                               ldrld_loss(student, teacher, target, k=5, alpha=1.0, beta=2.0).total)
    with pytest.raises(ValueError, match="loss name 'ldlrd' is unknown"):
        build_loss("ldlrd")
    with pytest.raises(ValueError, match="bad option"):
        build_loss("kd", alpha=3)


# -- bad input --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 0, 11, -3, 7.5, True])
def test_bad_k_names_the_argument_and_the_range(k):
    student, teacher = make_logits(2, 10, 1.0, seed=0)
    with pytest.raises(ValueError, match=r"k must be an integer in \[2, 10\]"):
        ldrld_loss(student, teacher, torch.zeros(2, dtype=torch.long), k=k)


@pytest.mark.parametrize("student_shape,teacher_shape,message", [
    ((4, 10), (4, 12), "same number of classes"),
    ((4, 10), (3, 10), "same batch"),
    ((4, 10, 2), (4, 10, 2), "must be 2-D"),
])
def test_bad_shapes(student_shape, teacher_shape, message):
    with pytest.raises(ValueError, match=message):
        ldrld_loss(torch.randn(student_shape), torch.randn(teacher_shape), torch.zeros(4, dtype=torch.long))


def test_bad_dtype_and_targets():
    student, teacher = torch.randn(4, 10), torch.randn(4, 10)
    with pytest.raises(ValueError, match="logits_student must have a floating dtype"):
        ldrld_loss(torch.ones(4, 10, dtype=torch.long), teacher, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="target has 3 labels but the logits have 4 rows"):
        ldrld_loss(student, teacher, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        ldrld_loss(student, teacher, torch.tensor([0, 1, 2, 10]))
    with pytest.raises(ValueError, match="target must be a 1-D integer tensor"):
        kd_loss(student, teacher, torch.zeros(4))
    with pytest.raises(ValueError, match="rank_by must be one of"):
        ldrld_loss(student, teacher, torch.zeros(4, dtype=torch.long), rank_by="label")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        dkd_loss(student, teacher, torch.zeros(4, dtype=torch.long), temperature=0)


# -- the fused fast node: every output's gradient, the CE-free and large-k paths ------------------------------

@pytest.mark.parametrize("ce_weight", [1.0, 0.5, 0.0])
def test_fast_parts_each_have_the_einops_gradient(ce_weight):
    student, teacher = make_logits(5, 30, 3.0, seed=21)
    target = torch.randint(0, 30, (5,), generator=torch.Generator().manual_seed(1))
    options = dict(k=6, alpha=2.5, beta=1.5, ce_weight=ce_weight)
    fast, readable = ldrld_loss(student, teacher, target, **options), ldrld_loss(student, teacher, target,
                                                                                   impl="einops", **options)
    combos = {"total": lambda p: p.total, "ce": lambda p: p.ce, "local": lambda p: p.local,
              "remaining": lambda p: p.remaining,
              "mix": lambda p: 2 * p.total - 3 * p.ce + 0.5 * p.local + p.remaining}
    for name, pick in combos.items():
        a, = torch.autograd.grad(pick(fast), student, retain_graph=True)
        b, = torch.autograd.grad(pick(readable), student, retain_graph=True)
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=lambda m: f"{name}: {m}")
    for a, b in zip(fast, readable):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_fast_without_gradient_gives_the_same_values():
    student, teacher = make_logits(4, 40, 3.0, seed=22)
    target = torch.arange(4)
    with torch.no_grad():
        cold = ldrld_loss(student, teacher, target)
    warm = ldrld_loss(student, teacher, target)
    assert all(not p.requires_grad for p in cold)
    for a, b in zip(cold, warm):
        assert torch.equal(a, b.detach())


def test_fast_falls_back_above_the_pair_matrix_limit():
    from ldrld_mini.losses.ldrld_fused import PAIR_MATRIX_MAX_K

    k = PAIR_MATRIX_MAX_K + 1
    student, teacher = make_logits(1, k + 2, 2.0, seed=23)
    assert_all_equal(student, teacher, k=k)


@pytest.mark.parametrize("impl,edit_reaches_the_loss", [("einops", True), ("fused", False)])
def test_an_edit_to_a_named_piece_trains_only_with_the_einops_impl(monkeypatch, impl, edit_reaches_the_loss):
    """What the docstrings, docs/losses.md and notebook 08 tell a learner: `ldrld_loss` (and the module) run the
    named pieces of losses/ldrld.py only with impl="einops"; the default fused node never calls them."""
    import ldrld_mini.losses.ldrld as readable

    student, teacher = make_logits(4, 12, 3.0, seed=60)
    target = torch.arange(4)
    before = build_loss("ldrld", k=5, impl=impl)(student, teacher, target)
    real = readable.pairwise_kl
    monkeypatch.setattr(readable, "pairwise_kl", lambda *a, **o: 2 * real(*a, **o))  # a learner's edit
    after = build_loss("ldrld", k=5, impl=impl)(student, teacher, target)
    assert torch.equal(after.total, before.total) is not edit_reaches_the_loss


@pytest.mark.parametrize("make", [lambda: ldrld_loss(*make_logits(2, 10, 3.0, seed=61), torch.arange(2), impl="fast"),
                                  lambda: build_loss("ldrld", impl="fast")], ids=["ldrld_loss", "build_loss"])
def test_the_old_impl_name_fast_says_its_new_name(make):
    """`impl="fast"` became `"fused"` ("fast" names only the training path): the error says so."""
    with pytest.raises(ValueError, match=r"impl must be one of \('fused', 'einops'\), got 'fast' \('fast' is now called "
                                         r"'fused'\)"):
        make()

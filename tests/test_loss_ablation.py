"""LDRLD's parts switched off one at a time (`pair_weighting`, `whole_group`): every implementation equals the
extended literal reference, hand-computed values, defaults unchanged, bad values, reduced precision, and the
recipe keys reaching the loss in training (standard and fast path)."""
import itertools
import math

import pytest
import torch

from ldrld_mini.losses import (
    PAIR_WEIGHTINGS, LDRLDLoss, build_loss, erd, irw, ldrld_loss, ldrld_terms_einops, ldrld_terms_fused, llki_weight,
    pair_positions, pair_weights, rank_weight,
)
from ldrld_mini.losses.ldrld_fused import PAIR_MATRIX_MAX_K
from ldrld_mini.losses.reference import ldrld_reference

TERMS = {"fused": ldrld_terms_fused, "einops": ldrld_terms_einops, "reference": ldrld_reference}
TOL = dict(rtol=1e-9, atol=1e-12)
T = 4.0


def make_logits(batch, classes, seed, scale=3.0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, classes, generator=gen, dtype=torch.float64) * scale
    teacher = torch.randn(batch, classes, generator=gen, dtype=torch.float64) * scale
    return student.to(dtype).requires_grad_(), teacher.to(dtype)


def terms_and_grads(impl, student, teacher, **options):
    """(ldrld, rntk, d ldrld / d student, d rntk / d student) of one implementation's terms."""
    local, rest = TERMS[impl](student, teacher, **options)
    grad_local, = torch.autograd.grad(local, student, retain_graph=True)
    grad_rest = torch.autograd.grad(rest, student)[0] if rest.requires_grad else torch.zeros_like(student)
    return local.detach(), rest.detach(), grad_local, grad_rest


def assert_close(got, want, what):
    torch.testing.assert_close(got, want, **TOL, msg=lambda m: f"{what}: {m}")


# -- every implementation == the extended literal reference -------------------------------------------------------

OPTIONS = list(itertools.product([2, 3, 7], PAIR_WEIGHTINGS, [True, False], ["mean", "sum"]))


@pytest.mark.parametrize("k,pair_weighting,whole_group,reduction", OPTIONS)
def test_terms_equal_the_reference(k, pair_weighting, whole_group, reduction):
    student, teacher = make_logits(3, k + 5, seed=k * 100 + len(pair_weighting))
    options = dict(k=k, pair_weighting=pair_weighting, whole_group=whole_group, reduction=reduction)
    expected = terms_and_grads("reference", student, teacher, **options)
    for impl in ("fused", "einops"):
        got = terms_and_grads(impl, student, teacher, **options)
        for name, a, b in zip(("ldrld", "rntk", "grad ldrld", "grad rntk"), got, expected):
            assert_close(a, b, f"{impl} {name}")


@pytest.mark.parametrize("k,pair_weighting,whole_group,reduction", OPTIONS)
def test_total_and_its_gradient_equal_the_reference(k, pair_weighting, whole_group, reduction):
    """`ldrld_loss`'s total (the fused node's own backward path for `total`) against the reference's terms."""
    student, teacher = make_logits(4, k + 6, seed=k * 100 + 7)
    target = torch.tensor([0, 3, k, k + 5])
    options = dict(k=k, pair_weighting=pair_weighting, whole_group=whole_group, reduction=reduction)
    weights = dict(alpha=2.5, beta=1.5, ce_weight=0.5 if whole_group else 0.0)
    local, rest = ldrld_reference(student, teacher, **options)
    ce = torch.nn.functional.cross_entropy(student, target)
    want = weights["ce_weight"] * ce + weights["alpha"] * local + weights["beta"] * rest
    want_grad, = torch.autograd.grad(want, student)
    for impl in ("fused", "einops"):
        parts = ldrld_loss(student, teacher, target, impl=impl, **options, **weights)
        assert_close(parts.total.detach(), want.detach(), f"{impl} total")
        assert_close(parts.local.detach(), local.detach(), f"{impl} ldrld")
        grad, = torch.autograd.grad(parts.total, student)
        assert_close(grad, want_grad, f"{impl} d total / d student")


@pytest.mark.parametrize("pair_weighting,whole_group", list(itertools.product(PAIR_WEIGHTINGS, [True, False])))
def test_above_the_pair_matrix_limit(pair_weighting, whole_group):
    """k > 64: the fast impl runs the einops form with the same options; one reference check per weighting."""
    k = PAIR_MATRIX_MAX_K + 1
    student, teacher = make_logits(1, k + 2, seed=31)
    reduction = "mean" if whole_group else "sum"
    options = dict(k=k, pair_weighting=pair_weighting, whole_group=whole_group, reduction=reduction)
    fast, readable = (terms_and_grads(impl, student, teacher, **options) for impl in ("fused", "einops"))
    for a, b in zip(fast, readable):
        assert_close(a, b, "fast fallback == einops")
    if whole_group is False and pair_weighting in ("adw", "uniform"):  # the reference loops are slow at k = 65
        for a, b in zip(fast, terms_and_grads("reference", student, teacher, **options)):
            assert_close(a, b, "fast fallback == reference")


# -- hand-computed checks ----------------------------------------------------------------------------------------

def pair_kls_by_hand(student, teacher, k):
    """(B, C(k,2)) `T^2 KL` of each top-k pair's 2-class softmax, written out without the package."""
    rows = []
    for zs, zt in zip(student, teacher):
        top = torch.topk(zs.detach(), k).indices.tolist()
        row = []
        for b in range(1, k):
            for a in range(b):
                i, j = top[a], top[b]
                p_t = torch.softmax(torch.stack([zt[i], zt[j]]) / T, 0)
                log_p_s = torch.log_softmax(torch.stack([zs[i], zs[j]]) / T, 0)
                row.append((p_t * (p_t.log() - log_p_s)).sum() * T * T)
        rows.append(torch.stack(row))
    return torch.stack(rows)


def group_kl_by_hand(student, teacher, k):
    """(B,) `T^2 KL` of the softmax over each sample's whole top-k."""
    top = torch.topk(student.detach(), k, dim=1).indices
    p_t = torch.softmax(teacher.gather(1, top) / T, 1)
    log_p_s = torch.log_softmax(student.gather(1, top) / T, 1)
    return (p_t * (p_t.log() - log_p_s)).sum(1) * T * T


def literal_weights(k, pair_weighting):
    """The pair weights from the formulas, ranks 1-based, pairs in peeling order."""
    formulas = {"irw": lambda r, s: 1 / (1.5 + abs(r - s)), "erd": lambda r, s: 2.0 * math.exp(-0.05 * (r + s)),
                "adw": lambda r, s: 2.0 * math.exp(-0.05 * (r + s)) / (1.5 + abs(r - s)), "uniform": lambda r, s: 1.0}
    return torch.tensor([formulas[pair_weighting](a + 1, b + 1) for b in range(1, k) for a in range(b)],
                        dtype=torch.float64)


@pytest.mark.parametrize("impl", list(TERMS))
def test_uniform_without_group_is_the_plain_mean_of_the_pair_kls(impl):
    student, teacher = make_logits(5, 20, seed=41)
    by_hand = pair_kls_by_hand(student, teacher, 6)  # (5, 15)
    options = dict(k=6, pair_weighting="uniform", whole_group=False)
    assert_close(TERMS[impl](student, teacher, **options)[0], by_hand.mean(), f"{impl} mean")
    assert_close(TERMS[impl](student, teacher, reduction="sum", **options)[0], by_hand.sum(1).mean(), f"{impl} sum")


@pytest.mark.parametrize("impl", list(TERMS))
@pytest.mark.parametrize("pair_weighting", PAIR_WEIGHTINGS)
def test_each_weighting_weighs_the_pairs_by_its_formula(impl, pair_weighting):
    student, teacher = make_logits(4, 15, seed=42)
    by_hand = pair_kls_by_hand(student, teacher, 5) @ literal_weights(5, pair_weighting)  # (4,)
    local, _ = TERMS[impl](student, teacher, k=5, pair_weighting=pair_weighting, whole_group=False, reduction="sum")
    assert_close(local, by_hand.mean(), f"{impl} {pair_weighting}")
    # the whole top-k group adds its plain KL (weight 1 above k = 2), and one more group to the mean
    with_group, _ = TERMS[impl](student, teacher, k=5, pair_weighting=pair_weighting)
    assert_close(with_group, (by_hand + group_kl_by_hand(student, teacher, 5)).mean() / 11, f"{impl} with group")


@pytest.mark.parametrize("impl", list(TERMS))
@pytest.mark.parametrize("pair_weighting", PAIR_WEIGHTINGS)
def test_k2_group_gets_the_single_pairs_weight(impl, pair_weighting):
    student, teacher = make_logits(3, 6, seed=43)
    pair = pair_kls_by_hand(student, teacher, 2)[:, 0]  # the group of k = 2 is this pair again
    weight = literal_weights(2, pair_weighting)[0]
    with_group, _ = TERMS[impl](student, teacher, k=2, pair_weighting=pair_weighting, reduction="sum")
    assert_close(with_group, (2 * weight * pair).mean(), f"{impl} k=2 with group")
    alone, _ = TERMS[impl](student, teacher, k=2, pair_weighting=pair_weighting, whole_group=False)
    assert_close(alone, (weight * pair).mean(), f"{impl} k=2 without group")


def test_weights_are_irw_erd_and_their_product():
    for k in (2, 3, 7, 12):
        a, b = pair_positions(k)
        ranks = (a.double() + 1, b.double() + 1)
        by_name = {w: pair_weights(k, dtype=torch.float64, pair_weighting=w) for w in PAIR_WEIGHTINGS}
        torch.testing.assert_close(by_name["irw"], irw(*ranks), rtol=0, atol=0)
        torch.testing.assert_close(by_name["erd"], erd(*ranks), rtol=0, atol=0)
        torch.testing.assert_close(by_name["adw"], by_name["irw"] * by_name["erd"], rtol=1e-15, atol=0)
        assert torch.equal(by_name["uniform"], torch.ones(len(a), dtype=torch.float64))
        for name, weights in by_name.items():
            torch.testing.assert_close(weights, literal_weights(k, name), rtol=1e-15, atol=0)
        assert torch.equal(by_name["adw"], pair_weights(k, dtype=torch.float64))  # the default is ADW, bit for bit
    assert irw(3, 1) == rank_weight(3, 1, "irw") == pytest.approx(1 / 3.5)
    assert rank_weight(1, 2, "erd") == pytest.approx(2 * math.exp(-0.15)) and rank_weight(4, 6, "uniform") == 1.0
    for name in PAIR_WEIGHTINGS:
        assert llki_weight(2, pair_weighting=name) == rank_weight(1, 2, name) and llki_weight(3, pair_weighting=name) == 1


# -- defaults, bad values ----------------------------------------------------------------------------------------

def test_defaults_are_the_published_loss_bit_for_bit():
    from inspect import signature

    for fn in (ldrld_loss, LDRLDLoss.__init__, ldrld_terms_fused, ldrld_terms_einops, ldrld_reference):
        params = signature(fn).parameters
        assert (params["pair_weighting"].default, params["whole_group"].default) == ("adw", True), fn.__qualname__
    student, teacher = make_logits(4, 30, seed=44, dtype=torch.float32)
    target = torch.arange(4)
    for impl in ("fused", "einops"):
        plain = ldrld_loss(student, teacher, target, impl=impl)
        explicit = ldrld_loss(student, teacher, target, impl=impl, pair_weighting="adw", whole_group=True)
        assert all(torch.equal(a, b) for a, b in zip(plain, explicit))
        other = ldrld_loss(student, teacher, target, impl=impl, pair_weighting="uniform")
        assert not torch.equal(other.local, plain.local) and torch.equal(other.remaining, plain.remaining)


BAD = [("pair_weighting", "ADW", r"pair_weighting must be one of \('adw', 'irw', 'erd', 'uniform'\), got 'ADW'"),
       ("pair_weighting", None, r"pair_weighting must be one of .*, got None"),
       ("whole_group", "yes", r"whole_group must be one of \(True, False\), got 'yes'"),
       ("whole_group", 1, r"whole_group must be one of \(True, False\), got 1")]


@pytest.mark.parametrize("name,value,message", BAD)
def test_bad_values_name_the_argument_the_value_and_the_choices(name, value, message):
    student, teacher = make_logits(2, 10, seed=0)
    target = torch.zeros(2, dtype=torch.long)
    calls = {"ldrld_loss fused": lambda **o: ldrld_loss(student, teacher, target, **o),
             "ldrld_loss einops": lambda **o: ldrld_loss(student, teacher, target, impl="einops", **o),
             "LDRLDLoss": lambda **o: LDRLDLoss(**o), "build_loss": lambda **o: build_loss("ldrld", **o),
             **{impl: (lambda fn: lambda **o: fn(student, teacher, k=3, **o))(fn) for impl, fn in TERMS.items()}}
    for where, call in calls.items():
        with pytest.raises(ValueError, match=message):
            call(**{name: value})
            pytest.fail(f"{where} accepted {name}={value!r}")


# -- reduced precision ---------------------------------------------------------------------------------------------

EVERY_OPTION = list(itertools.product(PAIR_WEIGHTINGS, [True, False]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("impl,k,combos", [("fused", 5, EVERY_OPTION), ("einops", 5, EVERY_OPTION),
                                           ("fused", PAIR_MATRIX_MAX_K + 1, [("uniform", False), ("irw", True)])],
                         ids=["fused", "einops", "fused-fallback"])
def test_reduced_precision_logits_with_the_options(dtype, impl, k, combos):
    for pair_weighting, whole_group in combos:
        student, teacher = make_logits(4, k + 10, seed=45, scale=6.0, dtype=dtype)
        target = torch.arange(4)
        options = dict(k=k, pair_weighting=pair_weighting, whole_group=whole_group, impl=impl)
        parts = ldrld_loss(student, teacher, target, **options)
        upcast = student.detach().float().requires_grad_()
        expected = ldrld_loss(upcast, teacher.float(), target, **options)
        assert parts.total.dtype == torch.float32 and all(torch.isfinite(p) for p in parts)
        for a, b in zip(parts, expected):
            torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=1e-6)
        parts.total.backward()
        expected.total.backward()
        assert student.grad.dtype == dtype and torch.isfinite(student.grad).all()
        torch.testing.assert_close(student.grad.float(), upcast.grad, rtol=1e-2, atol=2e-3)


@pytest.mark.parametrize("dtype,rtol", [(torch.float16, 1e-2), (torch.bfloat16, 5e-2)])
def test_reference_runs_on_reduced_precision_logits(dtype, rtol):
    """The literal reference computes in the logits' own dtype: close to float32 within that dtype's precision."""
    student, teacher = make_logits(3, 20, seed=46, dtype=dtype)
    for pair_weighting, whole_group in itertools.product(PAIR_WEIGHTINGS, [True, False]):
        options = dict(k=5, pair_weighting=pair_weighting, whole_group=whole_group)
        got = ldrld_reference(student, teacher, **options)
        want = ldrld_reference(student.detach().float(), teacher.float(), **options)
        for a, b in zip(got, want):
            assert torch.isfinite(a)
            torch.testing.assert_close(a.detach().float(), b, rtol=rtol, atol=1e-3)


# -- recipes and training ------------------------------------------------------------------------------------------

def test_recipe_overrides_reach_the_loss_and_bad_values_name_the_key():
    from ldrld_mini.recipes import load_config
    from ldrld_mini.recipes.config import PAIR_WEIGHTINGS as CONFIG_CHOICES

    assert CONFIG_CHOICES == PAIR_WEIGHTINGS
    cfg = load_config("cifar100", overrides=["loss.pair_weighting=erd", "loss.whole_group=false"])
    assert (cfg.loss["pair_weighting"], cfg.loss["whole_group"]) == ("erd", False)
    module = build_loss(cfg.method, **cfg.loss)
    assert (module.options["pair_weighting"], module.options["whole_group"]) == ("erd", False)
    assert "pair_weighting=erd, whole_group=False" in repr(module)
    for override, message in (("loss.pair_weighting=idw", r"loss\.pair_weighting='idw' must be one of \['adw'"),
                              ("loss.whole_group=2", r"loss\.whole_group=2 must be true or false")):
        with pytest.raises(ValueError, match=message):
            load_config("cifar100", overrides=[override])
    with pytest.raises(ValueError, match="unknown override key 'loss.whole_group'"):  # an LDRLD option only
        load_config("cifar100", method="kd", overrides=["loss.whole_group=false"])


@pytest.mark.parametrize("impl", ["fused", "einops"])
def test_fast_training_loss_keeps_the_options(impl):
    """The fast training path's loss: bit for bit the module's, whichever `impl`: with impl="einops" it trains
    with the named pieces of losses/ldrld.py (an edit to them reaches training), with "fused" the fused node."""
    from ldrld_mini.train.fast import FastLoss

    module = build_loss("ldrld", k=4, pair_weighting="irw", whole_group=False, impl=impl)
    student, teacher = make_logits(6, 10, seed=47, dtype=torch.float32)
    target = torch.arange(6)
    expected = module(student, teacher, target)
    grad, = torch.autograd.grad(expected.total, student)
    got = FastLoss(module, torch.device("cpu"))(student, teacher, target)
    tol = dict(rtol=0, atol=0)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, **tol)
    torch.testing.assert_close(torch.autograd.grad(got.total, student)[0], grad, **tol)
    plain = build_loss("ldrld", k=4, impl=impl)(student, teacher, target)
    assert not torch.equal(plain.local, got.local)


@pytest.mark.parametrize("fast", [False, True], ids=["standard", "fast"])
def test_override_reaches_the_loss_in_training(tmp_path, monkeypatch, fast):
    """`fit` builds the loss with the recipe's ablation keys; the fast path's fused call receives them too."""
    import ldrld_mini.losses as losses
    import ldrld_mini.train.fast as fast_module
    from ldrld_mini.models import build_model
    from ldrld_mini.recipes import load_config
    from ldrld_mini.train import fit

    built, fused_calls = [], []
    real_build, real_parts = losses.build_loss, fast_module.ldrld_parts_fused
    monkeypatch.setattr(losses, "build_loss", lambda name, **o: built.append(real_build(name, **o)) or built[-1])
    monkeypatch.setattr(fast_module, "ldrld_parts_fused", lambda *a, **o: fused_calls.append(o) or real_parts(*a, **o))
    cfg = load_config("synthetic", teacher="resnet8", student="resnet8", method="ldrld", overrides=[
        "data.options.num_classes=10", "data.options.train_per_class=2", "data.options.val_per_class=1",
        "batch_size=10", "epochs=1", "milestones=[]", "train.device=cpu", "loss.pair_weighting=uniform",
        "loss.whole_group=false", f"train.fast={str(fast).lower()}", f"data.gpu_resident={str(fast).lower()}"])
    teacher = build_model("resnet8", num_classes=10)
    summary = fit(cfg, tmp_path / "run", quiet=True, teacher=teacher)
    assert summary["epochs"] == 1
    (module,) = built
    assert (module.options["pair_weighting"], module.options["whole_group"]) == ("uniform", False)
    if fast:
        assert fused_calls and all((o["pair_weighting"], o["whole_group"]) == ("uniform", False) for o in fused_calls)
    else:
        assert not fused_calls


# -- on a GPU ------------------------------------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_cuda_options_equal_the_cpu_reference():
    student, teacher = make_logits(4, 30, seed=48)
    target = torch.tensor([0, 5, 10, 29])
    for k, pair_weighting, whole_group in itertools.product([2, 7], PAIR_WEIGHTINGS, [True, False]):
        options = dict(k=k, pair_weighting=pair_weighting, whole_group=whole_group)
        local, rest = ldrld_reference(student, teacher, **options)
        want = torch.nn.functional.cross_entropy(student, target) + 10.5 * local + 7.0 * rest
        want_grad, = torch.autograd.grad(want, student)
        gpu = student.detach().cuda().requires_grad_()
        for impl in ("fused", "einops"):
            parts = ldrld_loss(gpu, teacher.cuda(), target.cuda(), impl=impl, **options)
            grad, = torch.autograd.grad(parts.total, gpu)
            assert_close(parts.total.detach().cpu(), want.detach(), f"cuda {impl} {options} total")
            assert_close(grad.cpu(), want_grad, f"cuda {impl} {options} grad")


@cuda
def test_cuda_graph_replays_the_ablated_fused_loss():
    """The fast training path's call (`ldrld_parts_fused`) with the options, captured once and replayed."""
    from ldrld_mini.losses import ldrld_parts_fused

    options = dict(k=5, pair_weighting="uniform", whole_group=False)
    gen = torch.Generator(device="cuda").manual_seed(0)
    student = torch.randn(64, 100, device="cuda", generator=gen).mul_(3).requires_grad_()
    teacher, target = torch.randn(64, 100, device="cuda", generator=gen) * 3, torch.arange(64, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture (the plan's constants are made here)
        for _ in range(3):
            ldrld_parts_fused(student, teacher, target, **options).total.backward()
    torch.cuda.current_stream().wait_stream(side)
    student.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        parts = ldrld_parts_fused(student, teacher, target, **options)
        parts.total.backward()
    with torch.no_grad():
        student.copy_(torch.randn(64, 100, device="cuda", generator=gen) * 3)
        teacher.copy_(torch.randn(64, 100, device="cuda", generator=gen) * 3)
    graph.replay()
    eager_student = student.detach().clone().requires_grad_()
    eager = ldrld_parts_fused(eager_student, teacher, target, **options)
    eager.total.backward()
    for a, b in zip(parts, eager):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(student.grad, eager_student.grad, rtol=1e-6, atol=1e-7)

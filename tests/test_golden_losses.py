"""Independent oracles: values and gradients computed by running the authors' LDRLD code and mdistiller.

`tests/fixtures/public_losses.json` was produced by running the public code itself on CPU in float64
(the LDRLD authors' `distiller_zoo/LDRLD.py`, mdistiller's `DKD` and `KD` `forward_train`; only device
placement removed), so it shares no code with this repository. Every formulation here must reproduce it to
1e-9 in float64, values and d total / d student logits; a few absolute values are also written out below,
so that a bug put into every formulation and into the fixture at once still fails.
"""
import inspect
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ldrld_mini.losses import LDRLDLoss, build_loss, dkd_loss, kd_loss, ldrld_loss, ldrld_terms_einops, ldrld_terms_fused
from ldrld_mini.losses.reference import ldrld_masked, ldrld_reference

CASES = json.loads((Path(__file__).parent / "fixtures" / "public_losses.json").read_text())["cases"]
LDRLD_CASES = [c for c in CASES if c["loss"] == "ldrld"]
TOL = dict(rtol=1e-9, atol=1e-12)


def inputs(case):
    student = torch.tensor(case["student"], dtype=torch.float64, requires_grad=True)
    teacher = torch.tensor(case["teacher"], dtype=torch.float64)
    return student, teacher, torch.tensor(case["target"])


def expected_grad(case):
    return torch.tensor(case["grad_student"], dtype=torch.float64)


def case_id(case):
    extra = {"ldrld": f"k{case.get('k')}-C{case['C']}-T{case['temperature']}-ce{case['ce_weight']}",
             "dkd": f"epoch{case.get('epoch')}-C{case['C']}", "kd": f"T{case['temperature']}-C{case['C']}"}
    return f"{case['loss']}-{extra[case['loss']]}"


def is_full_k(case):
    return case["k"] == case["C"]


def public_option(case):
    """The option under which this repository reproduces the public code on this case."""
    return "full_kd" if is_full_k(case) else "zero"


def close(got, want, what):
    torch.testing.assert_close(torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(want, dtype=torch.float64),
                               **TOL, msg=lambda m: f"{what}: {m}")


def total_from_terms(terms, case, student, target):
    local, rest = terms(student)
    ce = F.cross_entropy(student, target)
    return case["ce_weight"] * ce + case["alpha"] * local + case["beta"] * rest, local, rest


# -- LDRLD: every formulation, values and gradients ----------------------------------------------------------

@pytest.mark.parametrize("impl", ["fused", "einops"])
@pytest.mark.parametrize("case", LDRLD_CASES, ids=case_id)
def test_ldrld_loss_matches_the_public_code(case, impl):
    student, teacher, target = inputs(case)
    parts = ldrld_loss(student, teacher, target, k=case["k"], temperature=case["temperature"], alpha=case["alpha"],
                       beta=case["beta"], ce_weight=case["ce_weight"], remaining_at_full_k=public_option(case),
                       impl=impl)
    # the fixture keeps the public code's names: ldrld (our `local`), rntk (our `remaining`)
    for name, key in (("local", "ldrld"), ("remaining", "rntk"), ("ce", "ce"), ("total", "total")):
        close(getattr(parts, name).detach(), case[key], f"{impl} {name}")  # `total`: the criterion alone
    grad, = torch.autograd.grad(parts.total, student)
    close(grad, expected_grad(case), f"{impl} d total / d student")


@pytest.mark.parametrize("formulation", ["fused terms", "einops terms", "reference", "masked"])
@pytest.mark.parametrize("case", LDRLD_CASES, ids=case_id)
def test_ldrld_terms_match_the_public_code(case, formulation):
    student, teacher, target = inputs(case)
    options = dict(k=case["k"], temperature=case["temperature"], remaining_at_full_k=public_option(case))
    fn = {"fused terms": ldrld_terms_fused, "einops terms": ldrld_terms_einops, "reference": ldrld_reference,
          "masked": ldrld_masked}[formulation]
    total, local, rest = total_from_terms(lambda s: fn(s, teacher, **options), case, student, target)
    close(local.detach(), case["ldrld"], f"{formulation} ldrld")
    close(rest.detach(), case["rntk"], f"{formulation} rntk")
    close(total.detach(), case["total"], f"{formulation} total")
    grad, = torch.autograd.grad(total, student)
    close(grad, expected_grad(case), f"{formulation} d total / d student")


@pytest.mark.parametrize("impl", ["fused", "einops"])
def test_module_and_build_loss_pass_the_full_k_option(impl):
    case = next(c for c in LDRLD_CASES if is_full_k(c))
    student, teacher, target = inputs(case)
    module = build_loss("ldrld", k=case["k"], remaining_at_full_k="full_kd", impl=impl)
    assert isinstance(module, LDRLDLoss) and "remaining_at_full_k=full_kd" in repr(module)
    parts = module(student, teacher, target)
    close(parts.remaining.detach(), case["rntk"], "module rntk")
    close(parts.total.detach(), case["total"], "module total")


def test_recipe_override_reaches_the_loss():
    from ldrld_mini.recipes import load_config

    cfg = load_config("cifar100", overrides=["loss.remaining_at_full_k=full_kd"])
    assert cfg.loss["remaining_at_full_k"] == "full_kd"
    assert build_loss(cfg.method, **cfg.loss).options["remaining_at_full_k"] == "full_kd"


# -- k = C: the formula's 0 by default, the public code's full KD on request -----------------------------------

@pytest.mark.parametrize("formulation", ["fused", "einops", "reference", "masked"])
def test_full_k_default_is_the_formulas_zero(formulation):
    case = next(c for c in LDRLD_CASES if is_full_k(c))
    student, teacher, target = inputs(case)
    fn = {"fused": ldrld_terms_fused, "einops": ldrld_terms_einops, "reference": ldrld_reference,
          "masked": ldrld_masked}[formulation]
    local, rest = fn(student, teacher, k=case["k"], temperature=case["temperature"])
    assert float(rest.detach()) == 0.0
    close(local.detach(), case["ldrld"], f"{formulation} ldrld")  # the local term is the same either way
    # and the public term is plain KD over all C classes
    public = fn(student, teacher, k=case["k"], temperature=case["temperature"], remaining_at_full_k="full_kd")[1]
    kd = kd_loss(student, teacher, target, temperature=case["temperature"]).kd
    close(public.detach(), kd.detach(), f"{formulation} full_kd == KD")


def test_full_k_option_changes_nothing_below_k_equals_c():
    case = LDRLD_CASES[0]
    student, teacher, target = inputs(case)
    for impl in ("fused", "einops"):
        a = ldrld_loss(student, teacher, target, impl=impl)
        b = ldrld_loss(student, teacher, target, impl=impl, remaining_at_full_k="full_kd")
        for x, y in zip(a, b):
            assert torch.equal(x, y)


def test_bad_full_k_option_names_the_choices():
    student, teacher, target = inputs(LDRLD_CASES[0])
    with pytest.raises(ValueError, match=r"remaining_at_full_k must be one of \('zero', 'full_kd'\)"):
        ldrld_loss(student, teacher, target, remaining_at_full_k="kd")
    with pytest.raises(ValueError, match="remaining_at_full_k must be one of"):
        build_loss("ldrld", remaining_at_full_k="public")


# -- DKD and KD ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", [c for c in CASES if c["loss"] == "dkd"], ids=case_id)
def test_dkd_matches_mdistiller(case):
    student, teacher, target = inputs(case)
    parts = dkd_loss(student, teacher, target, alpha=case["alpha"], beta=case["beta"],
                     temperature=case["temperature"], ce_weight=case["ce_weight"], warmup=case["warmup"],
                     epoch=case["epoch"])
    close(parts.ce.detach(), case["ce"], "dkd ce")
    close((parts.total - case["ce_weight"] * parts.ce).detach(), case["kd_term"], "dkd kd_term (with warm-up)")
    close(parts.total.detach(), case["total"], "dkd total")
    grad, = torch.autograd.grad(parts.total, student)
    close(grad, expected_grad(case), "dkd d total / d student")


@pytest.mark.parametrize("case", [c for c in CASES if c["loss"] == "kd"], ids=case_id)
def test_kd_matches_mdistiller(case):
    student, teacher, target = inputs(case)
    parts = kd_loss(student, teacher, target, temperature=case["temperature"], ce_weight=case["ce_weight"],
                    kd_weight=case["kd_weight"])
    close(parts.total.detach(), case["total"], "kd total")
    grad, = torch.autograd.grad(parts.total, student)
    close(grad, expected_grad(case), "kd d total / d student")


# -- pinned absolute values and defaults -------------------------------------------------------------------------

def test_pinned_absolute_values_of_every_term():
    """Literal numbers of the public code (the published setting), independent of the fixture's other fields."""
    published = LDRLD_CASES[0]
    assert (published["k"], published["temperature"], published["alpha"], published["beta"]) == (7, 4.0, 10.5, 7.0)
    student, teacher, target = inputs(published)
    parts = ldrld_loss(student, teacher, target)  # every default: the published setting
    close(parts.local.detach(), 0.7803974539662523, "pinned local")
    close(parts.remaining.detach(), 7.347971385084084, "pinned remaining")
    close(parts.ce.detach(), 7.358812897167714, "pinned ce")
    close(parts.total.detach(), 66.98878585940194, "pinned total")
    full_k = next(c for c in LDRLD_CASES if is_full_k(c))
    s, t, y = inputs(full_k)
    full_kd = ldrld_loss(s, t, y, k=12, remaining_at_full_k="full_kd")
    close(full_kd.remaining.detach(), 10.571885559505455, "pinned k=C")
    dkd = next(c for c in CASES if c["loss"] == "dkd" and c["epoch"] == 240)
    s, t, y = inputs(dkd)
    parts = dkd_loss(s, t, y, epoch=240)  # mdistiller's CIFAR defaults
    close(parts.ce.detach(), 8.009711216294457, "pinned dkd ce")
    close(parts.total.detach(), 84.4953199905835, "pinned dkd total")
    kd = next(c for c in CASES if c["loss"] == "kd" and c["temperature"] == 4.0)
    s, t, y = inputs(kd)
    close(kd_loss(s, t, y).total.detach(), 8.352508962618943, "pinned kd total")  # mdistiller's CIFAR defaults


LDRLD_DEFAULTS = dict(k=7, temperature=4.0, alpha=10.5, beta=7.0, ce_weight=1.0, rank_by="student",
                      reduction="mean", remaining_at_full_k="zero", impl="fused")


def defaults_of(fn):
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def test_loss_defaults_are_the_published_setting():
    for fn in (ldrld_loss, LDRLDLoss.__init__):
        got = defaults_of(fn)
        assert {key: got[key] for key in LDRLD_DEFAULTS} == LDRLD_DEFAULTS, fn.__qualname__
    for fn in (ldrld_terms_fused, ldrld_terms_einops, ldrld_reference):
        got = defaults_of(fn)
        for key in ("k", "temperature", "rank_by", "reduction", "remaining_at_full_k"):
            assert got[key] == LDRLD_DEFAULTS[key], f"{fn.__qualname__} {key}"
    options = build_loss("ldrld").options
    assert {key: options[key] for key in LDRLD_DEFAULTS} == LDRLD_DEFAULTS
    assert (options["epsilon"], options["delta"], options["lam"]) == (1.5, 2.0, 0.05)
    assert {k: v for k, v in defaults_of(kd_loss).items()} == dict(temperature=4.0, ce_weight=0.1, kd_weight=0.9)
    assert {k: defaults_of(dkd_loss)[k] for k in ("alpha", "beta", "temperature", "ce_weight", "warmup")} == dict(
        alpha=1.0, beta=8.0, temperature=4.0, ce_weight=1.0, warmup=20)

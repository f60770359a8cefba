"""Tests for the kinds of bug an outside mutation test found unguarded (issue 18, point 1).

Each test is named after the bug it catches; each was seen to fail with that bug injected by hand:
- best-epoch selection: `>=` instead of `>` moves a tie to the later epoch;
- results table: "Δ last" computed from the best mean;
- checkpoint loading: only one layer of wrapper prefixes stripped;
- loss implementations under ties: a top-k that breaks ties unlike `torch.topk`;
- low-precision inputs: one implementation no longer upcasting fp16 / bf16 logits.
"""
import json
import statistics

import pytest
import torch
import torch.nn.functional as F
import yaml

from ldrld_mini.losses import ldrld_loss
from ldrld_mini.losses import ldrld_terms_einops, ldrld_terms_fused
from ldrld_mini.losses.reference import ldrld_reference
from ldrld_mini.models import build_model, load_checkpoint
from ldrld_mini.recipes import load_config
from ldrld_mini.results import load_runs, results_table
from ldrld_mini.rounding import set_threads

# -- best-epoch selection: a tie keeps the earlier epoch ---------------------------------------------------

TINY = ["data.options.num_classes=10", "data.options.train_per_class=4", "data.options.val_per_class=2",
        "batch_size=20", "data.val_batch_size=20", "train.device=cpu", "train.deterministic=true",
        "milestones=[]"]


def test_tied_validation_accuracy_keeps_the_earlier_epoch_as_best(tmp_path, monkeypatch):
    """Validation top-1 per epoch 40, 55, 55, 30: the tie at 55 keeps epoch 2 (summary, metrics, best.pt)."""
    import ldrld_mini.train.trainer as trainer

    scripted = iter([40.0, 55.0, 55.0, 30.0])
    weights = {}  # epoch -> the student's weights when it was evaluated

    def fake_evaluate(model, loader, **kw):
        top1 = next(scripted)
        weights[len(weights) + 1] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return {"top1": top1, "top5": 100.0, "loss": 1.0}

    monkeypatch.setattr(trainer, "evaluate", fake_evaluate)
    before = torch.get_num_threads()
    set_threads(1)
    try:
        cfg = load_config("synthetic", student="resnet8", method="vanilla", overrides=[*TINY, "epochs=4"])
        summary = trainer.fit(cfg, tmp_path / "run", quiet=True)
    finally:
        torch.set_num_threads(before)
    assert summary["best_epoch"] == 2 and summary["best_top1"] == 55.0 and summary["last_top1"] == 30.0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["best_top1"] for r in rows] == [40.0, 55.0, 55.0, 55.0]
    best = torch.load(tmp_path / "run" / "best.pt", map_location="cpu", weights_only=True)
    assert best["epoch"] == 2 and best["accuracy"] == 55.0
    for key, value in best["model"].items():
        assert torch.equal(value, weights[2][key]), key
    assert any(not torch.equal(best["model"][k], weights[3][k]) for k in best["model"])  # epochs 2, 3 differ


# -- results table: every numeric cell against a hand computation, best != last ----------------------------

def _write_run(run_dir, *, method, seed, curve, teacher="resnet32x4", student="resnet8x4"):
    cfg = load_config("cifar100", teacher=None if method == "vanilla" else teacher, student=student,
                      method=method, overrides=[f"train.seed={seed}", f"schedule.epochs={len(curve)}"])
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    with (run_dir / "metrics.jsonl").open("w") as f:
        for epoch, top1 in enumerate(curve, 1):
            f.write(json.dumps({"epoch": epoch, "lr": 0.05, "train_total": 1.0, "val_top1": top1,
                                "val_top5": top1 + 10, "best_acc": max(curve[:epoch])}) + "\n")
    summary = {"best_top1": max(curve), "last_top1": curve[-1], "best_acc": max(curve), "last_acc": curve[-1],
               "epochs": len(curve), "seed": seed}
    (run_dir / "summary.json").write_text(json.dumps(summary))


def test_results_table_every_numeric_cell_with_best_not_last(tmp_path):
    """Best and last differ in every row (by several points), so each Δ column is tied to its own series."""
    root = tmp_path / "runs"
    pair = root / "cifar100" / "resnet32x4-resnet8x4"
    curves = {  # method -> seed -> curve; best != last everywhere, and the means differ by > 1 point
        "ldrld": {0: (70.0, 78.25, 74.0), 1: (71.0, 77.5, 72.5), 2: (69.0, 79.0, 73.75)},
        "kd": {0: (60.0, 76.0, 71.0), 1: (61.0, 75.0, 70.0)},
        "vanilla": {0: (60.0, 74.5, 69.25)},
    }
    for method, seeds in curves.items():
        for seed, curve in seeds.items():
            base = root / "cifar100" / "resnet8x4" if method == "vanilla" else pair
            _write_run(base / method / f"seed{seed}", method=method, seed=seed, curve=curve)
    paper = {"ldrld": 77.20, "kd": 73.33, "vanilla": 72.50}  # the paper's numbers for this pair

    def cell(values):
        m = statistics.fmean(values)
        return f"{m:.2f}" if len(values) == 1 else f"{m:.2f} ± {statistics.stdev(values):.2f}"

    table = results_table(load_runs(root))
    rows = {c[2]: c for c in ([x.strip() for x in line.strip("|").split("|")] for line in table.splitlines()[2:])}
    assert set(rows) == set(curves)
    for method, seeds in curves.items():
        best = [max(c) for c in seeds.values()]
        last = [c[-1] for c in seeds.values()]
        assert statistics.fmean(best) - statistics.fmean(last) > 1.0
        cells = rows[method]  # dataset, pair, method, seeds, best, last, paper, Δ best, Δ last
        assert cells[3] == str(len(seeds)), method
        assert cells[4] == cell(best), method
        assert cells[5] == cell(last), method
        assert cells[6] == f"{paper[method]:.2f}", method
        assert cells[7] == f"{statistics.fmean(best) - paper[method]:+.2f}", method
        assert cells[8] == f"{statistics.fmean(last) - paper[method]:+.2f}", method
    # hand-written, in case the formulas above and the table share a mistake
    assert rows["ldrld"][4:] == ["78.25 ± 0.75", "73.42 ± 0.80", "77.20", "+1.05", "-3.78"]
    assert rows["vanilla"][4:] == ["74.50", "69.25", "72.50", "+2.00", "-3.25"]


# -- checkpoint loading: nested wrapper prefixes -----------------------------------------------------------

NESTED = {
    "ddp_distiller_ddp": lambda k: f"module.student.module.{k}",
    "compiled_ddp": lambda k: f"_orig_mod.module.{k}",
    "ddp_compiled": lambda k: f"module._orig_mod.{k}",
    "compiled_ddp_distiller_compiled": lambda k: f"_orig_mod.module.student._orig_mod.{k}",
}


@pytest.mark.parametrize("layout", NESTED)
def test_nested_wrapper_prefixes_load_strictly(layout, trained_resnet8, tmp_path):
    state = trained_resnet8.state_dict()
    torch.save({"model": {NESTED[layout](k): v for k, v in state.items()}, "epoch": 7}, tmp_path / "ckpt.pth")
    torch.manual_seed(1)
    fresh = build_model("resnet8", num_classes=10)
    assert load_checkpoint(fresh, tmp_path / "ckpt.pth", strict=True) == {"epoch": 7}
    loaded = fresh.state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


# -- loss implementations under ties -----------------------------------------------------------------------

IMPLS = {"fused": ldrld_terms_fused, "einops": ldrld_terms_einops, "reference": ldrld_reference}


def _terms_and_grads(impl, student, teacher, **options):
    student = student.detach().clone().requires_grad_()
    local, rest = IMPLS[impl](student, teacher, **options)
    grad_local, = torch.autograd.grad(local, student, retain_graph=True)
    grad_rest = (torch.autograd.grad(rest, student, allow_unused=True)[0] if rest.requires_grad else None)
    if grad_rest is None:
        grad_rest = torch.zeros_like(student)
    return local.detach(), rest.detach(), grad_local, grad_rest


def _tied_logits(kind, seed):
    gen = torch.Generator().manual_seed(seed)
    teacher = torch.randn(16, 40, generator=gen, dtype=torch.float64) * 3
    if kind == "integers":  # values 0..3: every top-k has ties, cut through by k
        student = torch.randint(0, 4, (16, 40), generator=gen).double()
    elif kind == "float16":  # float16 logits near 1 (spacing 2**-10) rounded: many exact repeats, cast up
        student = (1 + torch.randn(16, 40, generator=gen, dtype=torch.float64) * 2e-3).half().double()
    else:  # all equal in half the rows (as at initialisation)
        student = torch.randn(16, 40, generator=gen, dtype=torch.float64)
        student[::2] = 0.5
    return student, teacher


@pytest.mark.parametrize("kind", ["integers", "float16", "constant_rows"])
@pytest.mark.parametrize("rank_by", ["student", "teacher_rounded"])
def test_every_implementation_breaks_topk_ties_as_torch_topk(kind, rank_by):
    student, teacher = _tied_logits(kind, seed=3)
    options = dict(k=7)
    if rank_by == "teacher_rounded":  # ties in the teacher's ranking instead
        student, teacher = teacher.clone(), student.clone()
        options["rank_by"] = "teacher"
    ranking = student if options.get("rank_by", "student") == "student" else teacher
    top = torch.topk(ranking, 7, dim=1).indices
    stable = torch.argsort(ranking, dim=1, descending=True, stable=True)[:, :7]
    assert (top != stable).any()  # the pattern tells torch.topk from a stable sort on this machine
    expected = _terms_and_grads("reference", student, teacher, **options)
    for impl in ("fused", "einops"):
        got = _terms_and_grads(impl, student, teacher, **options)
        for name, a, b in zip(("ldrld", "rntk", "grad ldrld", "grad rntk"), got, expected):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=lambda m: f"{impl} {name}: {m}")


# -- low-precision inputs to every implementation ----------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("impl", ["fused", "einops"])
def test_every_implementation_upcasts_low_precision_logits(impl, dtype):
    gen = torch.Generator().manual_seed(5)
    student = (torch.randn(8, 100, generator=gen) * 8).to(dtype)
    teacher = (torch.randn(8, 100, generator=gen) * 8).to(dtype)
    target = torch.randint(0, 100, (8,), generator=gen)
    parts = ldrld_loss(student, teacher, target, impl=impl)
    # values first (a result computed in low precision and cast up at the end has the right dtype)
    expected_ce = F.cross_entropy(student.float(), target)
    torch.testing.assert_close(parts.ce.float(), expected_ce, rtol=1e-6, atol=1e-6)
    # the distillation terms too, against the reference on the upcast logits (the loop reference computes
    # in its input's dtype, so it is only ever given float32 here)
    local, rest = ldrld_reference(student.float(), teacher.float())
    torch.testing.assert_close(parts.local.float(), local, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(parts.remaining.float(), rest, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(parts.total.float(), expected_ce + 10.5 * local + 7.0 * rest, rtol=1e-5, atol=1e-5)
    assert [p.dtype for p in parts] == [torch.float32] * 4

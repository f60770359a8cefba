"""The lr schedules: the clean warm-up + steps, and the public LDRLD code's warm-up bug reproduced exactly."""
import math

import numpy as np
import pytest

from ldrld_mini.recipes import load_config
from ldrld_mini.train.schedule import decay_steps, lr_at, lr_schedule


class _Opt:  # the attributes the public code's helpers read from argparse's namespace
    def __init__(self, learning_rate, lr_decay_epochs, lr_decay_rate, wram_up):
        self.learning_rate, self.lr_decay_epochs = learning_rate, lr_decay_epochs
        self.lr_decay_rate, self.wram_up = lr_decay_rate, wram_up


class _Optimizer:
    def __init__(self, lr):
        self.param_groups = [{"lr": lr}]


def _public_code_lrs(base, milestones, rate, wram_up, epochs):
    """Literal transcription of the public LDRLD loop (train_student.py + helper/util.py): the lr the
    optimiser holds during each epoch 1..epochs."""
    opt, optimizer = _Opt(base, milestones, rate, wram_up), _Optimizer(base)

    def adjust_learning_rate(epoch, opt, optimizer):
        steps = np.sum(epoch > np.asarray(opt.lr_decay_epochs))
        if steps > 0:
            new_lr = opt.learning_rate * (opt.lr_decay_rate ** steps)
            for param_group in optimizer.param_groups:
                param_group["lr"] = new_lr

    def adjust_learning_rate_wram_up(epoch, opt, optimizer):
        steps = np.sum(epoch > np.asarray(opt.lr_decay_epochs))
        if steps > 0:
            new_lr = opt.learning_rate * (opt.lr_decay_rate ** steps)
            for param_group in optimizer.param_groups:
                param_group["lr"] = new_lr
        else:
            if epoch < opt.wram_up:
                wram_up = epoch * 1.0 / opt.wram_up
                new_lr = wram_up * opt.learning_rate
                for param_group in optimizer.param_groups:
                    param_group["lr"] = new_lr
            else:
                new_lr = opt.learning_rate  # returned, never written back: the bug
        return new_lr

    lrs = []
    for epoch in range(1, epochs + 1):
        if opt.wram_up > 1:
            adjust_learning_rate_wram_up(epoch, opt, optimizer)
        else:
            adjust_learning_rate(epoch, opt, optimizer)
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_legacy_warmup_matches_the_public_code_every_epoch():
    cfg = load_config("cifar100", method="ldrld", overrides=["schedule.legacy_warmup=true"])
    assert cfg.schedule.warmup_epochs == 20 and cfg.optim.lr == 0.05
    expected = _public_code_lrs(0.05, [150, 180, 210], 0.1, 20, 240)
    got = lr_schedule(cfg)
    assert len(got) == 240
    for epoch, (a, b) in enumerate(zip(got, expected), start=1):
        assert math.isclose(a, b, rel_tol=1e-12), (epoch, a, b)


def test_legacy_warmup_landmarks():
    cfg = load_config("cifar100", method="ldrld", overrides=["schedule.legacy_warmup=true"])
    assert math.isclose(lr_at(1, cfg), 0.0025)
    assert math.isclose(lr_at(19, cfg), 0.0475)
    for epoch in (20, 21, 100, 150):  # never restored to 0.05
        assert math.isclose(lr_at(epoch, cfg), 0.0475)
    assert math.isclose(lr_at(151, cfg), 0.005)
    assert math.isclose(lr_at(181, cfg), 0.0005)
    assert math.isclose(lr_at(240, cfg), 0.00005)


@pytest.mark.parametrize("wram_up,lr,milestones", [(1, 0.05, [150, 180, 210]), (0, 0.05, [150, 180, 210]),
                                                   (5, 0.01, [3, 8]), (2, 0.1, [30, 60, 90])])
def test_legacy_matches_public_code_for_other_settings(wram_up, lr, milestones):
    cfg = {"lr": lr, "milestones": milestones, "gamma": 0.1, "warmup_epochs": wram_up, "legacy_warmup": True}
    expected = _public_code_lrs(lr, milestones, 0.1, wram_up, 100)
    assert np.allclose(lr_schedule(cfg, 100), expected, rtol=1e-12, atol=0)


def test_clean_warmup_reaches_base_and_steps():
    cfg = load_config("cifar100", method="ldrld")
    assert not cfg.schedule.legacy_warmup
    lrs = lr_schedule(cfg)
    assert math.isclose(lrs[0], 0.05 / 20) and math.isclose(lrs[9], 0.025)
    assert all(math.isclose(x, 0.05) for x in lrs[19:150])  # epoch 20..150: the base lr
    assert math.isclose(lrs[150], 0.005) and math.isclose(lrs[180], 0.0005) and math.isclose(lrs[239], 5e-5)
    assert all(b >= a for a, b in zip(lrs[:20], lrs[1:20]))


def test_no_warmup_is_the_crd_step_schedule():
    cfg = load_config("cifar100", method="kd")
    lrs = lr_schedule(cfg)
    assert lrs[0] == 0.05 and lrs[149] == 0.05 and math.isclose(lrs[150], 0.005)
    assert decay_steps(150, [150, 180, 210]) == 0 and decay_steps(151, [150, 180, 210]) == 1


def test_epoch_is_one_based():
    cfg = load_config("cifar100")
    with pytest.raises(ValueError, match="1-based"):
        lr_at(0, cfg)

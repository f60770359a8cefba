"""Learning-rate schedules as pure functions of the (1-based) epoch.

Clean default: linear warm-up from `base / W` to `base` over `W = warmup_epochs` epochs, then the base
lr multiplied by `gamma` once per milestone passed (`epoch > milestone`, as in the CRD code base).

`legacy_warmup=True` reproduces the public LDRLD code exactly (`helper/util.py`,
`adjust_learning_rate_wram_up`): for `epoch < W` the lr is `epoch / W * base`; from epoch `W` on the code
*returns* the base lr but never writes it into the optimiser, so the lr stays `(W - 1) / W * base`
(0.0475 for base 0.05, W = 20) until the first milestone is passed, then `base * gamma ** steps`
(0.005, 0.0005, 0.00005). docs/method.md §3 calls this the learning-rate warm-up bug.
"""
from __future__ import annotations

from typing import Any

__all__ = ["lr_at", "lr_schedule", "decay_steps"]


def _get(cfg: Any, name: str):
    """Read `name` from a Config, a ScheduleConfig or a plain dict (nested `schedule` / `optim` allowed)."""
    for holder in (cfg, getattr(cfg, "schedule", None), getattr(cfg, "optim", None)):
        if holder is not None and hasattr(holder, name):
            return getattr(holder, name)
    if isinstance(cfg, dict):
        for holder in (cfg, cfg.get("schedule") or {}, cfg.get("optim") or {}):
            if name in holder:
                return holder[name]
    raise ValueError(f"the schedule config has no {name!r}; pass a Config, or a dict with lr, milestones, "
                     "gamma, warmup_epochs and legacy_warmup.")


def decay_steps(epoch: int, milestones) -> int:
    """How many milestones the (1-based) epoch has passed: `sum(epoch > m)`."""
    return sum(epoch > m for m in milestones)


def lr_at(epoch: int, cfg: Any) -> float:
    """The learning rate used during the (1-based) `epoch` under the config's schedule."""
    if epoch < 1:
        raise ValueError(f"epoch={epoch} must be >= 1 (epochs are 1-based, as in the CRD code).")
    base, gamma = float(_get(cfg, "lr")), float(_get(cfg, "gamma"))
    warmup = int(_get(cfg, "warmup_epochs"))
    steps = decay_steps(epoch, _get(cfg, "milestones"))
    legacy = bool(_get(cfg, "legacy_warmup"))
    if steps > 0:
        return base * gamma**steps
    if legacy:
        return base * min(epoch, warmup - 1) / warmup if warmup > 1 else base
    if warmup > 0 and epoch <= warmup:
        return base * epoch / warmup
    return base


def lr_schedule(cfg: Any, epochs: int | None = None) -> list[float]:
    """`[lr_at(1), ..., lr_at(epochs)]` (epochs defaults to the config's)."""
    epochs = int(_get(cfg, "epochs")) if epochs is None else epochs
    return [lr_at(e, cfg) for e in range(1, epochs + 1)]

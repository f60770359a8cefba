"""Float-rounding switches read from the environment, so a test suite can run once more on another path.

A training run is chaotic: the same code on another CPU, with another thread count or without oneDNN
rounds convolution sums in another order and ends at other numbers. The tests and the notebooks must not
depend on that, so CI runs them on more than one path (docs/testing.md):

    LDRLD_ONEDNN=0     torch.backends.mkldnn.enabled = False (other convolution kernels)
    LDRLD_THREADS=N    N torch threads wherever the code asks for a fixed count (other reduction order)
    LDRLD_THREADS=other  the other of 1 and 2: code asking for 1 thread gets 2, code asking for 2 gets 1
    LDRLD_PERTURB=S    every float tensor drawn from torch's global random stream comes back multiplied by
                       (1 + c * 2**-23), c uniform in [-1, 1] per element: 0 to 2 float32 ulps, a different
                       pattern for every seed S >= 1 (float64 draws change by the same relative amount, so
                       a float64 digit must survive its inputs moving in the 7th significant digit;
                       float16 / bfloat16 draws by one ulp of their own)

The first two change how a sum is rounded, but only where the kernels they switch are used; another CPU
(AVX-512 against AVX2, say) rounds other reductions differently too, and neither switch reaches those. The
perturbation stands in for them: a printed digit that a one-ulp change of the inputs moves is a digit the
arithmetic does not support. It covers torch.randn, torch.rand, torch.randn_like, torch.rand_like,
torch.normal and Tensor.normal_ / Tensor.uniform_ (so also nn.init's weights), and only draws from the
global stream: a draw from an explicit `generator=` is one of the package's seeded data streams (synthetic
images, flips, batch order), the same bytes on every machine by design. The factors come from a generator of
their own, so the global stream, and everything drawn after, is unchanged; integer tensors are untouched.

`apply_environment()` runs when `ldrld_mini` is imported (only if a variable is set, so a plain import
stays cheap; a notebook kernel inherits the environment); `set_threads(n)` is what notebooks and the demo
call instead of `torch.set_num_threads(n)`; `perturb_random(seed)` switches the perturbation on or off.
"""
from __future__ import annotations

import functools
import os

__all__ = ["apply_environment", "set_threads", "rounding_path", "perturb_random"]

_ONEDNN = "LDRLD_ONEDNN"
_THREADS = "LDRLD_THREADS"
_PERTURB = "LDRLD_PERTURB"
# what LDRLD_PERTURB wraps: functions of `torch` and in-place methods of `torch.Tensor`
_PERTURBED_FUNCTIONS = ("randn", "rand", "randn_like", "rand_like", "normal")
_PERTURBED_METHODS = ("normal_", "uniform_")
_originals: dict[str, object] = {}  # "torch.randn" / "Tensor.uniform_" -> the unwrapped callable, while wrapped
_perturb_state: dict[str, object] = {"seed": None, "generator": None}
_PERTURB_EPS = 2.0**-23  # float32's machine epsilon: the relative size of the perturbation, float64 included


def _threads_override(asked: int | None = None) -> int | None:
    """The thread count LDRLD_THREADS gives code that asks for `asked`, or None when it is unset."""
    raw = os.environ.get(_THREADS, "").strip()
    if not raw:
        return None
    if raw == "other":
        return None if asked is None else (2 if asked == 1 else 1)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{_THREADS}={raw!r} must be a positive integer or 'other', e.g. {_THREADS}=2 "
                         f"(or unset it)")
    return int(raw)


def _onednn_off() -> bool:
    """True when LDRLD_ONEDNN asks to switch oneDNN off; a clear error for values other than 0/1."""
    raw = os.environ.get(_ONEDNN, "").strip()
    if raw not in ("", "0", "1"):
        raise ValueError(f"{_ONEDNN}={raw!r} must be 0 (oneDNN off) or 1 (on, the default), or unset")
    return raw == "0"


def _perturb_seed() -> int | None:
    """The seed LDRLD_PERTURB asks for, None when it is unset; a clear error for anything but a positive integer."""
    raw = os.environ.get(_PERTURB, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{_PERTURB}={raw!r} must be a positive integer seed, e.g. {_PERTURB}=1 "
                         f"(or unset it: no perturbation)")
    return int(raw)


def _perturb_(tensor):
    """Multiply a float tensor in place by (1 + c * eps), c uniform in [-1, 1] from the perturbation's generator."""
    import torch

    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point() or tensor.numel() == 0 \
            or tensor.device.type == "meta":
        return tensor
    rand = _originals.get("torch.rand", torch.rand)
    c = rand(tensor.shape, generator=_perturb_state["generator"], dtype=torch.float32) * 2 - 1  # CPU, own stream
    eps = max(_PERTURB_EPS, torch.finfo(tensor.dtype).eps)  # one float32 ulp; one ulp of float16 / bfloat16
    scale = (c * eps).to(device=tensor.device, dtype=tensor.dtype)
    with torch.no_grad():
        tensor.add_(tensor * scale)  # rounds to the nearest float: 0, 1 or 2 ulps away
    return tensor


def _wrap(original):
    @functools.wraps(original)
    def drawn_then_perturbed(*args, **kwargs):
        out = original(*args, **kwargs)
        if kwargs.get("generator") is None:  # the global stream; an explicit generator is a data stream
            _perturb_(out)
        return out

    drawn_then_perturbed.__ldrld_perturbed__ = True
    return drawn_then_perturbed


def perturb_random(seed: int | None) -> None:
    """Switch the LDRLD_PERTURB perturbation on with `seed` (restarting its generator), or off with None."""
    import torch

    if seed is None:
        for key, original in _originals.items():
            owner, name = key.split(".")
            setattr(torch if owner == "torch" else torch.Tensor, name, original)
        _originals.clear()
        _perturb_state.update(seed=None, generator=None)
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 1:
        raise ValueError(f"perturbation seed {seed!r} must be a positive integer")
    _perturb_state.update(seed=seed, generator=torch.Generator().manual_seed(seed))
    if _originals:
        return  # already wrapped; only the generator restarts
    for owner, names in ((torch, _PERTURBED_FUNCTIONS), (torch.Tensor, _PERTURBED_METHODS)):
        for name in names:
            original = getattr(owner, name)
            _originals[f"{'torch' if owner is torch else 'Tensor'}.{name}"] = original
            setattr(owner, name, _wrap(original))


def apply_environment() -> None:
    """Apply LDRLD_ONEDNN / LDRLD_THREADS / LDRLD_PERTURB to torch (imports torch only when one is set)."""
    off, threads, seed = _onednn_off(), _threads_override(), _perturb_seed()
    if not off and threads is None and seed is None:
        return
    import torch

    if off:
        torch.backends.mkldnn.enabled = False
    if threads is not None:
        torch.set_num_threads(threads)
    if seed is not None:
        perturb_random(seed)


def set_threads(n: int) -> int:
    """`torch.set_num_threads(n)`, unless LDRLD_THREADS overrides it; returns the count in use."""
    import torch

    override = _threads_override(int(n))
    torch.set_num_threads(override if override is not None else int(n))
    return torch.get_num_threads()


def rounding_path() -> str:
    """A short description of the rounding in effect, e.g. 'oneDNN on, 1 thread' (', random draws perturbed
    (seed 2)' added under LDRLD_PERTURB)."""
    import torch

    n = torch.get_num_threads()
    text = f"oneDNN {'on' if torch.backends.mkldnn.enabled else 'off'}, {n} thread{'s' if n != 1 else ''}"
    if _perturb_state["seed"] is not None:
        text += f", random draws perturbed (seed {_perturb_state['seed']})"
    return text

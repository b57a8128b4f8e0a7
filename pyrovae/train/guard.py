"""Skipping optimisation steps whose loss or gradient is not finite, and stopping after too many.

One NaN in a loss or gradient, passed to Adam, turns every parameter it touches into NaN for
good. The guard reads one flag per step, "the loss and every gradient entry are finite", and
leaves the parameters and the optimizer's moments untouched when it is false. The gradients
are checked by one kernel over all of them, the one ``torch.amp.GradScaler`` uses
(``torch._amp_foreach_non_finite_check_and_unscale_``, here with a scale of 1), or, where a
torch build lacks it, by their total norm (non-finite as soon as one entry is).

Cost: on the CPU the flag is read directly (no device to wait for). On an accelerator, an
optimizer that accepts ``found_inf`` (``torch.optim.Adam(..., fused=True)``, the path
``torch.amp.GradScaler`` uses) skips the update on the device itself, so no host sync happens
per step; the counters stay on the device and are read every ``check_every`` steps. Any other
optimizer on an accelerator costs one host sync per step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pyrovae.errors import NonFiniteError


def grad_norm(parameters: list[Tensor]) -> Tensor:
    """Euclidean norm of all gradients together, a 0-d tensor (0 when there are none)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def grads_finite(parameters: list[Tensor], device: torch.device) -> Tensor:
    """Whether every gradient entry is finite: a 0-d bool tensor on ``device``.

    One pass over all gradients in one call (GradScaler's check, with a scale of 1, which
    leaves the values as they are); falls back to the total norm where that kernel is missing.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.ones((), dtype=torch.bool, device=device)
    check = getattr(torch, "_amp_foreach_non_finite_check_and_unscale_", None)
    if check is None or any(g.device != grads[0].device or g.is_sparse for g in grads):
        return torch.isfinite(grad_norm(parameters)).to(device)
    found_inf = torch.zeros(1, device=grads[0].device)
    check(grads, found_inf, torch.ones(1, device=grads[0].device))
    return (found_inf == 0).reshape(()).to(device)


class NonFiniteGuard:
    """Decide whether an optimizer step may update, from a finite loss and gradient, and count the skips.

    Args:
        max_consecutive: stop (raise :class:`~pyrovae.errors.NonFiniteError`) once this many
            steps in a row were skipped.
        check_every: on an accelerator, read the counters every this many steps (default
            ``max_consecutive``); on the CPU they are read every step.

    Attributes:
        skipped: total skipped steps (an int, or a 0-d tensor on the device; ``int()`` it to read).
        finite: whether the latest step's loss and gradients were finite, a 0-d bool tensor.
    """

    def __init__(self, max_consecutive: int = 10, check_every: int | None = None) -> None:
        if max_consecutive < 1:
            raise ValueError(f"max_consecutive must be at least 1, got {max_consecutive}")
        self.max_consecutive = max_consecutive
        self.check_every = check_every or max_consecutive
        # Plain ints, or 0-d tensors on the device once the no-sync path is taken.
        self.skipped: int | Tensor = 0
        self._run: int | Tensor = 0
        self._peak: int | Tensor = 0
        self._calls = 0
        self.finite = torch.ones((), dtype=torch.bool)  # the latest step's flag

    def allows_update(self, optimizer: torch.optim.Optimizer, loss: Tensor) -> bool:
        """Whether to call ``optimizer.step()`` after ``loss.backward()``: False when the loss or
        a gradient is not finite (the step is then counted as skipped).

        On an accelerator with an optimizer that honours ``found_inf`` (fused Adam), this
        returns True without reading the flag: the flag goes to the optimizer, whose kernel
        skips a non-finite update on the device, and the counters stay there (no host sync).
        ``finite`` holds the flag as a 0-d bool tensor either way.
        """
        params = [p for group in optimizer.param_groups for p in group["params"]]
        self._calls += 1
        if loss.device.type == "cpu":
            # On the CPU reading a flag costs nothing: the loss first, the gradients only then.
            finite = bool(torch.isfinite(loss.detach())) and bool(grads_finite(params, loss.device))
            return self._count_on_host(finite)
        ok = torch.isfinite(loss.detach()) & grads_finite(params, loss.device)
        if not _skips_on_device(optimizer):
            return self._count_on_host(bool(ok))  # one read of a flag: a sync on an accelerator
        optimizer.found_inf = (~ok).to(torch.float32)  # type: ignore[attr-defined]
        bad = (~ok).long()
        self.skipped, self._run, self._peak = (torch.as_tensor(t, device=ok.device)
                                               for t in (self.skipped, self._run, self._peak))
        self.skipped = self.skipped + bad
        self._run = (self._run + 1) * bad
        self._peak = torch.maximum(self._peak, self._run)
        self.finite = ok
        return True

    def release(self, optimizer: torch.optim.Optimizer) -> None:
        """Take the flag of :meth:`allows_update` off ``optimizer``, so that steps outside the
        guard update as usual."""
        if getattr(optimizer, "found_inf", None) is not None:
            optimizer.found_inf = None  # type: ignore[attr-defined]

    def _count_on_host(self, finite: bool) -> bool:
        if finite:
            self._run = 0
        else:
            self.skipped = int(self.skipped) + 1
            self._run = int(self._run) + 1
            self._peak = max(int(self._peak), self._run)
        self.finite = torch.tensor(finite)
        return finite

    def check(self, where: str = "", force: bool = False) -> None:
        """Raise :class:`~pyrovae.errors.NonFiniteError` if ``max_consecutive`` steps in a row were skipped.

        Reads the device counters only when due (every step on the CPU, every ``check_every``
        steps elsewhere) or when ``force``.
        """
        on_device = isinstance(self._peak, Tensor) and self._peak.device.type != "cpu"
        due = force or not on_device or self._calls % self.check_every == 0
        if not due or int(self._peak) < self.max_consecutive:
            return
        raise NonFiniteError(
            f"training stopped{where}: {int(self._peak)} steps in a row had a non-finite (NaN or infinite) "
            f"loss or gradient and were skipped ({int(self.skipped)} in all); try a lower learning rate "
            "(--lr), another likelihood (e.g. --likelihood normal, or cbernoulli for grey pixels), "
            "or check the data for extreme values"
        )

    def state_dict(self) -> dict[str, int]:
        """Counters as plain ints (one host read)."""
        return {"skipped": int(self.skipped), "run": int(self._run), "peak": int(self._peak)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.skipped = int(state["skipped"])
        self._run = int(state["run"])
        self._peak = int(state["peak"])


def _skips_on_device(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step`` honours a ``found_inf`` attribute (fused Adam/AdamW/SGD)."""
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False)) and bool(
        optimizer.defaults.get("fused"))


def is_invalid_values(error: ValueError) -> bool:
    """Whether ``error`` is torch's distribution validation refusing NaN or infinite arguments."""
    return "found invalid values" in str(error)


__all__ = ["NonFiniteGuard", "grad_norm", "is_invalid_values"]

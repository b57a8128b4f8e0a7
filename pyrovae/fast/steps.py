"""The speed-ups a training or evaluation loop wraps a plain model in, all from outside.

:func:`fast_steps` is what :class:`~pyrovae.Trainer` runs its steps inside and what
:func:`~pyrovae.infer.evaluation.log_likelihood` runs its passes inside:

* the model registered in Pyro's param store once instead of on every run
  (:func:`registered_once`): a loop that optimises ``module.parameters()`` with a torch
  optimizer does not need the store, and ``pyro.module`` walks every parameter on every call;
* shortcut distributions at the sample sites (:class:`~pyrovae.fast.distributions.FastDistributions`);
* with ``compile``, the networks run through ``torch.compile``
  (:func:`~pyrovae.fast.compiled.compiled_kernels`).

A model written for this library needs nothing of it: everything here patches or intercepts
for the duration of a block, and the model reads the same outside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from pyrovae.fast.compiled import compiled_kernels
from pyrovae.fast.distributions import FastDistributions


@contextmanager
def registered_once(module: nn.Module, register: bool = True) -> Iterator[None]:
    """Inside the block, ``module.register_params()`` (which a :class:`~pyrovae.VAE`'s model and
    guide call on every run) runs once, at the start, and is a no-op afterwards.

    Args:
        module: the model; one without ``register_params`` is left alone. Nested blocks are fine.
        register: register at the start; False for blocks that never need the param store
            (an evaluation, or a block traced with fake tensors).
    """
    registration = getattr(module, "register_params", None)
    if registration is None or "register_params" in module.__dict__:
        yield
        return
    if register:
        registration()
    module.register_params = _already_registered
    try:
        yield
    finally:
        del module.register_params


def _already_registered() -> None:
    """Stands in for ``register_params`` inside :func:`registered_once`."""


@contextmanager
def fast_steps(module: nn.Module, compile: bool = False, training: bool = True,
               register: bool = True) -> Iterator[None]:
    """Run the block's steps of ``module``'s model and guide with the speed-ups of this package.

    Args:
        module: the model (owner of every parameter).
        compile: also run its networks compiled (:func:`~pyrovae.fast.compiled.compiled_kernels`).
        training: compile while gradients are on too (training); otherwise only under
            ``torch.no_grad``.
        register: register ``module`` in Pyro's param store at the start (see
            :func:`registered_once`).
    """
    with registered_once(module, register), FastDistributions(), compiled_kernels(compile, training=training, module=module):
        yield


__all__ = ["fast_steps", "registered_once"]

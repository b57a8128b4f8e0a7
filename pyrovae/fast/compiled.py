"""``torch.compile`` for the heavy pure-tensor parts of evaluation and, on request, training.

With k = 5000 samples per image almost all of ``log p(x)``'s time goes to the decoder and the
likelihood of its output: a matrix product, then several elementwise passes over a
(k, batch, pixels) tensor. Compiled, the elementwise passes fuse into one loop, which brings
the whole evaluation closer to its matrix-product floor (benchmarks/README.md). A training step
has the same shape of work: on a CPU, eager ``softplus`` and the Bernoulli cross-entropy cost
about as much as the matrix products of Pyro's tutorial network.

The model does not know about any of this. :func:`compiled_kernels` wraps it from outside: for
the block, the network of every :class:`~pyrovae.likelihoods.elementwise.Likelihood` and
:class:`~pyrovae.guides.diagonal.Encoder` inside ``module`` is called through ``torch.compile``
(only while gradients are off, unless the block is a ``training`` one), and the Bernoulli image
density of :class:`~pyrovae.fast.distributions.BernoulliImage` scores with one fused kernel.
Outside it nothing changes. Where compilation fails (no C++ compiler on the machine, an
unsupported operation), one warning says so and the eager code runs instead, for the rest of
the session.

``log_likelihood(..., compile=True)`` and ``Trainer(compile=True)`` open such blocks; a loop of
your own can too::

    with pyrovae.fast.compiled.compiled_kernels(training=True, module=vae), FastDistributions():
        for (x,) in batches:
            svi.step(x)

A loss traced whole (:mod:`pyrovae.fast.traced_loss`) gets its softplus written in the form
inductor vectorizes by a rewrite of the recorded graph (:func:`fuse_softplus`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

aten = torch.ops.aten
_depth = 0
_training_depth = 0
_tracing_depth = 0
_failure: str | None = None
_cache: dict[Callable, Callable] = {}


@contextmanager
def compiled_kernels(enabled: bool = True, training: bool = False,
                     module: nn.Module | None = None) -> Iterator[None]:
    """Run the block with compiled kernels (no-op when ``enabled`` is False).

    Args:
        enabled: use them at all.
        training: use them while gradients are on too (inductor then compiles the backward
            pass as well); otherwise only under ``torch.no_grad``.
        module: the model whose likelihoods' and encoders' networks run compiled in the block
            (their ``forward`` is patched for its duration); None compiles only the Bernoulli
            image density.
    """
    global _depth, _training_depth
    if not enabled:
        yield
        return
    patched = [] if module is None else [net for net in _networks(module) if _patch(net)]
    _depth += 1
    _training_depth += training
    try:
        yield
    finally:
        for net in patched:
            del net.forward
        _depth -= 1
        _training_depth -= training
        if _depth == 0:
            # A compiled module holds its network: let the networks go with the block (torch's
            # own caches make compiling the same network again in a later block quick).
            _cache.clear()


def _networks(module: nn.Module) -> list[nn.Module]:
    """The networks of the likelihoods and encoders inside ``module``."""
    from pyrovae.guides.diagonal import Encoder
    from pyrovae.likelihoods.elementwise import Likelihood

    found = [part.net for part in module.modules() if isinstance(part, (Likelihood, Encoder))]
    return list({id(net): net for net in found if isinstance(net, nn.Module)}.values())


def _patch(net: nn.Module) -> bool:
    """Route ``net``'s calls through :func:`call` while :func:`active`; False if already routed."""
    if "forward" in net.__dict__:
        return False
    eager = net.forward

    def forward(*args: Any) -> Any:
        return call(eager, *args) if active() else eager(*args)

    net.forward = forward
    return True


def fuse_softplus(graph: torch.fx.GraphModule) -> int:
    """Replace every ``softplus(x)`` (beta 1) of a recorded graph by :func:`softplus`'s form, in place.

    Returns:
        How many were replaced.
    """
    replaced = 0
    for node in list(graph.graph.nodes):
        if node.op != "call_function" or node.target is not aten.softplus.default:
            continue
        beta = node.args[1] if len(node.args) > 1 else node.kwargs.get("beta", 1)
        if beta != 1:
            continue
        with graph.graph.inserting_before(node):
            x = node.args[0]
            positive = graph.graph.call_function(aten.clamp_min.default, (x, 0))
            tail = graph.graph.call_function(aten.exp.default, (
                graph.graph.call_function(aten.neg.default, (graph.graph.call_function(aten.abs.default, (x,)),)),))
            log = graph.graph.call_function(aten.log.default, (graph.graph.call_function(aten.add.Tensor, (tail, 1)),))
            fused = graph.graph.call_function(aten.add.Tensor, (positive, log))
        fused.meta.update(node.meta)
        node.replace_all_uses_with(fused)
        graph.graph.erase_node(node)
        replaced += 1
    if replaced:
        graph.recompile()
    return replaced


def softplus(x: Tensor) -> Tensor:
    """``log(1 + exp(x))`` written as ``max(x, 0) + log(1 + exp(-|x|))`` for compiled code.

    Inductor's CPU code vectorizes ``exp`` and ``log`` but not ``log1p``: on a (100, 100, 784)
    tensor, one thread, the fused Bernoulli log-density runs at 9.9 ns per element with
    ``log1p`` and 1.6 ns with this form (``benchmarks/compiled_softplus.py``). ``1 + exp(-|x|)`` rounds the tail below 6e-8 away, an
    absolute error under 1.2e-7 per element (float32 ``log1p`` is not better than that either).
    """
    return x.clamp_min(0) + torch.log(1 + torch.exp(-x.abs()))


def active() -> bool:
    """Whether compiled kernels should be used here and now: inside a block, with gradients
    off unless the block is a training one, and not while a whole loss is being traced (that
    graph is compiled as one, :mod:`pyrovae.fast.traced_loss`)."""
    return (_depth > 0 and _failure is None and _tracing_depth == 0
            and (_training_depth > 0 or not torch.is_grad_enabled()))


@contextmanager
def tracing() -> Iterator[None]:
    """Mark a block whose tensor operations are being recorded into a graph that will be
    compiled as a whole: :func:`fused_forms` is true inside it, :func:`active` false."""
    global _tracing_depth
    _tracing_depth += 1
    try:
        yield
    finally:
        _tracing_depth -= 1


def fused_forms() -> bool:
    """Whether the code running now ends up in a compiled graph (``torch.compile``, or a loss
    being traced for one), where the forms written for inductor (:func:`softplus`) pay."""
    return _tracing_depth > 0 or torch.compiler.is_compiling()


def call(fn: Callable, *args: Any) -> Any:
    """``torch.compile(fn)(*args)``, compiled once per ``fn`` (shapes dynamic); ``fn(*args)``
    when compilation fails, after one warning."""
    global _failure
    compiled = _cache.get(fn)
    if compiled is None:
        # Inductor's C++ build logs "No CUDA runtime is found" on every CPU-only machine: noise.
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        compiled = _cache[fn] = torch.compile(fn, dynamic=True)
    try:
        return compiled(*args)
    except Exception as error:  # noqa: BLE001 - any compiler failure; a real error recurs eagerly
        _failure = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"
        warnings.warn(f"pyrovae: torch.compile failed here ({_failure}); evaluating without it",
                      RuntimeWarning, stacklevel=2)
        return fn(*args)


__all__ = ["compiled_kernels", "active", "call", "fuse_softplus", "fused_forms", "softplus", "tracing"]

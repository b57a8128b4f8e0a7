"""The training loss traced once into one graph and compiled whole: Pyro's Python off the step.

A training step of a Pyro model runs the model and the guide in Python: messengers, sample
sites, distribution objects. For a model whose structure does not change from step to step
(the same sites, shapes and scales each time, as for every :class:`~pyrovae.VAE`), that
Python produces the same tensor operations every time. :class:`TracedLoss` records them once
(``make_fx`` with fake tensors: no value is computed, and any Python that branches on a
tensor's value stops the trace), hands the recorded graph to ``torch.compile``, and runs the
compiled forward and backward on later steps. This is what Pyro's ``JitTrace_ELBO`` does with
TorchScript, with inductor's fused kernels instead. The compiled evaluation records its pass
of importance-sampling particles the same way (:func:`pyrovae.infer.evaluation.log_likelihood`).

What the graph takes as it was when traced: everything but the parameters, the buffers and
the data. A traced graph is keyed on the data's shape, dtype and device, the context's, the
train/eval mode of every submodule, and a key the owner supplies (the trainer's KL weight),
which is traced only once it holds still from one call to the next: a warm-up whose weight
changes every step never traces. State of your own that the model reads as a Python number
(an annealed temperature kept as a float attribute, say) is not in the key: call
:meth:`TracedLoss.retrace` after changing it, or train without ``compile``.

Random draws inside the graph (the reparameterized noise, dropout) come from torch's global
generator through the eager kernels (inductor's ``fallback_random``), so a seeded run draws
the same numbers as without tracing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable

import pyro
import torch
from pyro.infer.util import is_validation_enabled
from torch import Tensor, nn

from pyrovae.fast import compiled
#: Distinct keys traced at most; later new keys run the eager loss.
MAX_GRAPHS = 8
_UNSET = object()


class TracedLoss(nn.Module):
    """``loss(x, context)`` run as one compiled graph, one per key (shapes, modes, owner's key).

    Args:
        loss: a module whose ``forward(x, context)`` returns a tensor (for training a 0-d
            differentiable loss, :class:`~pyrovae.infer.elbo.ELBOLoss`) and whose parameters and
            buffers are all the tensors it depends on besides ``x`` and ``context``.
        key: a function returning extra hashable state baked into the graph (e.g. the KL
            weight), read on every call. A graph is traced only when this has not changed
            since the previous call, so a KL warm-up, whose weight changes every step, runs
            ``loss`` itself until its weight settles.
        purpose: what the graph is for, in the warning when it is refused ("training";
            :func:`~pyrovae.infer.evaluation.log_likelihood` traces its importance weights with
            "evaluating").
        rewrite: a function that edits each recorded graph in place before it is compiled
            (the evaluation's :func:`~pyrovae.fast.onednn.route_linears_to_onednn`), or None.

    Calls with Pyro's validation enabled run ``loss`` itself (the validated step checks the
    model; the graph has no checks). Where tracing or compiling fails, one warning names the
    reason and every later call runs ``loss`` itself.

    Attributes:
        refused: why tracing is off for good, or None.
    """

    def __init__(self, loss: nn.Module, key: Callable[[], Hashable] = lambda: None,
                 purpose: str = "training", rewrite: Callable[[torch.fx.GraphModule], object] | None = None) -> None:
        super().__init__()
        self.loss = loss
        self.purpose = purpose
        self._rewrite = rewrite
        self._extra_key = key
        self._graphs: dict[Hashable, Callable] = {}
        self._last_extra: Hashable = _UNSET  # the owner's key at the previous call
        self._ran: set[Hashable] = set()  # keys whose graph has run (compiled) at least once
        self.refused: str | None = None

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """The loss of ``self.loss`` at ``x`` (``(batch, *event_shape)``), a 0-d tensor."""
        if self.refused is not None or is_validation_enabled() or compiled._failure is not None:
            return self.loss(x, context)
        extra = self._extra_key()
        steady, self._last_extra = extra == self._last_extra, extra
        key = self._key(x, context, extra)
        graph = self._graphs.get(key)
        if graph is None:
            if not steady or len(self._graphs) >= MAX_GRAPHS:
                return self.loss(x, context)
            graph = self._trace(key, x, context)
            if graph is None:
                return self.loss(x, context)
        params = [p for _, p in self.loss.named_parameters()]
        buffers = [b for _, b in self.loss.named_buffers()]
        try:
            loss = graph(params, buffers, x, context)
        except Exception as error:  # noqa: BLE001 - the compiler's failure, at the first call
            if key in self._ran:
                raise  # a graph that ran before: a real error, not the compiler's
            self._refuse(f"torch.compile failed ({_first_line(error)})")
            return self.loss(x, context)
        self._ran.add(key)
        return loss

    @property
    def num_graphs(self) -> int:
        """How many traced graphs have run so far (one per key)."""
        return len(self._ran)

    def retrace(self) -> None:
        """Drop the traced graphs (after changing state that the model reads as a number)."""
        self._graphs.clear()
        self._ran.clear()

    def _key(self, x: Tensor, context: Tensor | None, extra: Hashable) -> Hashable:
        data = (tuple(x.shape), x.dtype, x.device)
        ctx = None if context is None else (tuple(context.shape), context.dtype, context.device)
        modes = tuple(m.training for m in self.loss.modules())
        return data, ctx, modes, extra

    def _trace(self, key: Hashable, x: Tensor, context: Tensor | None) -> Callable | None:
        """The loss's graph for ``key``, wrapped in ``torch.compile``; None (and tracing off for
        good) when the loss cannot be recorded."""
        try:
            graph = trace_loss(self.loss, x, context)
        except Exception as error:  # noqa: BLE001 - any Python the tracer cannot record
            self._refuse(f"the loss could not be traced ({_first_line(error)})")
            return None
        compiled.fuse_softplus(graph)  # the form inductor vectorizes on a CPU
        if self._rewrite is not None:
            self._rewrite(graph)
        mutated = _mutated_inputs(graph)
        if mutated:
            self._refuse(f"the loss changes its inputs in place ({mutated[0]}), e.g. a batch norm's "
                         "running statistics")
            return None
        self._graphs[key] = torch.compile(graph, dynamic=False, options={"fallback_random": True})
        return self._graphs[key]

    def _refuse(self, reason: str) -> None:
        self.refused = reason
        self._graphs.clear()
        warnings.warn(f"pyrovae: {self.purpose} without the traced graph: {reason}", RuntimeWarning,
                      stacklevel=3)


def trace_loss(loss: nn.Module, x: Tensor, context: Tensor | None = None) -> torch.fx.GraphModule:
    """Record the tensor operations of ``loss(x, context)`` with Pyro's validation off.

    Returns:
        A graph module called as ``graph(params, buffers, x, context)``, with ``params`` and
        ``buffers`` listed in the order of ``loss.named_parameters()`` and ``named_buffers()``;
        it computes what ``loss(x, context)`` computes, drawing its random numbers anew.

    Raises:
        Whatever the tracer raises for Python that depends on a tensor's value.
    """
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.func import functional_call

    param_names = [name for name, _ in loss.named_parameters()]
    buffer_names = [name for name, _ in loss.named_buffers()]

    def flat_loss(params: list[Tensor], buffers: list[Tensor], x: Tensor, context: Tensor | None) -> Tensor:
        state = dict(zip(param_names, params)) | dict(zip(buffer_names, buffers))
        # A submodule shared by two parents (the VampPrior's encoder) is one object: swapping
        # its tensors under one name swaps them for both. torch's tie_weights=True would
        # handle that too, but leaves the other name's tensors swapped afterwards.
        return functional_call(loss, state, (x, context), tie_weights=False)

    params = [p.detach() for _, p in loss.named_parameters()]
    buffers = [b for _, b in loss.named_buffers()]
    originals = _tensor_slots(loss)
    try:
        with compiled.tracing(), pyro.validation_enabled(False), warnings.catch_warnings():
            # The traced parameters are detached fakes, so a model that calls pyro.module on every
            # run (the CVAE) registers none of them in Pyro's param store, which must not hold
            # fakes; Pyro warns about each, which says nothing here.
            warnings.filterwarnings("ignore", message=".*not registered in the param store because "
                                    "requires_grad=False")
            return make_fx(flat_loss, tracing_mode="fake")(params, buffers, x, context)
    finally:
        # The module must come out with its own tensors whatever happened inside.
        for (owner, kind, name), tensor in originals.items():
            getattr(owner, kind)[name] = tensor


def _tensor_slots(module: nn.Module) -> dict[tuple[nn.Module, str, str], Tensor]:
    """Every parameter and buffer slot of every submodule, with the tensor it holds now."""
    return {(owner, kind, name): tensor for owner in module.modules()
            for kind in ("_parameters", "_buffers") for name, tensor in getattr(owner, kind).items()}


def _mutated_inputs(graph: torch.fx.GraphModule) -> list[str]:
    """Names of the operations that write into one of the graph's inputs."""
    found = []
    for node in graph.graph.nodes:
        schema = getattr(node.target, "_schema", None)
        if node.op != "call_function" or schema is None or not schema.is_mutable:
            continue
        for argument, value in zip(schema.arguments, node.args):
            if argument.is_write and isinstance(value, torch.fx.Node) and value.op == "placeholder":
                found.append(str(node.target))
    return found


def _first_line(error: BaseException) -> str:
    # Some tracer errors carry their text only on the error that caused them.
    text = str(error).strip() or str(error.__cause__ or "").strip()
    return f"{type(error).__name__}: {(text.splitlines() or [''])[0][:200]}"


__all__ = ["TracedLoss", "MAX_GRAPHS", "trace_loss"]

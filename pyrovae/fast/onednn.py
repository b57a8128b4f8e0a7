"""Linear layers of a traced evaluation graph run by oneDNN's matrix product on a CPU.

``nn.Linear`` on a CPU is ``addmm(bias, x, weight.T)``, a BLAS product that first copies the
bias into the output. oneDNN's linear (``torch.ops.mkldnn._linear_pointwise``, the kernel
inductor uses for frozen inference graphs) computes the same product with the bias added in
its epilogue. On the 2-core AVX-512 machine of benchmarks/README.md a whole traced evaluation
pass of the tutorial VAE (10,000 rows) took about 0.84 of its time with ``addmm``, paired over
100 alternated passes (a scratch measurement; ``benchmarks/speed.py``'s evaluation measures the
whole effect).

Inductor only lowers oneDNN's linear with a constant, pre-packed weight; the weights of a
traced graph are inputs. :func:`onednn_linear` wraps the kernel as an opaque custom operator,
which inductor calls as it is. It has no backward, so :func:`route_linears_to_onednn` is for
graphs traced with gradients off (the importance weights of
:func:`~pyrovae.infer.evaluation.log_likelihood`).
"""

from __future__ import annotations

import torch
from torch import Tensor

aten = torch.ops.aten


@torch.library.custom_op("pyrovae::onednn_linear", mutates_args=())
def onednn_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x @ weight.T + bias`` by oneDNN; ``x`` ``(M, K)``, ``weight`` ``(N, K)``, ``bias``
    ``(N,)`` or None; returns ``(M, N)``. float32 CPU tensors only, no gradient."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


@onednn_linear.register_fake
def _(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return x.new_empty(x.shape[0], weight.shape[0])


def available() -> bool:
    """Whether this build of torch has oneDNN (the x86 and ARM wheels do)."""
    return torch.backends.mkldnn.is_available()


def route_linears_to_onednn(graph: torch.fx.GraphModule) -> int:
    """Replace every ``addmm(bias, x, t(weight))`` and ``mm(x, t(weight))`` of float32 CPU
    tensors in a graph traced with gradients off by :func:`onednn_linear`, in place.

    Returns:
        How many products were replaced.
    """
    replaced = 0
    for node in list(graph.graph.nodes):
        if node.op != "call_function" or node.kwargs:
            continue
        if node.target is aten.addmm.default and len(node.args) == 3:
            bias, x, transposed = node.args
        elif node.target is aten.mm.default and len(node.args) == 2:
            bias, (x, transposed) = None, node.args
        else:
            continue
        if not (isinstance(transposed, torch.fx.Node) and transposed.target is aten.t.default):
            continue
        weight = transposed.args[0]
        operands = [(x, 2), (weight, 2)] + ([] if bias is None else [(bias, 1)])
        if not all(_float32_cpu(operand, dims) for operand, dims in operands):
            continue
        with graph.graph.inserting_before(node):
            linear = graph.graph.call_function(torch.ops.pyrovae.onednn_linear.default, (x, weight, bias))
        linear.meta.update(node.meta)
        node.replace_all_uses_with(linear)
        graph.graph.erase_node(node)
        replaced += 1
    if replaced:
        graph.graph.eliminate_dead_code()
        graph.recompile()
    return replaced


def _float32_cpu(node: object, dims: int) -> bool:
    """Whether a graph argument is a contiguous float32 CPU tensor of ``dims`` dimensions."""
    value = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
    return (isinstance(value, Tensor) and value.dtype == torch.float32 and value.device.type == "cpu"
            and value.dim() == dims and value.is_contiguous())


__all__ = ["available", "onednn_linear", "route_linears_to_onednn"]

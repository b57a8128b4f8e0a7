"""Rebuilding a module from a description of how it was built: what :func:`pyrovae.save` stores.

A module's weights (``state_dict``) say nothing about its architecture. pyrovae's parts are
built by constructors whose arguments are numbers, strings, shapes and other parts, so the
arguments *are* the architecture: a :class:`Rebuildable` module keeps the arguments its
constructor was called with, :func:`describe` turns a tree of such modules into a plain
description (dicts, lists, numbers, strings and tensors, which ``torch.load(weights_only=True)``
reads without running code), and :func:`rebuild` calls the same constructors again.

Every network, encoder, likelihood, prior and model of pyrovae is :class:`Rebuildable`, and so is
any subclass a user writes (a custom ``Prior`` is rebuilt like a built-in one). A module passed
to a constructor is described by its own constructor's arguments; one module passed twice (a
VampPrior shares the VAE's encoder) is rebuilt once and shared again.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from pyrovae.errors import InputError

#: Version of the description's layout, stored beside it.
SPEC_VERSION = 1


class SpecError(InputError):
    """A module cannot be described, or a description cannot be rebuilt."""


class Rebuildable:
    """Mixin that records the arguments a module's constructor was called with.

    ``class MyPrior(Prior)`` inherits it through :class:`~pyrovae.priors.Prior`; a plain network
    of your own can opt in with ``class MyNet(Rebuildable, nn.Module)``. The arguments of the
    outermost constructor call are kept (a subclass's, not the ``super().__init__`` calls it
    makes), as ``(args, kwargs)`` in ``self._constructor_arguments``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_records_arguments", False):
            return

        @functools.wraps(init)
        def recording_init(self: Any, *args: Any, **kw: Any) -> None:
            # The outermost call comes first; a super().__init__ call finds the entry already made.
            if "_constructor_arguments" not in self.__dict__:
                self.__dict__["_constructor_arguments"] = (args, kw)
            init(self, *args, **kw)

        recording_init._records_arguments = True  # type: ignore[attr-defined]
        cls.__init__ = recording_init  # type: ignore[method-assign]


def class_path(cls: type) -> str:
    """``module.QualName`` of a class, e.g. ``pyrovae.models.vae.VAE``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def describe(module: nn.Module) -> dict[str, Any]:
    """The description from which :func:`rebuild` makes a module like ``module`` (weights aside).

    Returns:
        ``{"version": 1, "root": i, "modules": [{"class": "pkg.mod.Class", "args": [...],
        "kwargs": {...}}, ...]}``; inside arguments, a module is ``{"module": index}``, a tuple
        ``{"tuple": [...]}``, a list ``{"list": [...]}``, a ``torch.Size`` ``{"size": [...]}``,
        a dict ``{"dict": {...}}`` and a tensor ``{"tensor": t}``.

    Raises:
        SpecError: naming the first part whose constructor arguments were not recorded (a
            module that is not :class:`Rebuildable`, e.g. an ``nn.Sequential`` passed as a
            network) or an argument that is not data (a function, an open file, ...).
    """
    modules: list[dict[str, Any]] = []
    index: dict[int, int] = {}

    def module_entry(m: nn.Module, where: str) -> dict[str, int]:
        if id(m) in index:
            return {"module": index[id(m)]}
        recorded = m.__dict__.get("_constructor_arguments")
        if recorded is None:
            raise SpecError(f"cannot describe {where}: it is a {class_path(type(m))}, whose constructor "
                            "arguments pyrovae does not record; build it from pyrovae's parts (e.g. "
                            "pyrovae.MLP) or add pyrovae.nn.Rebuildable to its base classes")
        args, kwargs = recorded
        entry: dict[str, Any] = {"class": class_path(type(m))}
        slot = len(modules)
        index[id(m)] = slot
        modules.append(entry)
        name = type(m).__name__
        entry["args"] = [value_entry(a, f"{name} argument {i}") for i, a in enumerate(args)]
        entry["kwargs"] = {k: value_entry(v, f"{name} argument {k!r}") for k, v in kwargs.items()}
        return {"module": slot}

    def value_entry(value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, nn.Module):
            return module_entry(value, where)
        if isinstance(value, Tensor):
            return {"tensor": value.detach().cpu().clone()}
        if isinstance(value, torch.Size):
            return {"size": list(value)}
        if isinstance(value, tuple):
            return {"tuple": [value_entry(v, where) for v in value]}
        if isinstance(value, list):
            return {"list": [value_entry(v, where) for v in value]}
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"dict": {k: value_entry(v, where) for k, v in value.items()}}
        raise SpecError(f"cannot describe {where}: a {type(value).__name__} is not data that a "
                        "checkpoint can hold (numbers, strings, shapes, tensors and modules are)")

    root = module_entry(module, f"the {type(module).__name__}")["module"]
    return {"version": SPEC_VERSION, "root": root, "modules": modules}


def spec_entry(module: nn.Module) -> dict[str, Any]:
    """``{"spec": describe(module)}``, or ``{"spec_error": reason}`` when it cannot be described.

    What training checkpoints add to their payload: a model with a part pyrovae cannot
    describe still trains and checkpoints, and :func:`pyrovae.load` says why it cannot rebuild it.
    """
    try:
        return {"spec": describe(module)}
    except SpecError as e:
        return {"spec_error": str(e)}


def rebuild(spec: dict[str, Any], classes: Iterable[type] = ()) -> nn.Module:
    """Call the constructors that ``spec`` (from :func:`describe`) names, with the same arguments.

    Args:
        spec: a description from :func:`describe`.
        classes: classes outside pyrovae that the description may name (a custom prior,
            say). Only pyrovae's own classes and these are imported, so a description cannot
            make ``rebuild`` call an arbitrary function.

    Returns:
        The module, with freshly initialised weights (load the ``state_dict`` next).

    Raises:
        SpecError: one line naming a class that is unknown, not allowed or cannot be built.
    """
    if not isinstance(spec, dict) or spec.get("version") != SPEC_VERSION:
        found = spec.get("version") if isinstance(spec, dict) else type(spec).__name__
        raise SpecError(f"model description version {found!r} is not {SPEC_VERSION}; "
                        "use the pyrovae version that wrote the file")
    allowed = {class_path(c): c for c in classes}
    entries = spec["modules"]
    built: dict[int, nn.Module] = {}

    def build(slot: int) -> nn.Module:
        if slot not in built:
            entry = entries[slot]
            cls = _find_class(entry["class"], allowed)
            args = [value(a) for a in entry["args"]]
            kwargs = {k: value(v) for k, v in entry["kwargs"].items()}
            try:
                built[slot] = cls(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - any constructor failure gets the same one line
                raise SpecError(f"cannot rebuild {cls.__name__} from the checkpoint's description "
                                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                                "the class's constructor changed since the file was written") from None
        return built[slot]

    def value(v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        (tag, inner), = v.items()
        if tag == "module":
            return build(inner)
        if tag == "tensor":
            return inner
        if tag == "size":
            return torch.Size(inner)
        if tag == "tuple":
            return tuple(value(x) for x in inner)
        if tag == "list":
            return [value(x) for x in inner]
        if tag == "dict":
            return {k: value(x) for k, x in inner.items()}
        raise SpecError(f"unknown entry {tag!r} in the model description; use the pyrovae version that wrote it")

    return build(spec["root"])


def _find_class(path: str, allowed: dict[str, type]) -> type:
    if path in allowed:
        return allowed[path]
    if not path.startswith("pyrovae."):
        names = ", ".join(sorted(allowed)) or "none"
        raise SpecError(f"the checkpoint's model uses {path}, which is not part of pyrovae; if you trust the "
                        f"file, pass the class to load, e.g. pyrovae.load(path, classes=[{path.rsplit('.', 1)[-1]}]) "
                        f"(classes given: {names})")
    # A nested class has a dotted qualname: find the longest importable module prefix.
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for name in parts[cut:]:
                obj = getattr(obj, name)
        except AttributeError:
            break
        if isinstance(obj, type) and issubclass(obj, Rebuildable) and issubclass(obj, nn.Module):
            return obj
        break
    raise SpecError(f"the checkpoint's model uses {path}, which this pyrovae does not have; "
                    "use the pyrovae version that wrote the file")


__all__ = ["Rebuildable", "SpecError", "describe", "rebuild", "spec_entry", "class_path", "SPEC_VERSION"]

"""Positional constructors of frozen slotted dataclasses, for objects fusion builds every step.

The __init__ that dataclass generates for a frozen class sets each field through
object.__setattr__ (a global lookup and a call per field, about 0.1 us each). Fusion builds
several such objects in every step (the fused ego and tracks, its state and output, a tracker
state and its counters per frame: some 5,000 in a 20 s run). A builder writes each slot through
its descriptor instead, the same fields in the same order, at about half the cost (sim/truth.py
does the same by hand, fusion/sync.py for its retimed message copies). Everything else (frozen,
fields(), replace(), pickling, repr, eq) stays dataclass's own.

A builder takes every field, positionally, in declaration order: no defaults. It is made only for
a class whose generated __init__ does nothing but set its fields (no __post_init__, every
field in __init__), which ``slot_builder`` checks, so that a built object is exactly the
one __init__ would make.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable


def slot_builder(cls: type) -> Callable[..., Any]:
    """``build(*fields)`` for ``cls``, a frozen slotted dataclass with no base class: a new instance
    with its fields, in declaration order, set to the arguments. TypeError for any other class."""
    fields = dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ()
    names = tuple(f.name for f in fields)
    if (not names or not cls.__dataclass_params__.frozen or cls.__base__ is not object
            or getattr(cls, "__slots__", None) != names or hasattr(cls, "__post_init__")
            or not all(f.init for f in fields)):
        raise TypeError(f"slot_builder: {cls.__name__} is not a frozen slotted dataclass whose __init__ "
                        f"only sets its fields")
    env = {"_new": object.__new__, "_cls": cls}
    lines = [f"def build({', '.join(names)}):", "    out = _new(_cls)"]
    for k, name in enumerate(names):
        env[f"_set{k}"] = getattr(cls, name).__set__
        lines.append(f"    _set{k}(out, {name})")
    lines.append("    return out")
    exec("\n".join(lines), env)  # field names are identifiers: dataclass rejects any other
    build = env["build"]
    build.__qualname__ = build.__name__ = f"build_{cls.__name__}"
    build.__doc__ = f"A {cls.__name__} from its fields, positionally (fusion/slot_builder.py)."
    return build

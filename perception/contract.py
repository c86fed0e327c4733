"""Input/output contract of a detector model, checked against an onnxruntime session on load.

A user may drop in their own ONNX model; it is accepted when its tensor names match and every
fixed dimension agrees (a symbolic or -1 dimension in the model matches any size, the batch
dimension is usually one). A mismatch is refused with the expected and the found signature.
"""
from __future__ import annotations

from dataclasses import dataclass


class ModelContractError(ValueError):
    """The model's inputs or outputs differ from the contract: the message shows both."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]  # -1 for a dimension the contract leaves free

    def describe(self) -> str:
        dims = ", ".join("?" if d < 0 else str(d) for d in self.shape)
        return f"{self.name}[{dims}]"


@dataclass(frozen=True, slots=True)
class ModelContract:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def describe(self) -> str:
        return (f"inputs ({', '.join(s.describe() for s in self.inputs)}) -> "
                f"outputs ({', '.join(s.describe() for s in self.outputs)})")


def _dim(value) -> int:
    return int(value) if isinstance(value, int) else -1  # onnxruntime gives str/None for symbolic dims


def _found(args) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(a.name, tuple(_dim(d) for d in a.shape)) for a in args)


def _compatible(expected: tuple[TensorSpec, ...], found: tuple[TensorSpec, ...]) -> bool:
    if [s.name for s in expected] != [s.name for s in found]:
        return False
    for e, f in zip(expected, found):
        if len(e.shape) != len(f.shape):
            return False
        if any(de >= 0 and df >= 0 and de != df for de, df in zip(e.shape, f.shape)):
            return False
    return True


def check_session(session, contract: ModelContract, model_path: str) -> None:
    """Raise ModelContractError unless ``session``'s signature satisfies ``contract``."""
    found = ModelContract(_found(session.get_inputs()), _found(session.get_outputs()))
    if not (_compatible(contract.inputs, found.inputs) and _compatible(contract.outputs, found.outputs)):
        raise ModelContractError(
            f"model {model_path} does not match the detector contract:\n"
            f"  expected: {contract.describe()}\n"
            f"  found:    {found.describe()}")

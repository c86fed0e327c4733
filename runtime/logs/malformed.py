"""Schema and codec for malformed messages: a message whose payload does not have the shape its type
documents (``core.validation.well_formed`` is False), such as a sensor payload corrupted in transfer.

A log records what arrived, malformed or not, because the health monitor's verdict on the run depends
on it (it counts the message as malformed) and a replay must reproduce that bit for bit. The
message's own schema cannot always hold it: ``foxglove.PointCloud`` needs (N, 3) points,
``foxglove.RawImage`` an (H, W, 3) image, and the own schema's ``double`` a ``WheelSpeed.speed_mps``
that arrived as a 2-vector. So a malformed message is written, on its usual topic, through a channel
of schema ``rtdrive.MalformedMessage``, which holds any message field by field:

    message MalformedMessage { string type = 1; repeated Field fields = 2; }
    message Field { string name = 1; string kind = 2; NDArray value = 3; }

``type`` is the message's class name, each ``Field`` keeps a field's name, the Python kind of its
value and the value as an ``rtdrive.NDArray`` (dtype, shape, bytes): arrays as they are, scalars as
0-d arrays, str and bytes as uint8 arrays. Decoding rebuilds the same class with the same field
values: same Python types, array dtypes and shapes, the same bits.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from runtime.logs.dataclass_proto import (PACKAGE, add_ndarray_message, build_ndarray, fill_ndarray,
                                          record_field_names)

SCHEMA_NAME = f"{PACKAGE}.MalformedMessage"
_FILE_NAME = "rtdrive/malformed.proto"
_FDP = descriptor_pb2.FieldDescriptorProto
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Field kinds: how the value's Python type is rebuilt from its NDArray.
#   ndarray  the array itself;        npscalar  a numpy scalar (0-d array, its dtype);
#   int      a Python int (0-d int64); float     a Python float (0-d float64, IEEE bits kept);
#   bool     a Python bool;            str       UTF-8 bytes as uint8;   bytes  the bytes as uint8.
KINDS = ("ndarray", "npscalar", "int", "float", "bool", "str", "bytes")


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(name=_FILE_NAME, package=PACKAGE, syntax="proto2")
    add_ndarray_message(fdp)
    field_msg = fdp.message_type.add(name="Field")
    field_msg.field.add(name="name", number=1, label=_FDP.LABEL_OPTIONAL, type=_FDP.TYPE_STRING)
    field_msg.field.add(name="kind", number=2, label=_FDP.LABEL_OPTIONAL, type=_FDP.TYPE_STRING)
    field_msg.field.add(name="value", number=3, label=_FDP.LABEL_OPTIONAL, type=_FDP.TYPE_MESSAGE,
                        type_name=f".{PACKAGE}.NDArray")
    msg = fdp.message_type.add(name="MalformedMessage")
    msg.field.add(name="type", number=1, label=_FDP.LABEL_OPTIONAL, type=_FDP.TYPE_STRING)
    msg.field.add(name="fields", number=2, label=_FDP.LABEL_REPEATED, type=_FDP.TYPE_MESSAGE,
                  type_name=f".{PACKAGE}.Field")
    return fdp


def _as_array(value: object, where: str) -> tuple[str, np.ndarray]:
    """(kind, array) for one field value; TypeError for a value no kind holds (never dropped)."""
    if isinstance(value, np.ndarray):
        return "ndarray", value
    if isinstance(value, np.generic):
        return "npscalar", np.asarray(value)
    # bool before int: bool is a subclass of int. Exact type checks: an IntEnum or a float
    # subclass would come back as the base type, which is not the same message.
    if type(value) is bool:
        return "bool", np.array(value, dtype=np.bool_)
    if type(value) is int:
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"{where}: {value!r} is not an int64")
        return "int", np.array(value, dtype="<i8")
    if type(value) is float:
        return "float", np.array(value, dtype="<f8")
    if type(value) is str:
        return "str", np.frombuffer(value.encode("utf-8"), dtype=np.uint8)
    if type(value) is bytes:
        return "bytes", np.frombuffer(value, dtype=np.uint8)
    raise TypeError(f"{where}: a {type(value).__name__} cannot be logged in a malformed message "
                    f"(kinds: {', '.join(KINDS)})")


def _from_array(kind: str, array: np.ndarray, where: str) -> object:
    if kind == "ndarray":
        return array
    if kind in ("npscalar", "int", "float", "bool"):
        if array.shape != ():
            raise ValueError(f"{where}: a {kind} needs a 0-d array, got shape {array.shape}")
        scalar = array[()]  # a numpy scalar of the array's dtype
        if kind == "npscalar":
            return scalar
        return {"int": int, "float": float, "bool": bool}[kind](scalar)
    if kind in ("str", "bytes"):
        if array.dtype != np.uint8 or array.ndim != 1:
            raise ValueError(f"{where}: a {kind} needs a 1-d uint8 array, got {array.dtype} {array.shape}")
        return array.tobytes().decode("utf-8") if kind == "str" else array.tobytes()
    raise ValueError(f"{where}: unknown field kind {kind!r} (known: {', '.join(KINDS)})")


class MalformedCodec:
    """Encodes any record of ``types`` (dataclasses, NamedTuples) as ``rtdrive.MalformedMessage`` and
    decodes it back. One private descriptor pool per instance, as in ``DataclassProtoSchema``."""

    def __init__(self, types: Iterable[type]):
        self._types: dict[str, type] = {}
        for tp in types:
            known = self._types.setdefault(tp.__name__, tp)
            if known is not tp:
                raise ValueError(f"two message types are named {tp.__name__}: {known!r} and {tp!r}")
        fdp = _file_descriptor()
        pool = descriptor_pool.DescriptorPool()
        pool.Add(fdp)
        self._fds_bytes = descriptor_pb2.FileDescriptorSet(file=[fdp]).SerializeToString()
        self._class = message_factory.GetMessageClass(pool.FindMessageTypeByName(SCHEMA_NAME))

    @property
    def file_descriptor_set(self) -> bytes:
        return self._fds_bytes

    def encode(self, msg: object) -> bytes:
        tp = type(msg)
        if self._types.get(tp.__name__) is not tp:
            raise TypeError(f"{tp.__name__} is not a message type of this log")
        pb = self._class(type=tp.__name__)
        for name in record_field_names(tp):
            where = f"{tp.__name__}.{name} (malformed)"
            kind, array = _as_array(getattr(msg, name), where)
            field = pb.fields.add(name=name, kind=kind)
            fill_ndarray(field.value, array, where)
        return pb.SerializeToString()

    def decode(self, payload: bytes) -> object:
        """The logged message, rebuilt; ValueError when the payload does not fit its type."""
        pb = self._class.FromString(payload)
        tp = self._types.get(pb.type)
        if tp is None:
            raise ValueError(f"malformed message of type {pb.type!r}, which is not a message type of this log")
        expected = record_field_names(tp)
        names = tuple(f.name for f in pb.fields)
        if names != expected:
            raise ValueError(f"malformed {pb.type} carries fields {list(names)}, its type has {list(expected)}")
        values = {f.name: _from_array(f.kind, build_ndarray(f.value), f"{pb.type}.{f.name}") for f in pb.fields}
        return tp(**values)

"""Protobuf schemas for rtdrive's own message types, built at run time from their record types.

No .proto files and no protoc: each record type, a frozen dataclass or a typed NamedTuple (the
form of a record built for every message, such as the synchroniser's decisions, being three times
cheaper to build), is reflected into a ``DescriptorProto`` with ``descriptor_pb2`` and the
resulting file descriptor set is what the MCAP schema record carries, so
any protobuf-aware tool (Foxglove, ``mcap_protobuf``) can decode the log without our code.

Field mapping, chosen for bit-exact round trips:
- ``int`` -> sint64 (zig-zag: small negatives such as ``plan_t_ns = -1`` stay short);
- ``float`` -> double (an IEEE copy: -0.0, inf and NaN survive);
- ``bool``, ``str``, ``bytes`` -> the same protobuf scalar;
- ``IntEnum`` -> a protobuf enum with the same names and values (a zero member is required);
- ``np.ndarray`` -> ``rtdrive.NDArray {dtype, shape, data}``: numpy's dtype string keeps kind, width
  and byte order, ``shape`` keeps the rank (an empty (0, 7) array stays (0, 7));
- a nested frozen dataclass -> a message of its own;
- ``dict[str, V]`` -> a repeated key/value entry, not a protobuf map, because maps do not keep order.

The file uses proto2 syntax on purpose: proto2 fields have explicit presence, so a set 0.0 or "" is
written and read back as set, and a ``-0.0`` can never be dropped as a "default".
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "rtdrive"
_FDP = descriptor_pb2.FieldDescriptorProto
_SCALARS: dict[type, int] = {
    int: _FDP.TYPE_SINT64,
    float: _FDP.TYPE_DOUBLE,
    bool: _FDP.TYPE_BOOL,
    str: _FDP.TYPE_STRING,
    bytes: _FDP.TYPE_BYTES,
}
_NDARRAY = "NDArray"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class _FieldPlan:
    """How one dataclass field maps to its protobuf field."""

    name: str
    kind: str  # "scalar" | "int" | "float" | "enum" | "ndarray" | "nested" | "dict"
    py_type: type | None  # enum class, nested dataclass or dict value type


def _is_record_type(tp: object) -> bool:
    """A frozen dataclass or a typed NamedTuple: the two immutable record kinds a log carries."""
    return isinstance(tp, type) and (dataclasses.is_dataclass(tp) or is_named_tuple_type(tp))


def is_named_tuple_type(tp: type) -> bool:
    return issubclass(tp, tuple) and hasattr(tp, "_fields")


def record_field_names(tp: type) -> tuple[str, ...]:
    """The fields of a dataclass or NamedTuple type, in declaration order."""
    if is_named_tuple_type(tp):
        return tp._fields
    return tuple(f.name for f in dataclasses.fields(tp))


class DataclassProtoSchema:
    """Protobuf schema and converters for a set of record types (frozen dataclasses, typed NamedTuples).

    One instance owns one private ``DescriptorPool``: nothing is registered in protobuf's global
    pool, so two schemas (or two tests) cannot collide.
    """

    def __init__(self, types: typing.Iterable[type], file_name: str = "rtdrive/messages.proto"):
        self._plans: dict[type, tuple[_FieldPlan, ...]] = {}
        self._enums: dict[type, None] = {}
        self._order: list[type] = []
        for tp in types:
            self._collect(tp)
        fdp = descriptor_pb2.FileDescriptorProto(name=file_name, package=PACKAGE, syntax="proto2")
        add_ndarray_message(fdp)
        for enum_cls in self._enums:
            enum = fdp.enum_type.add(name=enum_cls.__name__)
            for member in enum_cls:
                enum.value.add(name=f"{enum_cls.__name__.upper()}_{member.name}", number=int(member))
        for tp in self._order:
            self._add_message(fdp, tp)
        pool = descriptor_pool.DescriptorPool()
        pool.Add(fdp)
        self._fds_bytes = descriptor_pb2.FileDescriptorSet(file=[fdp]).SerializeToString()
        self._classes = {tp: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(self.schema_name(tp))) for tp in self._order}
        self._by_name = {self.schema_name(tp): tp for tp in self._order}

    # ------------------------------------------------------------------------------------------
    # schema building
    # ------------------------------------------------------------------------------------------
    def _collect(self, tp: type) -> None:
        if tp in self._plans:
            return
        if not _is_record_type(tp):
            raise TypeError(f"{tp!r} is not a dataclass or NamedTuple type")
        hints = typing.get_type_hints(tp)
        plans = []
        self._plans[tp] = ()  # guards against recursive types while the fields are being read
        for name in record_field_names(tp):
            plans.append(self._plan_field(tp, name, hints[name]))
        self._plans[tp] = tuple(plans)
        self._order.append(tp)

    def _plan_field(self, owner: type, name: str, hint: object) -> _FieldPlan:
        if hint is np.ndarray:
            return _FieldPlan(name, "ndarray", None)
        if isinstance(hint, type) and issubclass(hint, IntEnum):
            if 0 not in {int(m) for m in hint}:
                raise TypeError(f"{owner.__name__}.{name}: enum {hint.__name__} needs a member equal to 0")
            self._enums[hint] = None
            return _FieldPlan(name, "enum", hint)
        if hint is int:
            return _FieldPlan(name, "int", None)
        if hint is float:
            return _FieldPlan(name, "float", None)
        if hint in _SCALARS:
            return _FieldPlan(name, "scalar", hint)
        if _is_record_type(hint):
            self._collect(hint)
            return _FieldPlan(name, "nested", hint)
        if typing.get_origin(hint) is dict:
            key_tp, value_tp = typing.get_args(hint)
            if key_tp is not str or value_tp not in _SCALARS:
                raise TypeError(f"{owner.__name__}.{name}: only dict[str, scalar] is supported, got {hint}")
            return _FieldPlan(name, "dict", value_tp)
        raise TypeError(f"{owner.__name__}.{name}: unsupported field type {hint!r} for the log schema")

    def _add_message(self, fdp: descriptor_pb2.FileDescriptorProto, tp: type) -> None:
        msg = fdp.message_type.add(name=tp.__name__)
        hints = typing.get_type_hints(tp)
        for number, plan in enumerate(self._plans[tp], start=1):
            field = msg.field.add(name=plan.name, number=number, label=_FDP.LABEL_OPTIONAL)
            if plan.kind == "ndarray":
                field.type, field.type_name = _FDP.TYPE_MESSAGE, f".{PACKAGE}.{_NDARRAY}"
            elif plan.kind == "enum":
                field.type, field.type_name = _FDP.TYPE_ENUM, f".{PACKAGE}.{plan.py_type.__name__}"
            elif plan.kind == "nested":
                field.type, field.type_name = _FDP.TYPE_MESSAGE, f".{PACKAGE}.{plan.py_type.__name__}"
            elif plan.kind == "dict":
                entry_name = f"{plan.name.title().replace('_', '')}Entry"
                entry = msg.nested_type.add(name=entry_name)
                entry.field.add(name="key", number=1, label=_FDP.LABEL_OPTIONAL, type=_FDP.TYPE_STRING)
                entry.field.add(name="value", number=2, label=_FDP.LABEL_OPTIONAL,
                                type=_SCALARS[plan.py_type])
                field.label = _FDP.LABEL_REPEATED
                field.type, field.type_name = _FDP.TYPE_MESSAGE, f".{PACKAGE}.{tp.__name__}.{entry_name}"
            else:
                field.type = _SCALARS[hints[plan.name]]

    # ------------------------------------------------------------------------------------------
    # public API
    # ------------------------------------------------------------------------------------------
    @staticmethod
    def schema_name(tp: type) -> str:
        return f"{PACKAGE}.{tp.__name__}"

    @property
    def file_descriptor_set(self) -> bytes:
        """Serialized ``FileDescriptorSet`` holding every message of this schema (MCAP schema data)."""
        return self._fds_bytes

    @property
    def types(self) -> tuple[type, ...]:
        return tuple(self._order)

    def type_for(self, schema_name: str) -> type | None:
        return self._by_name.get(schema_name)

    def encode(self, obj: object) -> bytes:
        tp = type(obj)
        if tp not in self._classes:
            raise TypeError(f"{tp.__name__} is not registered with the log schema")
        pb = self._classes[tp]()
        self._fill(pb, obj)
        return pb.SerializeToString()

    def decode(self, tp: type, data: bytes) -> object:
        pb = self._classes[tp]()
        pb.ParseFromString(data)
        return self._build(tp, pb)

    def from_message(self, tp: type, pb) -> object:
        """Build ``tp`` from a parsed protobuf message of any class with the same field names.

        Lets a reader decode with the schema stored in a log (which may predate this code) instead
        of this process's own descriptor.
        """
        try:
            return self._build(tp, pb)
        except AttributeError as exc:
            raise ValueError(f"logged {pb.DESCRIPTOR.full_name} lacks a field of {tp.__name__}: {exc}") from exc

    # ------------------------------------------------------------------------------------------
    # conversion
    # ------------------------------------------------------------------------------------------
    def _fill(self, pb, obj: object) -> None:
        for plan in self._plans[type(obj)]:
            value = getattr(obj, plan.name)
            where = f"{type(obj).__name__}.{plan.name}"
            if plan.kind == "ndarray":
                fill_ndarray(getattr(pb, plan.name), value, where)
            elif plan.kind == "nested":
                if type(value) is not plan.py_type:
                    raise TypeError(f"{where}: expected {plan.py_type.__name__}, got {type(value).__name__}")
                self._fill(getattr(pb, plan.name), value)
            elif plan.kind == "dict":
                entries = getattr(pb, plan.name)
                for key, item in value.items():
                    entries.add(key=key, value=item)
            elif plan.kind == "int":
                ivalue = int(value)
                if ivalue != value or not _INT64_MIN <= ivalue <= _INT64_MAX:
                    raise ValueError(f"{where}: {value!r} is not an int64")
                setattr(pb, plan.name, ivalue)
            elif plan.kind == "float":
                setattr(pb, plan.name, float(value))
            else:
                setattr(pb, plan.name, int(value) if plan.kind == "enum" else value)

    def _build(self, tp: type, pb) -> object:
        kwargs = {}
        for plan in self._plans[tp]:
            raw = getattr(pb, plan.name)
            if plan.kind == "ndarray":
                kwargs[plan.name] = build_ndarray(raw)
            elif plan.kind == "nested":
                kwargs[plan.name] = self._build(plan.py_type, raw)
            elif plan.kind == "dict":
                kwargs[plan.name] = {entry.key: entry.value for entry in raw}
            elif plan.kind == "enum":
                kwargs[plan.name] = plan.py_type(raw)
            else:
                kwargs[plan.name] = raw
        return tp(**kwargs)


def add_ndarray_message(fdp: descriptor_pb2.FileDescriptorProto) -> None:
    """Add ``rtdrive.NDArray {dtype, shape, data}`` to ``fdp`` (every rtdrive schema file has its own)."""
    msg = fdp.message_type.add(name=_NDARRAY)
    msg.field.add(name="dtype", number=1, label=_FDP.LABEL_OPTIONAL, type=_FDP.TYPE_STRING)
    shape = msg.field.add(name="shape", number=2, label=_FDP.LABEL_REPEATED, type=_FDP.TYPE_UINT64)
    shape.options.packed = True
    msg.field.add(name="data", number=3, label=_FDP.LABEL_OPTIONAL, type=_FDP.TYPE_BYTES)


def fill_ndarray(pb, value: object, where: str) -> None:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{where}: expected a numpy array, got {type(value).__name__}")
    if value.dtype.hasobject or value.dtype.fields is not None:
        raise TypeError(f"{where}: dtype {value.dtype} cannot be logged (plain numeric/bool arrays only)")
    pb.dtype = value.dtype.str
    pb.shape.extend(value.shape)
    # tobytes() writes C order whatever the array's strides, so views and slices log correctly.
    pb.data = value.tobytes()


def build_ndarray(pb) -> np.ndarray:
    dtype = np.dtype(pb.dtype)
    shape = tuple(pb.shape)
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(pb.data) != expected:
        raise ValueError(f"array payload holds {len(pb.data)} bytes, shape {shape} of {dtype} needs {expected}")
    # Zero copy: the array is a read-only view of the decoded bytes, which suits frozen messages.
    return np.frombuffer(pb.data, dtype=dtype).reshape(shape)

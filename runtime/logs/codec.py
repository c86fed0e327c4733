"""Message codec: every core message type <-> (MCAP schema, protobuf payload).

- ``CameraImage`` and ``LidarScan`` use Foxglove schemas (see ``foxglove_codec``);
- every other dataclass message of ``core.messages`` (found by reflection, so a type added there
  is logged without touching this file) and the sim ground-truth snapshots use rtdrive's own
  protobuf schemas built at run time (see ``dataclass_proto``), all in one ``rtdrive/messages.proto``;
- types defined elsewhere (e.g. a synchroniser's decision record in runtime/) are passed as
  ``extra_types`` to both the recorder and the reader;
- a malformed message of any of these types (``core.validation.well_formed`` is False: a corrupted
  sensor payload) uses ``rtdrive.MalformedMessage`` instead (see ``malformed``), which holds any
  shape; it is logged on the same topic through a channel of its own.

Decoding always yields the exact core dataclass: arrays keep dtype and shape, bit for bit.
"""
from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from mcap_protobuf.schema import build_file_descriptor_set

import core.messages as core_messages
from core.messages import CameraImage, Detections3D, EgoState, LidarScan, Tracks
from core.validation import well_formed
from runtime.logs import foxglove_codec as fox
from runtime.logs import malformed
from runtime.logs.dataclass_proto import DataclassProtoSchema
from sim.truth import ActorsTruth, EgoTruth

PROTOBUF = "protobuf"
# Channel metadata marking display-only companions; readers skip them.
ROLE_KEY = "rtdrive.role"
ROLE_VIZ = "viz"
_FOXGLOVE_SENSOR_TYPES = (CameraImage, LidarScan)
_VIZ = {Detections3D: fox.viz_detections, Tracks: fox.viz_tracks, EgoState: fox.viz_ego}


def core_message_types() -> tuple[type, ...]:
    """Dataclasses of core.messages that are messages (carry ``t_ns``), in definition order."""
    # vars() keeps definition order, which fixes the order of messages in the schema file.
    return tuple(obj for obj in vars(core_messages).values()
                 if inspect.isclass(obj) and dataclasses.is_dataclass(obj)
                 and obj.__module__ == core_messages.__name__
                 and "t_ns" in {f.name for f in dataclasses.fields(obj)})


@dataclass(frozen=True, slots=True)
class Encoded:
    schema_name: str
    payload: bytes
    channel_metadata: tuple[tuple[str, str], ...] = ()


class LogCodec:
    """Encodes messages for the recorder and decodes them for the reader."""

    def __init__(self, extra_types: Iterable[type] = ()):
        own = [t for t in core_message_types() if t not in _FOXGLOVE_SENSOR_TYPES]
        own += [EgoTruth, ActorsTruth, *extra_types]
        self._own = DataclassProtoSchema(own)
        self._schema_data: dict[str, bytes] = {
            name: build_file_descriptor_set(cls).SerializeToString()
            for name, cls in fox.FOXGLOVE_CLASSES.items()}
        for tp in self._own.types:
            self._schema_data[self._own.schema_name(tp)] = self._own.file_descriptor_set
        self._malformed = malformed.MalformedCodec(self.message_types)
        self._schema_data[malformed.SCHEMA_NAME] = self._malformed.file_descriptor_set
        self._logged_classes: dict[bytes, dict[str, type]] = {}

    @property
    def message_types(self) -> tuple[type, ...]:
        return (*_FOXGLOVE_SENSOR_TYPES, *self._own.types)

    def schema_data(self, schema_name: str) -> bytes:
        """Serialized FileDescriptorSet to store in the MCAP schema record."""
        return self._schema_data[schema_name]

    # ------------------------------------------------------------------------------------------
    def encode(self, msg: object) -> Encoded:
        # What arrived is what the log holds: a malformed message (which the stack's health monitor
        # counts as such) goes through the schema that holds any shape, not dropped or reshaped.
        if not well_formed(msg):
            return Encoded(malformed.SCHEMA_NAME, self._malformed.encode(msg))
        if isinstance(msg, CameraImage):
            return Encoded(*fox.encode_camera(msg))
        if isinstance(msg, LidarScan):
            name, payload = fox.encode_lidar(msg)
            return Encoded(name, payload, ((fox.SENSOR_KEY, msg.sensor),))
        return Encoded(self._own.schema_name(type(msg)), self._own.encode(msg))

    def viz(self, msg: object) -> list[tuple[str, Encoded]]:
        """Display companions as (topic suffix, Encoded); empty for types without one."""
        build = _VIZ.get(type(msg))
        if build is None:
            return []
        return [(suffix, Encoded(name, payload, ((ROLE_KEY, ROLE_VIZ),))) for suffix, name, payload in build(msg)]

    # ------------------------------------------------------------------------------------------
    def decode(self, schema_name: str, schema_data: bytes, payload: bytes,
               channel_metadata: Mapping[str, str]) -> object:
        """Decode one logged payload into its core dataclass; ValueError when it is not ours."""
        try:
            return self._decode(schema_name, schema_data, payload, channel_metadata)
        except DecodeError as exc:
            raise ValueError(f"protobuf payload does not parse: {exc}") from exc

    def _decode(self, schema_name: str, schema_data: bytes, payload: bytes,
                channel_metadata: Mapping[str, str]) -> object:
        if schema_name == "foxglove.RawImage":
            return fox.decode_raw_image(payload)
        if schema_name == "foxglove.CompressedImage":
            return fox.decode_compressed_image(payload)
        if schema_name == "foxglove.PointCloud":
            return fox.decode_point_cloud(payload, channel_metadata.get(fox.SENSOR_KEY, ""))
        if schema_name == malformed.SCHEMA_NAME:
            return self._malformed.decode(payload)
        tp = self._own.type_for(schema_name)
        if tp is None:
            raise ValueError(f"schema {schema_name!r} is not an rtdrive message type "
                             f"(pass its dataclass in extra_types to decode it)")
        if schema_data == self._own.file_descriptor_set:
            return self._own.decode(tp, payload)
        # A log written by another version of the code: parse with the schema stored in the log,
        # then map fields by name, so added or reordered fields do not break old logs.
        pb = self._logged_class(schema_data, schema_name)()
        pb.ParseFromString(payload)
        return self._own.from_message(tp, pb)

    def _logged_class(self, schema_data: bytes, schema_name: str) -> type:
        classes = self._logged_classes.setdefault(schema_data, {})
        if schema_name not in classes:
            pool = descriptor_pool.DescriptorPool()
            for file_proto in descriptor_pb2.FileDescriptorSet.FromString(schema_data).file:
                pool.Add(file_proto)
            classes[schema_name] = message_factory.GetMessageClass(pool.FindMessageTypeByName(schema_name))
        return classes[schema_name]

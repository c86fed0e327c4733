"""Sensor messages in Foxglove's protobuf schemas, and Foxglove visualisation companions.

Camera images and lidar scans are stored *only* in Foxglove schemas (they are the bulk of a log and
must open in Foxglove as they are), so these codecs round-trip them bit for bit:
- ``CameraImage`` with raw pixels -> ``foxglove.RawImage`` ("bgr8"); raw rather than PNG because PNG
  encoding in Python runs far below the 100 MB/s recording target and zstd chunks already compress;
- ``CameraImage`` carrying a JPEG payload -> ``foxglove.CompressedImage`` (the JPEG bytes as given);
- ``LidarScan`` -> ``foxglove.PointCloud`` with fields x, y, z, intensity, time_offset_ns, in the
  "vehicle" frame. The PackedElementField types are derived from the arrays' dtypes, so dtypes survive.
  The sensor name is not a frame (points are already in the vehicle frame), so it travels in the
  MCAP channel metadata under ``rtdrive.sensor``.

Detections, tracks and the ego pose are stored in rtdrive's own schemas (exact round trip) and get a
Foxglove companion (SceneUpdate, FrameTransform, PoseInFrame) that exists for display only.
"""
from __future__ import annotations

import numpy as np
from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
from foxglove_schemas_protobuf.FrameTransform_pb2 import FrameTransform
from foxglove_schemas_protobuf.PackedElementField_pb2 import PackedElementField
from foxglove_schemas_protobuf.PointCloud_pb2 import PointCloud
from foxglove_schemas_protobuf.PoseInFrame_pb2 import PoseInFrame
from foxglove_schemas_protobuf.RawImage_pb2 import RawImage
from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
from google.protobuf.timestamp_pb2 import Timestamp

from core.messages import LABEL_NAMES, CameraImage, Detections3D, EgoState, LidarScan, Tracks

VEHICLE_FRAME = "vehicle"
MAP_FRAME = "map"
SENSOR_KEY = "rtdrive.sensor"
_NS_PER_S = 1_000_000_000

_NUMERIC = PackedElementField.NumericType
_DTYPE_TO_NUMERIC = {
    np.dtype("u1"): _NUMERIC.UINT8, np.dtype("i1"): _NUMERIC.INT8,
    np.dtype("<u2"): _NUMERIC.UINT16, np.dtype("<i2"): _NUMERIC.INT16,
    np.dtype("<u4"): _NUMERIC.UINT32, np.dtype("<i4"): _NUMERIC.INT32,
    np.dtype("<f4"): _NUMERIC.FLOAT32, np.dtype("<f8"): _NUMERIC.FLOAT64,
}
_NUMERIC_TO_DTYPE = {v: k for k, v in _DTYPE_TO_NUMERIC.items()}
_CLOUD_FIELDS = ("x", "y", "z", "intensity", "time_offset_ns")
# Display colours (r, g, b) per label; unknown labels are grey.
_LABEL_RGB = np.array([[0.2, 0.6, 1.0], [1.0, 0.5, 0.1]], dtype=np.float64)
_UNKNOWN_RGB = np.array([0.6, 0.6, 0.6])


def _stamp(t_ns: int) -> Timestamp:
    seconds, nanos = divmod(int(t_ns), _NS_PER_S)
    return Timestamp(seconds=seconds, nanos=nanos)


def _t_ns(stamp: Timestamp) -> int:
    return stamp.seconds * _NS_PER_S + stamp.nanos


# ----------------------------------------------------------------------------------------------
# CameraImage
# ----------------------------------------------------------------------------------------------
def encode_camera(msg: CameraImage) -> tuple[str, bytes]:
    """Return (schema name, payload)."""
    image = msg.image
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"CameraImage.image must be (H, W, 3) uint8, got "
                         f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', type(image).__name__)}")
    if msg.jpeg:
        if image.size:
            raise ValueError("CameraImage carries both raw pixels and a JPEG payload; log one of them")
        pb = CompressedImage(timestamp=_stamp(msg.t_ns), frame_id=msg.sensor, format="jpeg", data=bytes(msg.jpeg))
        return CompressedImage.DESCRIPTOR.full_name, pb.SerializeToString()
    height, width = image.shape[:2]
    pb = RawImage(timestamp=_stamp(msg.t_ns), frame_id=msg.sensor, width=width, height=height,
                  encoding="bgr8", step=width * 3, data=np.ascontiguousarray(image).tobytes())
    return RawImage.DESCRIPTOR.full_name, pb.SerializeToString()


def decode_raw_image(data: bytes) -> CameraImage:
    pb = RawImage.FromString(data)
    if pb.encoding != "bgr8" or pb.step != pb.width * 3 or len(pb.data) != pb.step * pb.height:
        raise ValueError(f"RawImage {pb.width}x{pb.height} encoding {pb.encoding!r} step {pb.step} "
                         f"with {len(pb.data)} bytes is not an rtdrive bgr8 image")
    image = np.frombuffer(pb.data, dtype=np.uint8).reshape(pb.height, pb.width, 3)
    return CameraImage(_t_ns(pb.timestamp), pb.frame_id, image)


def decode_compressed_image(data: bytes) -> CameraImage:
    pb = CompressedImage.FromString(data)
    if pb.format != "jpeg":
        raise ValueError(f"CompressedImage format {pb.format!r}: rtdrive cameras log JPEG only")
    return CameraImage(_t_ns(pb.timestamp), pb.frame_id, np.zeros((0, 0, 3), np.uint8), pb.data)


# ----------------------------------------------------------------------------------------------
# LidarScan
# ----------------------------------------------------------------------------------------------
def encode_lidar(msg: LidarScan) -> tuple[str, bytes]:
    points, intensity, offsets = msg.points, msg.intensity, msg.time_offset_ns
    n = points.shape[0] if isinstance(points, np.ndarray) and points.ndim == 2 else -1
    if n < 0 or points.shape[1] != 3 or intensity.shape != (n,) or offsets.shape != (n,):
        raise ValueError(f"LidarScan needs points (N, 3), intensity (N,), time_offset_ns (N,); got "
                         f"{getattr(points, 'shape', None)}, {intensity.shape}, {offsets.shape}")
    columns = (points[:, 0], points[:, 1], points[:, 2], intensity, offsets)
    dtypes = [c.dtype.newbyteorder("<") if c.dtype.itemsize > 1 else c.dtype for c in columns]
    for name, dtype in zip(_CLOUD_FIELDS, dtypes):
        if dtype not in _DTYPE_TO_NUMERIC:
            raise ValueError(f"LidarScan field {name}: dtype {dtype} has no PointCloud numeric type")
    record = np.dtype({"names": list(_CLOUD_FIELDS), "formats": dtypes})
    packed = np.empty(n, dtype=record)
    for name, column in zip(_CLOUD_FIELDS, columns):
        packed[name] = column
    fields = [PackedElementField(name=name, offset=record.fields[name][1], type=_DTYPE_TO_NUMERIC[dtype])
              for name, dtype in zip(_CLOUD_FIELDS, dtypes)]
    pb = PointCloud(timestamp=_stamp(msg.t_ns), frame_id=VEHICLE_FRAME, point_stride=record.itemsize,
                    fields=fields, data=packed.tobytes())
    pb.pose.orientation.w = 1.0
    return PointCloud.DESCRIPTOR.full_name, pb.SerializeToString()


def decode_point_cloud(data: bytes, sensor: str) -> LidarScan:
    pb = PointCloud.FromString(data)
    by_name = {f.name: f for f in pb.fields}
    if set(by_name) != set(_CLOUD_FIELDS):
        raise ValueError(f"PointCloud fields {sorted(by_name)} are not rtdrive's {list(_CLOUD_FIELDS)}")
    record = np.dtype({"names": list(_CLOUD_FIELDS),
                       "formats": [_NUMERIC_TO_DTYPE[by_name[n].type] for n in _CLOUD_FIELDS],
                       "offsets": [by_name[n].offset for n in _CLOUD_FIELDS],
                       "itemsize": pb.point_stride})
    if pb.point_stride == 0 or len(pb.data) % pb.point_stride:
        raise ValueError(f"PointCloud holds {len(pb.data)} bytes, not a multiple of stride {pb.point_stride}")
    packed = np.frombuffer(pb.data, dtype=record)
    points = np.empty((packed.shape[0], 3), dtype=record.fields["x"][0])
    points[:, 0], points[:, 1], points[:, 2] = packed["x"], packed["y"], packed["z"]
    return LidarScan(_t_ns(pb.timestamp), sensor, points, np.ascontiguousarray(packed["intensity"]),
                     np.ascontiguousarray(packed["time_offset_ns"]))


# ----------------------------------------------------------------------------------------------
# Visualisation companions (display only; never decoded back)
# ----------------------------------------------------------------------------------------------
def _yaw_quaternions(yaw_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    half = 0.5 * np.asarray(yaw_rad, dtype=np.float64)
    return np.sin(half), np.cos(half)  # (z, w); x = y = 0 for a rotation about z


def _label_rgb(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    known = (labels >= 0) & (labels < len(_LABEL_RGB))
    rgb = np.broadcast_to(_UNKNOWN_RGB, (labels.shape[0], 3)).copy()
    rgb[known] = _LABEL_RGB[labels[known]]
    return rgb


def _scene(t_ns: int, frame: str, entity_id: str, centres: np.ndarray, sizes: np.ndarray,
           yaws: np.ndarray, labels: np.ndarray, texts: list[str]) -> bytes:
    update = SceneUpdate()
    entity = update.entities.add(timestamp=_stamp(t_ns), frame_id=frame, id=entity_id)
    qz, qw = _yaw_quaternions(yaws)
    rgb = _label_rgb(labels)
    # Protobuf repeated messages have no batch setter: one object per box is the API's price. The
    # numeric work (quaternions, colours) is vectorised above; this loop only copies numbers.
    for i in range(centres.shape[0]):
        cube = entity.cubes.add()
        cube.pose.position.x, cube.pose.position.y, cube.pose.position.z = map(float, centres[i])
        cube.pose.orientation.z, cube.pose.orientation.w = float(qz[i]), float(qw[i])
        cube.size.x, cube.size.y, cube.size.z = map(float, sizes[i])
        cube.color.r, cube.color.g, cube.color.b = map(float, rgb[i])
        cube.color.a = 0.5
        text = entity.texts.add(billboard=True, font_size=14.0, scale_invariant=True, text=texts[i])
        text.pose.position.x, text.pose.position.y = float(centres[i, 0]), float(centres[i, 1])
        text.pose.position.z = float(centres[i, 2] + 0.5 * sizes[i, 2])
        text.pose.orientation.w = 1.0
        text.color.r = text.color.g = text.color.b = text.color.a = 1.0
    return update.SerializeToString()


def _label_name(label: int) -> str:
    return LABEL_NAMES[label] if 0 <= label < len(LABEL_NAMES) else f"label{label}"


def viz_detections(msg: Detections3D) -> list[tuple[str, str, bytes]]:
    """(topic suffix, schema name, payload) for each companion message."""
    boxes = np.asarray(msg.boxes, dtype=np.float64)
    texts = [f"{_label_name(int(l))} {s:.2f}" for l, s in zip(msg.labels.tolist(), msg.scores.tolist())]
    payload = _scene(msg.t_ns, VEHICLE_FRAME, f"detections/{msg.source}", boxes[:, 0:3], boxes[:, 3:6],
                     boxes[:, 6], msg.labels, texts)
    return [("", SceneUpdate.DESCRIPTOR.full_name, payload)]


def viz_tracks(msg: Tracks) -> list[tuple[str, str, bytes]]:
    n = len(msg)
    sizes = np.asarray(msg.sizes, dtype=np.float64)
    centres = np.zeros((n, 3))
    centres[:, 0:2] = msg.states[:, 0:2]
    centres[:, 2] = 0.5 * sizes[:, 2]  # tracks are 2D on the ground; lift the box to stand on it
    texts = [f"#{i} {_label_name(int(l))}" for i, l in zip(msg.ids.tolist(), msg.labels.tolist())]
    payload = _scene(msg.t_ns, MAP_FRAME, "tracks", centres, sizes, msg.yaws, msg.labels, texts)
    return [("", SceneUpdate.DESCRIPTOR.full_name, payload)]


def viz_ego(msg: EgoState) -> list[tuple[str, str, bytes]]:
    x, y, yaw = (float(v) for v in msg.pose)
    qz, qw = np.sin(0.5 * yaw), np.cos(0.5 * yaw)
    tf = FrameTransform(timestamp=_stamp(msg.t_ns), parent_frame_id=MAP_FRAME, child_frame_id=VEHICLE_FRAME)
    tf.translation.x, tf.translation.y = x, y
    tf.rotation.z, tf.rotation.w = qz, qw
    pose = PoseInFrame(timestamp=_stamp(msg.t_ns), frame_id=MAP_FRAME)
    pose.pose.position.x, pose.pose.position.y = x, y
    pose.pose.orientation.z, pose.pose.orientation.w = qz, qw
    return [("/tf", FrameTransform.DESCRIPTOR.full_name, tf.SerializeToString()),
            ("/pose", PoseInFrame.DESCRIPTOR.full_name, pose.SerializeToString())]


FOXGLOVE_CLASSES = {cls.DESCRIPTOR.full_name: cls for cls in
                    (RawImage, CompressedImage, PointCloud, SceneUpdate, FrameTransform, PoseInFrame)}

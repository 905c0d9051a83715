"""PointCloud2 codec: round trips, zero-copy decode, and clouds it must refuse."""
import numpy as np
import pytest
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from sense_nodes.data import cloud_codec
from sense_nodes.data.cloud_codec import BS_POINT_DTYPE, CloudFormatError


def _points(n=100):
    rng = np.random.default_rng(1)
    pts = np.empty(n, BS_POINT_DTYPE)
    for name in BS_POINT_DTYPE.names:
        pts[name] = rng.normal(size=n)
    return pts


def test_round_trip_keeps_every_field_and_header():
    pts = _points()
    msg = cloud_codec.encode(pts, PointCloud2, PointField, Header(frame_id="bs0"))
    assert msg.header.frame_id == "bs0"
    assert [f.name for f in msg.fields] == list(BS_POINT_DTYPE.names)
    assert all(f.datatype == PointField.FLOAT32 for f in msg.fields)
    out = cloud_codec.decode(msg)
    assert np.array_equal(out, pts)


def test_decode_is_zero_copy():
    msg = cloud_codec.encode(_points(), PointCloud2, PointField, Header())
    out = cloud_codec.decode(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


def test_empty_cloud_round_trips():
    msg = cloud_codec.encode(_points(0), PointCloud2, PointField, Header())
    assert cloud_codec.decode(msg).shape == (0,)


def test_extra_fields_and_padding_are_tolerated():
    dt = np.dtype({"names": list(BS_POINT_DTYPE.names) + ["ring"],
                   "formats": ["<f4"] * 9 + ["<u2"],
                   "offsets": [4 * i for i in range(9)] + [40], "itemsize": 48})
    pts = np.zeros(5, dt)
    pts["snr"] = np.arange(5)
    msg = cloud_codec.encode(pts, PointCloud2, PointField, Header())
    out = cloud_codec.as_points(cloud_codec.decode(msg))
    assert out.dtype == BS_POINT_DTYPE and list(out["snr"]) == [0, 1, 2, 3, 4]


def test_missing_field_is_refused_with_its_name():
    dt = np.dtype([(n, "<f4") for n in BS_POINT_DTYPE.names if n != "scr"])
    msg = cloud_codec.encode(np.zeros(3, dt), PointCloud2, PointField, Header())
    with pytest.raises(CloudFormatError, match="scr"):
        cloud_codec.decode(msg)


def test_wrong_field_type_is_refused():
    dt = np.dtype([(n, "<f8" if n == "snr" else "<f4") for n in BS_POINT_DTYPE.names])
    msg = cloud_codec.encode(np.zeros(3, dt), PointCloud2, PointField, Header())
    with pytest.raises(CloudFormatError, match="snr.*float64.*float32"):
        cloud_codec.decode(msg)


def test_truncated_data_is_refused():
    msg = cloud_codec.encode(_points(10), PointCloud2, PointField, Header())
    msg.data = msg.data[:-7]
    with pytest.raises(CloudFormatError, match="truncated"):
        cloud_codec.decode(msg)


def test_unknown_datatype_is_refused():
    msg = cloud_codec.encode(_points(2), PointCloud2, PointField, Header())
    msg.fields[0].datatype = 42
    with pytest.raises(CloudFormatError, match="datatype 42"):
        cloud_codec.decode(msg)


def test_big_endian_cloud_decodes_to_the_same_values():
    pts = _points(4)
    big = pts.astype(BS_POINT_DTYPE.newbyteorder(">"))
    msg = cloud_codec.encode(pts, PointCloud2, PointField, Header())
    msg.is_bigendian = True
    import array
    msg.data = array.array("B", big.tobytes())
    assert np.allclose(cloud_codec.as_points(cloud_codec.decode(msg))["x"], pts["x"])

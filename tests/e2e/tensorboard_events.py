"""An independent reader of TensorBoard event files, for the tests: TFRecord framing with both
masked CRC-32C checksums verified, and a protobuf decoder for the Event fields spin writes
(wall_time, step, file_version, summary {value {tag, simple_value}}, session_log {status})."""
import glob
import os
import struct

# CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: no table shared with spin.
def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(path):
    data = open(path, "rb").read()
    at = 0
    while at < len(data):
        assert at + 12 <= len(data), "%s: truncated header at %d" % (path, at)
        (length,) = struct.unpack_from("<Q", data, at)
        (length_crc,) = struct.unpack_from("<I", data, at + 8)
        assert length_crc == masked(data[at:at + 8]), "%s: bad length CRC at %d" % (path, at)
        body = data[at + 12:at + 12 + length]
        (body_crc,) = struct.unpack_from("<I", data, at + 12 + length)
        assert body_crc == masked(body), "%s: bad data CRC at %d" % (path, at)
        yield body
        at += 12 + length + 4


def fields(buf):
    """(field number, value) pairs of a protobuf message; value is int, bytes, or raw 4/8 bytes."""
    at = 0
    while at < len(buf):
        key, at = varint(buf, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = varint(buf, at)
        elif wire == 1:
            value, at = buf[at:at + 8], at + 8
        elif wire == 2:
            n, at = varint(buf, at)
            value, at = buf[at:at + n], at + n
        elif wire == 5:
            value, at = buf[at:at + 4], at + 4
        else:
            raise AssertionError("unexpected wire type %d" % wire)
        yield number, value


def varint(buf, at):
    value = shift = 0
    while True:
        b = buf[at]
        at += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, at


def events(path):
    """Each event as a dict: wall_time, step, and file_version, session_start or scalars {tag: value}."""
    for body in records(path):
        e = {"step": 0, "scalars": {}}
        for number, value in fields(body):
            if number == 1:
                e["wall_time"] = struct.unpack("<d", value)[0]
            elif number == 2:
                e["step"] = value
            elif number == 3:
                e["file_version"] = value.decode()
            elif number == 5:
                for n, v in fields(value):
                    assert n == 1
                    tag, simple = None, None
                    for vn, vv in fields(v):
                        if vn == 1:
                            tag = vv.decode()
                        elif vn == 2:
                            simple = struct.unpack("<f", vv)[0]
                    e["scalars"][tag] = simple
            elif number == 7:
                e["session_start"] = dict(fields(value)).get(1) == 1
        yield e


def scalars(logdir):
    """{(tag, step): value} as TensorBoard shows the run: files in name (time) order, and a
    SessionLog START at step s dropping what earlier files recorded at step s and later."""
    out = {}
    files = sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*")))
    assert files, "%s: no event files" % logdir
    for path in files:
        first = True
        for e in events(path):
            if first:
                assert e.get("file_version") == "brain.Event:2", (path, e)
                first = False
            if e.get("session_start"):
                out = {k: v for k, v in out.items() if k[1] < e["step"]}
            for tag, value in e["scalars"].items():
                out[(tag, e["step"])] = value
    return out


def expected_from_jsonl(metric_lines):
    """The scalars spin writes for metrics.jsonl lines, rounded to float32 as TensorBoard stores them."""
    f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
    out = {}
    for m in metric_lines:
        names = ["loss", "rewards_actual", "rewards_generated", "margin", "accuracy", "generated_length_mean",
                 "logps_actual", "logps_generated"]
        names += (["lr", "grad_norm", "tokens_per_second", "tflops_per_rank", "generation_tokens_per_second"]
                  if m["kind"] == "train" else ["sft_nll"])
        names += ["mfu"] if "mfu" in m else []
        for name in names:
            out[("%s/%s" % (m["kind"], name), m["step"])] = f32(m[name])
        out[("%s/iteration" % m["kind"], m["step"])] = float(m["iteration"])
        if m["kind"] == "train":
            out[("train/consumed_samples", m["step"])] = float(m["consumed_samples"])
    return out

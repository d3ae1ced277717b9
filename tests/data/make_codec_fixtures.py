"""Writes the compressed fixtures of tests/unit/data/zstd_test.cpp and gzip_test.cpp:
tests/data/codecs/<name>.zst and <name>.gz, and manifest.json, which gives each file's decompressed
size and XXH64 (seed 0) -- or the error spin must give.

Zstandard: libzstd compresses (python-zstandard) at the levels and settings writers use: Parquet
writers' single frame with the content size (pyarrow's level 1 and 3, polars' 3, higher levels by
request), streamed frames without it, checksums, small windows, several frames and a skippable one,
raw and RLE blocks, blocks past 128 KiB (treeless literals, repeated tables), and a dictionary (refused).
GZIP: zlib compresses (Python's zlib and gzip) at levels 0 (stored blocks), 1, 6 and 9, fixed and
dynamic Huffman blocks, gzip members with every optional header field, several members, a zlib
stream, and a zlib stream with a preset dictionary (refused); and data files compressed whole
(ultrachat.jsonl.gz and .zst, spin_iter.json.gz: tests/data/parquet's rows as JSONL and a JSON array).

Run with python-zstandard and xxhash (test tools, not dependencies of spin):
  python3 tests/data/make_codec_fixtures.py   # zstandard 0.25.0 (libzstd 1.5.7), Python 3.11's zlib 1.2.13 wrote the committed files
"""
import gzip
import io
import json
import os
import random
import struct
import zlib

import xxhash
import zstandard as zstd

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "codecs")
rng = random.Random(20261206)

WORDS = ("the of and to a in is that for it as was with be by on not he this are or his from at which but have an "
         "they you were her she there been one all we their has would when if so no what up out who them some could "
         "model answer self-play reference policy gradient token Ünïcödé 数据 λ 😀").split()
WEIGHTS = [1.0 / (i + 1) for i in range(len(WORDS))]  # Zipf-like, as words in text


def text(size):
    out = []
    n = 0
    while n < size:
        line = " ".join(rng.choices(WORDS, WEIGHTS, k=rng.randint(3, 20))) + rng.choice([".\n", ", ", "? ", ".\n\n"])
        out.append(line)
        n += len(line.encode())
    return "".join(out).encode()[:size]


def chat_jsonl(size):
    lines = []
    n = 0
    while n < size:
        m = [{"content": text(rng.randint(20, 400)).decode(errors="ignore"), "role": r} for r in ("user", "assistant")]
        line = json.dumps({"prompt": m[0]["content"], "prompt_id": "%064x" % rng.getrandbits(256), "messages": m},
                          ensure_ascii=False) + "\n"
        lines.append(line.encode())
        n += len(lines[-1])
    return b"".join(lines)[:size]


def token_ids(count):
    return struct.pack("<%di" % count, *(rng.choices(range(32000), k=count)))


manifest = {}


def write(name, data, compressed, error=None, ext=".zst"):
    with open(os.path.join(OUT, name + ext), "wb") as f:
        f.write(compressed)
    manifest[name + ext] = ({"error": error, "size": len(data)} if error else
                            {"size": len(data), "xxh64": xxhash.xxh64_hexdigest(data)})
    if not error and ext == ".zst":
        assert zstd.ZstdDecompressor().stream_reader(io.BytesIO(compressed), read_across_frames=True).read() == data


def gzip_member(data, level=6, name=None, comment=None, extra=None, header_crc=False):
    # A gzip member written field by field (RFC 1952), so every optional field can be set.
    flags = (2 if header_crc else 0) | (4 if extra else 0) | (8 if name else 0) | (16 if comment else 0)
    header = struct.pack("<BBBBIBB", 0x1F, 0x8B, 8, flags, 1733443200, 0, 3)
    if extra:
        header += struct.pack("<H", len(extra)) + extra
    if name:
        header += name + b"\0"
    if comment:
        header += comment + b"\0"
    if header_crc:
        header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return header + c.compress(data) + c.flush() + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def gzip_fixtures(prose, records):
    for level, size in ((0, 70_000), (1, 100_000), (6, 100_000), (9, 100_000)):  # level 0: stored blocks of <= 64 KiB
        write("text_level%d" % level, prose[:size], gzip.compress(prose[:size], level, mtime=0), ext=".gz")
    write("jsonl_level6", records[:80_000], gzip.compress(records[:80_000], 6, mtime=0), ext=".gz")
    write("tiny", b"Hello, gzip!", gzip.compress(b"Hello, gzip!", 6, mtime=0), ext=".gz")  # a fixed-code block
    runs = b"".join(bytes([rng.randrange(256)]) * rng.randint(1, 300) for _ in range(500))  # overlapping matches
    write("runs", runs, gzip.compress(runs, 9, mtime=0), ext=".gz")
    write("empty", b"", gzip.compress(b"", 6, mtime=0), ext=".gz")
    first, second = prose[:3000], records[:5000]
    write("members", first + second,
          gzip_member(first, 6, name=b"part1.txt", comment=b"spin", extra=b"AB\x02\x00hi", header_crc=True) +
          gzip_member(second, 9, name=b"part2.txt"), ext=".gz")
    write("zlib_level6", records[:30_000], zlib.compress(records[:30_000], 6), ext=".gz")
    c = zlib.compressobj(6, zlib.DEFLATED, 15, zdict=prose[:1000])
    write("zlib_dictionary", prose[:2000], c.compress(prose[:2000]) + c.flush(), error="preset dictionary", ext=".gz")


def one_shot(name, data, **params):
    write(name, data, zstd.ZstdCompressor(**params).compress(data))


def streamed(name, data, chunk=8192, **params):
    # A frame written as a stream: no content size, the window (not the size) bounds matches.
    if "compression_params" not in params:
        params["write_content_size"] = False
    c = zstd.ZstdCompressor(**params).compressobj()
    parts = [c.compress(data[i:i + chunk]) for i in range(0, len(data), chunk)]
    write(name, data, b"".join(parts) + c.flush())


def data_files():
    # Data files compressed whole, as data sets publish them (train.jsonl.gz): tests/data/parquet's
    # ultrachat rows as JSONL in two gzip members and in two Zstandard frames, spin_iter's as one
    # JSON array at level 9.
    parquet = os.path.join(os.path.dirname(OUT), "parquet")
    lines = open(os.path.join(parquet, "ultrachat.jsonl"), "rb").read()
    half = lines.index(b"\n", len(lines) // 2) + 1
    write("ultrachat.jsonl", lines, gzip_member(lines[:half], 9, name=b"ultrachat.jsonl") + gzip_member(lines[half:], 1),
          ext=".gz")
    write("ultrachat.jsonl", lines, zstd.ZstdCompressor(level=19, write_checksum=True).compress(lines[:half]) +
          zstd.ZstdCompressor(level=3).compress(lines[half:]))  # .zst: two frames, one checksummed
    rows = [json.loads(line) for line in open(os.path.join(parquet, "spin_iter.jsonl"), encoding="utf-8")]
    array = json.dumps(rows, ensure_ascii=False, indent=1).encode()
    write("spin_iter.json", array, gzip.compress(array, 9, mtime=0), ext=".gz")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    prose = text(160_000)  # past one 128 KiB block
    records = chat_jsonl(150_000)
    for level in (1, 3, 19):
        one_shot("text_level%d" % level, prose, level=level)
    one_shot("jsonl_level3", records, level=3)
    one_shot("jsonl_level22_checksum", records[:60_000], level=22, write_checksum=True)
    streamed("text_streamed_window1k", prose[:40_000],
             compression_params=zstd.ZstdCompressionParameters.from_level(19, window_log=10, write_content_size=False))
    streamed("jsonl_streamed_checksum", records[:50_000], write_checksum=True, level=6)
    one_shot("token_ids", token_ids(5_000), level=3)
    one_shot("incompressible", rng.randbytes(20_000), level=3)  # raw blocks
    one_shot("zeros", bytes(300_000), level=3)  # RLE blocks
    one_shot("runs", b"".join(bytes([rng.randrange(256)]) * rng.randint(1, 40) for _ in range(3000)), level=9)
    one_shot("tiny", b"Hello, Zstandard!", level=3)
    one_shot("empty", b"", level=3)
    # Two frames with a skippable frame between them, read as one stream of bytes.
    first, second = prose[:5000], records[:7000]
    skippable = struct.pack("<II", 0x184D2A53, 5) + b"spin!"
    write("frames", first + second, zstd.ZstdCompressor(level=3).compress(first) + skippable +
          zstd.ZstdCompressor(level=3, write_checksum=True).compress(second))
    # A frame compressed with a dictionary names it in its header: refused.
    samples = [text(rng.randint(100, 300)) for _ in range(400)]
    dictionary = zstd.train_dictionary(4096, samples)
    data = text(2000)
    write("dictionary", data, zstd.ZstdCompressor(dict_data=dictionary).compress(data), error="dictionary")
    gzip_fixtures(prose, records)
    data_files()
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")

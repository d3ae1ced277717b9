"""Writes the Zstandard fixtures of tests/unit/data/zstd_test.cpp: tests/data/zstd/<name>.zst and
manifest.json, which gives each file's decompressed size and XXH64 (seed 0) -- or the error spin must
give. libzstd compresses (python-zstandard) at the levels and settings writers use: Parquet writers'
single frame with the content size (pyarrow's level 1 and 3, polars' 3, higher levels by request),
streamed frames without it, checksums, small windows, several frames and a skippable one, raw and
RLE blocks, blocks past 128 KiB (treeless literals, repeated tables), and a dictionary (refused).

Run with python-zstandard and xxhash (test tools, not dependencies of spin):
  python3 tests/data/make_zstd_fixtures.py   # zstandard 0.25.0 (libzstd 1.5.7) wrote the committed files
"""
import io
import json
import os
import random
import struct

import xxhash
import zstandard as zstd

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zstd")
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


def write(name, data, compressed, error=None):
    with open(os.path.join(OUT, name + ".zst"), "wb") as f:
        f.write(compressed)
    manifest[name] = ({"error": error, "size": len(data)} if error else
                      {"size": len(data), "xxh64": xxhash.xxh64_hexdigest(data)})
    if not error:
        assert zstd.ZstdDecompressor().stream_reader(io.BytesIO(compressed), read_across_frames=True).read() == data


def one_shot(name, data, **params):
    write(name, data, zstd.ZstdCompressor(**params).compress(data))


def streamed(name, data, chunk=8192, **params):
    # A frame written as a stream: no content size, the window (not the size) bounds matches.
    if "compression_params" not in params:
        params["write_content_size"] = False
    c = zstd.ZstdCompressor(**params).compressobj()
    parts = [c.compress(data[i:i + chunk]) for i in range(0, len(data), chunk)]
    write(name, data, b"".join(parts) + c.flush())


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
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")

"""Writes the Parquet fixtures of tests/unit/data/parquet_test.cpp: tests/data/parquet/<name>.parquet,
each with <name>.jsonl -- its rows as pyarrow reads them (to_pylist), a null top-level column left
out as spin leaves it out -- under the writer settings the Hugging Face Hub's files and other
writers use: Snappy or none, dictionary or PLAIN or DELTA_* values, v1 or v2 data pages, several
row groups and pages, nulls and empty lists at every level; ZSTD, LZ4_RAW, LZ4 and GZIP pages (zstd,
zstd_v2, lz4, lz4_legacy, gzip). Also brotli.parquet, which spin refuses.

Run with pyarrow (a data tool, not a dependency of spin):
  python3 tests/data/make_parquet_fixtures.py   # pyarrow 26.0.1 wrote the committed files
"""
import json
import os
import random
import struct

import pyarrow as pa
import pyarrow.parquet as pq

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "parquet")
rng = random.Random(20261205)

WORDS = ["the", "model", "answer", "Ünïcödé", "数据", "self-play", "λ", "😀", "tab\there", "line\nbreak",
         "quote\"s", "back\\slash", "", "a" * 70]


def text(n, words=WORDS):
    return " ".join(rng.choice(words) for _ in range(n))


def chat(turns):
    # Short enough for the e2e test's tiny model (96 positions) to keep most examples.
    words = WORDS[:-1]
    messages = []
    if rng.random() < 0.3:
        messages.append({"content": text(2, words), "role": "system"})
    for _ in range(turns):
        messages.append({"content": text(rng.randint(1, 5), words), "role": "user"})
        messages.append({"content": text(rng.randint(1, 8), words), "role": "assistant"})
    return messages


def write(name, table, expected=None, **options):
    pq.write_table(table, os.path.join(OUT, name + ".parquet"), **options)
    rows = expected if expected is not None else table.to_pylist()
    with open(os.path.join(OUT, name + ".jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({k: v for k, v in row.items() if v is not None}, ensure_ascii=False) + "\n")


message = pa.struct([("content", pa.string()), ("role", pa.string())])


def ultrachat():
    # HuggingFaceH4/ultrachat_200k's layout and the Hub's writer settings: Snappy, dictionary pages
    # (falling back to PLAIN past the dictionary's size), v1 pages -- here several row groups and pages.
    rows = []
    for i in range(40):
        m = chat(1 if i % 4 else 2)
        first_user = next(x for x in m if x["role"] == "user")
        rows.append({"prompt": first_user["content"], "prompt_id": "%064x" % rng.getrandbits(256), "messages": m})
    table = pa.Table.from_pylist(rows, schema=pa.schema([("prompt", pa.string()), ("prompt_id", pa.string()),
                                                         ("messages", pa.list_(message))]))
    write("ultrachat", table, row_group_size=16, data_page_size=512, dictionary_pagesize_limit=1024)


def spin_iter():
    # UCLA-AGI/SPIN_iter0's layout: real and generated conversations; v2 pages.
    rows = []
    for _ in range(12):
        prompt = {"content": text(rng.randint(1, 20)), "role": "user"}
        rows.append({"real": [prompt, {"content": text(rng.randint(1, 40)), "role": "assistant"}],
                     "generated": [prompt, {"content": text(rng.randint(1, 40)), "role": "assistant"}]})
    table = pa.Table.from_pylist(rows, schema=pa.schema([("generated", pa.list_(message)), ("real", pa.list_(message))]))
    write("spin_iter", table, data_page_version="2.0")


def nested_types():
    # Every nesting and null spin assembles, uncompressed PLAIN values in v2 pages: lists of ints,
    # lists of lists, lists with null elements, empty and null lists, structs with null fields, null
    # structs, booleans and floats, a required column, a fixed-size-list-free map-free schema.
    schema = pa.schema([
        pa.field("id", pa.int64(), nullable=False),
        ("tokens", pa.list_(pa.int32())),
        ("nested", pa.list_(pa.list_(pa.int64()))),
        ("flag", pa.bool_()),
        ("score", pa.float64()),
        ("ratio", pa.float32()),
        ("meta", pa.struct([("source", pa.string()), ("turns", pa.list_(pa.int16()))])),
        ("messages", pa.list_(message)),
    ])
    rows = []
    for i in range(30):
        k = i % 6
        rows.append({
            "id": i * 1_000_000_007 - 2**40,
            "tokens": None if k == 0 else [] if k == 1 else [rng.randint(0, 2**31 - 1) for _ in range(rng.randint(1, 9))],
            "nested": None if k == 2 else [[] if j == 1 else None if j == 2 else [rng.randint(-2**62, 2**62) for _ in range(3)]
                                           for j in range(k)],
            "flag": None if k == 3 else bool(i % 2),
            "score": None if k == 4 else rng.uniform(-1e6, 1e6),
            "ratio": None if k == 5 else rng.uniform(0, 1),
            "meta": None if k == 1 else {"source": None if k == 2 else text(2), "turns": None if k == 3 else [k, -k]},
            "messages": None if k == 4 else [None if j == 1 else {"content": None if j == 2 else text(3), "role": "user"}
                                             for j in range(k)],
        })
    table = pa.Table.from_pylist(rows, schema=schema)
    # The expected rows as pyarrow reads the file back: float32 values as the doubles of the stored floats.
    options = dict(compression="none", use_dictionary=False, data_page_version="2.0", data_page_size=256)
    pq.write_table(table, os.path.join(OUT, "nested_types.parquet"), **options)
    write("nested_types", table, expected=pq.read_table(os.path.join(OUT, "nested_types.parquet")).to_pylist(), **options)


def delta():
    # Writers other than pyarrow's defaults (parquet-mr's v2 writer): DELTA_BYTE_ARRAY strings (sorted keys
    # share prefixes), DELTA_LENGTH_BYTE_ARRAY, DELTA_BINARY_PACKED int32 and int64 with wrapping deltas.
    n = 300
    keys = sorted("%s/%05d" % (rng.choice(["train", "test", "validation"]), rng.randint(0, 99999)) for _ in range(n))
    schema = pa.schema([("key", pa.string()), ("prompt", pa.string()), ("small", pa.int32()), ("big", pa.int64()),
                        ("ids", pa.list_(pa.int32()))])
    rows = [{"key": keys[i], "prompt": None if i % 17 == 0 else text(rng.randint(0, 6)),
             "small": [2**31 - 1, -2**31, 0, 5][i % 4] if i % 3 else rng.randint(-1000, 1000),
             "big": [2**63 - 1, -2**63, 1][i % 3] if i % 5 == 0 else rng.randint(-2**40, 2**40),
             "ids": [rng.randint(0, 50000) for _ in range(i % 7)]}
            for i in range(n)]
    table = pa.Table.from_pylist(rows, schema=schema)
    write("delta", table, use_dictionary=False, compression="snappy", data_page_size=1024,
          column_encoding={"key": "DELTA_BYTE_ARRAY", "prompt": "DELTA_LENGTH_BYTE_ARRAY", "small": "DELTA_BINARY_PACKED",
                           "big": "DELTA_BINARY_PACKED", "ids": "DELTA_BINARY_PACKED"})


def token_ids():
    # Pre-tokenized records: prompt and response ids (int32 and int64 lists), dictionary-encoded.
    rows = [{"prompt": [rng.randint(3, 255) for _ in range(rng.randint(1, 12))],
             "response": [rng.randint(3, 255) for _ in range(rng.randint(1, 12))] + [2]} for _ in range(20)]
    table = pa.Table.from_pylist(rows, schema=pa.schema([("prompt", pa.list_(pa.int32())), ("response", pa.list_(pa.int64()))]))
    write("token_ids", table)


def zstd():
    # polars' default codec (and pyarrow's, DuckDB's on request): ZSTD pages at level 3 -- dictionary
    # pages, several row groups and pages, strings long enough for Huffman-coded literals and matches.
    rows = []
    for _ in range(40):
        prompt, response = text(rng.randint(5, 30)), text(rng.randint(5, 40))
        messages = [dict(m, content=m["content"] if m["content"].strip() else "(empty)") for m in chat(rng.randint(1, 2))]
        rows.append({"prompt": prompt, "response": response, "messages": messages})
    table = pa.Table.from_pylist(rows, schema=pa.schema([("prompt", pa.string()), ("response", pa.string()),
                                                         ("messages", pa.list_(message))]))
    write("zstd", table, compression="zstd", row_group_size=24, data_page_size=2048)
    # The same rows (zstd.jsonl) at level 19 in v2 pages, in LZ4_RAW (pyarrow's compression="lz4") and GZIP.
    pq.write_table(table, os.path.join(OUT, "zstd_v2.parquet"), compression="zstd", compression_level=19,
                   data_page_version="2.0")
    pq.write_table(table, os.path.join(OUT, "lz4.parquet"), compression="lz4", data_page_size=2048)
    pq.write_table(table, os.path.join(OUT, "gzip.parquet"), compression="gzip", data_page_size=2048)


def lz4_legacy():
    # Parquet's older LZ4 codec (5) over raw blocks, as Arrow before 9.0 wrote it: lz4.parquet with its
    # column chunks' codec rewritten in the footer (Thrift's compact field 4 of ColumnMetaData: header
    # 0x15, zigzag 7 -> zigzag 5), checked by pyarrow reading the rows back under codec LZ4.
    data = open(os.path.join(OUT, "lz4.parquet"), "rb").read()
    length = struct.unpack("<I", data[-8:-4])[0]
    start = len(data) - 8 - length
    footer = data[start:-8]
    chunks = pq.ParquetFile(os.path.join(OUT, "lz4.parquet")).metadata
    assert footer.count(b"\x15\x0e") == chunks.num_row_groups * chunks.num_columns
    path = os.path.join(OUT, "lz4_legacy.parquet")
    with open(path, "wb") as f:
        f.write(data[:start] + footer.replace(b"\x15\x0e", b"\x15\x0a") + data[-8:])
    meta = pq.ParquetFile(path).metadata
    # pyarrow 26 names codec 5 (its LZ4_HADOOP) "UNKNOWN" and LZ4_RAW "LZ4".
    assert {meta.row_group(g).column(c).compression for g in range(meta.num_row_groups)
            for c in range(meta.num_columns)} == {"UNKNOWN"}
    assert pq.read_table(path).to_pylist() == pq.read_table(os.path.join(OUT, "lz4.parquet")).to_pylist()


def brotli():
    table = pa.Table.from_pylist([{"prompt": "Hi", "response": "Hello"}])
    pq.write_table(table, os.path.join(OUT, "brotli.parquet"), compression="brotli")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    ultrachat()
    spin_iter()
    nested_types()
    delta()
    token_ids()
    zstd()
    lz4_legacy()
    brotli()

#!/usr/bin/env python3
"""End-to-end checks of `spin data`, one case per CTest test:

  show        chat records through a Llama-3-style tokenizer.json: the template auto picks
              (llama3), the prompt ids transformers' apply_chat_template gives
              (tests/data/hf_bpe/llama3/chat_cases.json), the text with the special tokens shown
              where the template puts them, and the length distributions against the ids; the
              llama2 and mistral templates named on a SentencePiece model in Llama 2's layout, and
              mistral-v3 chosen by auto on one in Mistral v0.3's, gemma3 by auto on one in Gemma
              3's, mistral-v7 by auto on one in Mistral Large 2411's (tokenizer.model.v7),
              mistral-v3 by auto and mistral-v7 named on Mistral's Tekken (tekken.json), phi4-mini
              by auto on an o200k tokenizer.json, granite3.1 on a Granite 3 one, deepseek-v3 on one
              built as DeepSeek-V3's (three Splits), deepseek-v3.1 on the same under V3.1's template and
              deepseek-r1 on DeepSeek-R1-Distill-Qwen's: the ids of their references (tests/data/llama_spm,
              mistral_v3_spm, mistral_v7_spm, gemma3_spm, tekken, hf_bpe/o200k, hf_bpe/granite,
              hf_bpe/deepseek_v3, hf_bpe/deepseek_v31, hf_bpe/deepseek_r1)
  parquet     Parquet files in ultrachat_200k's layout (tests/data/parquet), Snappy- and ZSTD-compressed, and
              the JSONL gzip- and Zstandard-compressed (tests/data/codecs/ultrachat.jsonl.gz, .zst) show
              what their records as JSONL show: the same shape, counts, length distributions and examples
  bad-input   a missing data file, a record of another shape in a list, a malformed --columns and a column
              the records lack: one error line; a
              BROTLI-compressed Parquet file, a truncated one and a truncated .jsonl.gz: one error naming
              the file
"""
import json
import os
import re
import shutil

from e2e_common import HF_BPE, ROOT, expect_error, hf_tokenizer_model, run_case, run_ok

PARQUET = os.path.join(ROOT, "tests", "data", "parquet")


def chat_file(path, cases):
    with open(path, "w") as f:
        for c in cases:
            f.write(json.dumps({"messages": c["messages"]}) + "\n")


def case_show(args, tmp):
    model = hf_tokenizer_model(os.path.join(tmp, "model"))
    cases = json.load(open(os.path.join(HF_BPE, "chat_cases.json")))
    data = os.path.join(tmp, "chat.jsonl")
    chat_file(data, cases)
    r = run_ok(args.mpiexec, [args.spin, "data", "--model", model, "--data", data, "--show", str(len(cases))], 1)
    out = r.stdout
    assert "template llama3 (--template auto)" in out, out
    shown = re.findall(r"  prompt    (\d+) tokens \[([0-9 .]+)\]\n      (.*)\n  response  (\d+) tokens \[([0-9 .]+)\]", out)
    assert len(shown) == len(cases), out
    for (n, ids, text, rn, rids), c in zip(shown, cases):
        assert int(n) == len(c["prompt_ids"]) and ids.split()[:48] == [str(i) for i in c["prompt_ids"]][:48], (ids, c)
        assert [int(i) for i in rids.split() if i != "..."] == c["response_ids"][:48], (rids, c)
        assert text.startswith("<|begin_of_text|><|start_header_id|>"), text
        assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\\n\\n"), text
        assert "<|eot_id|>" in text, text
    prompt_lengths = sorted(len(c["prompt_ids"]) for c in cases)
    m = re.search(r"prompt tokens     min (\d+) \| mean \d+ \| p50 \d+ \| p90 \d+ \| p99 \d+ \| max (\d+)", out)
    assert m and (int(m.group(1)), int(m.group(2))) == (prompt_lengths[0], prompt_lengths[-1]), (m, prompt_lengths)
    print("spin data: %d chat examples rendered as apply_chat_template renders them, e.g. %s" % (len(cases), shown[0][2][:60]))
    # The same conversations as TRL's prompt-completion records and as preference records with an explicit
    # prompt (the completion its last message): what spin data shows is the chat records', shape aside.
    def shown_as(records):
        with open(data, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
        return run_ok(args.mpiexec, [args.spin, "data", "--model", model, "--data", data, "--show", str(len(cases))],
                      1).stdout
    for records, shape in (([{"prompt": c["messages"][:-1], "completion": c["messages"][-1:]} for c in cases],
                            "prompt/completion (TRL)"),
                           ([{"prompt": c["messages"][:-1], "chosen": c["messages"][-1:],
                              "rejected": [{"role": "assistant", "content": "No."}]} for c in cases], "chosen/rejected")):
        got = shown_as(records)
        assert "(%s)" % shape in got, got
        assert got.replace("(%s)" % shape, "(chat messages)") == out, (got, out)
    print("spin data: the same conversations as TRL's prompt-completion and explicit-prompt preference records show "
          "the same ids")
    # Records of another layout by --columns (GSM8K's question / answer): the chat records' ids.
    with open(data, "w") as f:
        f.writelines(json.dumps({"question": c["messages"][:-1], "answer": c["messages"][-1]["content"], "id": i}) + "\n"
                     for i, c in enumerate(cases))
    got = run_ok(args.mpiexec, [args.spin, "data", "--model", model, "--data", data, "--columns", "question,answer",
                                "--show", str(len(cases))], 1).stdout
    assert got.replace("(the columns given)", "(chat messages)") == out, (got, out)
    print("spin data --columns question,answer: the chat records' ids")
    # Named templates (auto cannot tell them): the ids of their references, system messages included.
    # mistral-v3 by auto, from its [INST] and [/INST] tokens; gemma3 by auto, from <start_of_image>.
    for kind, template, name in [("llama_spm", "llama2", "chat_cases_llama2.json"),
                                 ("llama_spm", "mistral", "chat_cases_mistral.json"),
                                 ("mistral_v3_spm", "auto", "chat_cases.json"),
                                 ("mistral_v7_spm", "auto", "chat_cases.json"),
                                 ("gemma3", "auto", "chat_cases.json"),
                                 ("tekken", "auto", "chat_cases.json"),
                                 ("tekken", "mistral-v7", "chat_cases_v7.json"),
                                 ("o200k", "auto", "chat_cases.json"),
                                 ("granite", "auto", "chat_cases_granite3.1.json"),
                                 ("deepseek_v3", "auto", "chat_cases.json"),
                                 ("deepseek_v31", "auto", "chat_cases.json"),
                                 ("deepseek_r1", "auto", "chat_cases_deepseek_r1.json")]:
        model = hf_tokenizer_model(os.path.join(tmp, kind + "-" + template), kind=kind)
        folder = {"gemma3": "gemma3_spm"}.get(kind, os.path.join("hf_bpe", kind) if kind in (
            "o200k", "granite", "deepseek_v3", "deepseek_v31", "deepseek_r1") else kind)
        cases = json.load(open(os.path.join(ROOT, "tests", "data", folder, name)))
        chat_file(data, cases)
        r = run_ok(args.mpiexec, [args.spin, "data", "--model", model, "--data", data, "--template", template,
                                  "--show", str(len(cases))], 1)
        chosen = {"mistral_v3_spm": "mistral-v3", "mistral_v7_spm": "mistral-v7", "gemma3": "gemma3",
                  "tekken": "mistral-v3", "o200k": "phi4-mini", "granite": "granite3.1", "deepseek_v3": "deepseek-v3",
                  "deepseek_v31": "deepseek-v3.1", "deepseek_r1": "deepseek-r1"}[kind] \
            if template == "auto" else template
        assert "template %s (--template %s)" % (chosen, template) in r.stdout, r.stdout
        shown = re.findall(r"  prompt    (\d+) tokens \[([0-9 .]+)\]\n      (.*)\n  response  (\d+) tokens \[([0-9 .]+)\]",
                           r.stdout)
        assert len(shown) == len(cases), r.stdout
        for (n, ids, text, rn, rids), c in zip(shown, cases):
            assert int(n) == len(c["prompt_ids"]) and ids.split()[:48] == [str(i) for i in c["prompt_ids"]][:48], (ids, c)
            # Gemma's and Granite's reference responses end with the "\n" after <end_of_turn> /
            # <|end_of_text|>, Phi-4-mini's with EOS after <|end|>, where spin's stops.
            want = c["response_ids"][:-1] if kind in ("gemma3", "o200k", "granite") else c["response_ids"]
            assert [int(i) for i in rids.split() if i != "..."] == want[:48], (rids, c)
        print("spin data --template %s: %d chat examples rendered as its reference renders them" % (template, len(cases)))


def case_parquet(args, tmp):
    model = hf_tokenizer_model(os.path.join(tmp, "model"))
    jsonl = {}
    for name, records in (("ultrachat", 40), ("zstd", 40)):
        shown = {}
        for ext in ("parquet", "jsonl"):
            data = os.path.join(tmp, name)  # one name, so the outputs compare whole: the format is told by the bytes
            shutil.copy(os.path.join(PARQUET, name + "." + ext), data)
            shown[ext] = run_ok(args.mpiexec, [args.spin, "data", "--model", model, "--data", data, "--show", "3"],
                                1).stdout
            os.remove(data)
        assert "%d records (chat messages)" % records in shown["parquet"], shown["parquet"]
        assert shown["parquet"] == shown["jsonl"], (shown["parquet"], shown["jsonl"])
        jsonl[name] = shown["jsonl"]
    # The same records as a gzip- and a Zstandard-compressed JSONL file (told by their bytes).
    for ext in ("gz", "zst"):
        data = os.path.join(tmp, "ultrachat")
        shutil.copy(os.path.join(ROOT, "tests", "data", "codecs", "ultrachat.jsonl." + ext), data)
        shown = run_ok(args.mpiexec, [args.spin, "data", "--model", model, "--data", data, "--show", "3"], 1).stdout
        assert shown == jsonl["ultrachat"], (ext, shown, jsonl["ultrachat"])
        os.remove(data)
    print("spin data: Parquet files in ultrachat_200k's layout, Snappy and ZSTD, and the JSONL gzip- and "
          "Zstandard-compressed show as their records in JSONL")


def case_bad_input(args, tmp):
    model = hf_tokenizer_model(os.path.join(tmp, "model"))
    cases = json.load(open(os.path.join(HF_BPE, "chat_cases.json")))
    chat = os.path.join(tmp, "chat.jsonl")
    chat_file(chat, cases)
    pairs = os.path.join(tmp, "pairs.jsonl")
    with open(pairs, "w") as f:
        f.write(json.dumps({"prompt": "2+2=", "response": "4"}) + "\n")
    cmd = lambda data: [args.spin, "data", "--model", model, "--data", data]
    expect_error(args.mpiexec, "missing-data", cmd(os.path.join(tmp, "nowhere.jsonl")), r"nowhere\.jsonl: cannot open", 2,
                 None)
    expect_error(args.mpiexec, "mixed-shapes", cmd(chat + "," + pairs),
                 r"pairs\.jsonl:1: a prompt/response text record among chat messages records", 2, None)
    expect_error(args.mpiexec, "bad-columns", cmd(chat) + ["--columns", "question"],
                 r"--columns must be PROMPT,RESPONSE or PROMPT,RESPONSE,GENERATED", 2, None)
    expect_error(args.mpiexec, "missing-column", cmd(chat) + ["--columns", "question,answer"],
                 r"chat\.jsonl:1: no \"question\"", 2, None)
    expect_error(args.mpiexec, "brotli-parquet", cmd(os.path.join(PARQUET, "brotli.parquet")),
                 r"brotli\.parquet: column prompt, row group 1: BROTLI-compressed pages; spin reads uncompressed, "
                 r"SNAPPY .*, ZSTD \(polars'\), GZIP, LZ4_RAW and LZ4 Parquet", 2, None)
    truncated = os.path.join(tmp, "truncated.parquet")
    with open(os.path.join(PARQUET, "ultrachat.parquet"), "rb") as f:
        data = f.read()
    with open(truncated, "wb") as f:
        f.write(data[: len(data) // 2])
    expect_error(args.mpiexec, "truncated-parquet", cmd(truncated),
                 r"truncated\.parquet: not a Parquet file \(no \"PAR1\" at its end: truncated\?\)", 2, None)
    truncated_gz = os.path.join(tmp, "truncated.jsonl.gz")
    with open(os.path.join(ROOT, "tests", "data", "codecs", "ultrachat.jsonl.gz"), "rb") as f:
        data = f.read()
    with open(truncated_gz, "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    expect_error(args.mpiexec, "truncated-gzip", cmd(truncated_gz),
                 r"truncated\.jsonl\.gz: .*\(corrupt or truncated (data|file)\)", 2, None)


def main():
    run_case(__doc__, {"show": case_show, "parquet": case_parquet, "bad-input": case_bad_input}, "spin_data_")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""End-to-end checks of `spin score`, run by CTest (one case per test):

  layouts       the same output for TP/PP/DP layouts (1 rank, TP=2, DP=2, TP=2 x DP=2, TP=2 x PP=2,
                PP=2 x DP=2), with the logits in chunks and with micro-batches cut by tokens
                (--batch-tokens), to 1e-5; two pipeline stages give bitwise
                the single rank's output (one OpenBLAS thread a rank: the same products, split by
                layer), tied embeddings and experts included; nine mixtures' files read and scored with
                their experts spread over TP 2 (--ep 2) as on one rank
  dtypes        BF16 weights in a sharded checkpoint score like the F32 single file
  bad-input     each bad input gives one clear error line, non-zero exit, no output, no hang
  special-outputs  --output a named pipe written in place (never replaced), a symbolic link written through
  text          text records through the model's tokenizer.json and the llama3 template score as
                the ids transformers' apply_chat_template gives; a text line without a response
                is one error naming file:line

Standard library only. Every command runs under a timeout so that a hang fails the test.
"""
import json
import math
import os
import shutil
import stat
import struct
import sys
import threading

import e2e_common


def score(args, model, inp, out, ranks=1, tp=1, extra=(), pp=1):
    e2e_common.run_ok(args.mpiexec, [args.spin, "score", "--model", model, "--input", inp, "--output", out,
                                     "--tp", str(tp), "--pp", str(pp), "--batch-size", "3"] + list(extra), ranks)
    return [json.loads(line) for line in open(out)]


def compare(got, want, rtol, atol, what):
    assert len(got) == len(want), "%s: %d lines, expected %d" % (what, len(got), len(want))
    worst = 0.0
    for i, (g, w) in enumerate(zip(got, want)):
        assert len(g["token_logprobs"]) == len(w["token_logprobs"]), "%s line %d: lengths differ" % (what, i + 1)
        for a, b in zip(g["token_logprobs"] + [g["logprob_sum"]], w["token_logprobs"] + [w["logprob_sum"]]):
            if abs(a - b) > atol + rtol * abs(b):
                sys.exit("FAIL: %s line %d: %r vs %r" % (what, i + 1, a, b))
            worst = max(worst, abs(a - b))
    print("%s: %d lines agree (max |diff| %.3g)" % (what, len(got), worst))


def case_layouts(args, tmp):
    model = os.path.join(args.models, "tiny-llama")
    base = score(args, model, args.input, os.path.join(tmp, "np1.jsonl"))
    for ranks, tp, pp in [(2, 2, 1), (2, 1, 1), (4, 2, 1), (4, 2, 2), (4, 1, 2)]:
        got = score(args, model, args.input, os.path.join(tmp, "np%d_tp%d_pp%d.jsonl" % (ranks, tp, pp)), ranks, tp,
                    pp=pp)
        compare(got, base, 1e-5, 1e-6, "np %d tp %d pp %d vs 1 rank" % (ranks, tp, pp))
    # Two stages run the single rank's micro-batches layer by layer: bitwise its output. A tied
    # LM head on the last stage (tiny-llama-tied), experts (tiny-mixtral), windows (tiny-gemma3).
    for name in ["tiny-llama", "tiny-llama-tied", "tiny-mixtral", "tiny-gemma3"]:
        one = score(args, os.path.join(args.models, name), args.input, os.path.join(tmp, name + "_np1.jsonl"))
        two = score(args, os.path.join(args.models, name), args.input, os.path.join(tmp, name + "_pp2.jsonl"), 2,
                    extra=["--pp-layers", "1,1"], pp=2)
        compare(two, one, 0.0, 0.0, "%s: pp 2 vs 1 rank" % name)
    # Expert parallelism (--ep 2 at TP 2): each rank reads and runs its half of the experts -- GraniteMoE's
    # from the files' 3-D stacks, the others' tensor by tensor --, every router's rows as one rank's.
    for name in ["tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe", "tiny-granitemoe", "tiny-glm4-moe",
                 "tiny-deepseek-v2", "tiny-deepseek-v3", "tiny-dots1"]:
        m = os.path.join(args.models, name)
        one = score(args, m, args.input, os.path.join(tmp, name + "_ep_np1.jsonl"))
        spread = score(args, m, args.input, os.path.join(tmp, name + "_ep2.jsonl"), 2, 2, ["--ep", "2"])
        compare(spread, one, 1e-5, 1e-6, "%s: tp 2, ep 2 vs 1 rank" % name)
    # Micro-batches by tokens (--batch-tokens): other packings of the same sequences, at PP 2 x DP 2.
    by_tokens = score(args, model, args.input, os.path.join(tmp, "by_tokens.jsonl"), 4, 1,
                      ["--batch-tokens", "50"], pp=2)
    compare(by_tokens, base, 1e-5, 1e-6, "--batch-tokens 50 at pp 2 x dp 2 vs 1 rank")
    chunked = score(args, model, args.input, os.path.join(tmp, "chunked.jsonl"), 2, 2, ["--logits-chunk-rows", "3"])
    compare(chunked, base, 1e-5, 1e-6, "logits 3 rows at a time at tp 2 vs all at once on 1 rank")
    # Sanity of the numbers themselves: the sum covers exactly the tokens at positions >= k.
    for line, rec in zip(open(args.input), base):
        r = json.loads(line)
        k = len(r["prompt"]) if "prompt" in r else r.get("mask_from", 1)
        assert abs(sum(rec["token_logprobs"][k - 1:]) - rec["logprob_sum"]) < 1e-4, rec
        assert all(v < 0 for v in rec["token_logprobs"])


def case_dtypes(args, tmp):
    f32 = score(args, os.path.join(args.models, "tiny-llama"), args.input, os.path.join(tmp, "f32.jsonl"))
    bf16 = score(args, os.path.join(args.models, "tiny-llama-bf16-sharded"), args.input,
                 os.path.join(tmp, "bf16.jsonl"), 2, 2)
    # The generator rounds weights to bf16-representable values: the same model exactly.
    compare(bf16, f32, 1e-5, 1e-6, "BF16 sharded checkpoint at TP 2 vs F32")


def case_precision(args, tmp):
    model = os.path.join(args.models, "tiny-llama")
    f32 = score(args, model, args.input, os.path.join(tmp, "f32.jsonl"))
    bf16 = score(args, model, args.input, os.path.join(tmp, "bf16.jsonl"), extra=["--precision", "bf16"])
    # bf16 operands (8 significant bits): a few 1e-3 relative on log-probabilities of ~5.
    compare(bf16, f32, 3e-2, 1e-2, "--precision bf16 vs fp32")
    assert any(a != b for g, w in zip(bf16, f32) for a, b in zip(g["token_logprobs"], w["token_logprobs"])), \
        "bf16 products changed nothing: are they in effect?"
    tp2 = score(args, model, args.input, os.path.join(tmp, "bf16_tp2.jsonl"), 2, 2, ["--precision", "bf16"])
    # The same bf16 operands split over two ranks: float32 sums in another order, which can
    # flip the rounding of a next layer's bf16 input (2^-9 relative on that element).
    compare(tp2, bf16, 1e-2, 1e-3, "--precision bf16 at TP 2 vs 1 rank")


def expect_error(args, tmp, name, cmd_args, pattern, ranks=2):
    out = os.path.join(tmp, name + ".out.jsonl")
    e2e_common.expect_error(args.mpiexec, name, [args.spin] + cmd_args(out), pattern, ranks, out)


def case_bad_input(args, tmp):
    model = os.path.join(args.models, "tiny-llama")

    def copy_model(name, edit):
        d = os.path.join(tmp, name)
        shutil.copytree(model, d)
        edit(d)
        return d

    def drop_key(d):
        cfg = json.load(open(os.path.join(d, "config.json")))
        del cfg["hidden_size"]
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"))

    def truncate(d):
        p = os.path.join(d, "model.safetensors")
        with open(p, "r+b") as f:
            f.truncate(os.path.getsize(p) - 1000)

    def huge_layer_count(d):  # a typo's layer count: refused from the weights' headers, not an OOM kill
        cfg = json.load(open(os.path.join(d, "config.json")))
        cfg["num_hidden_layers"] = 10 ** 12
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"))

    def overlap_offsets(d):  # one tensor's range moved into another's: each range sound on its own
        p = os.path.join(d, "model.safetensors")
        raw = open(p, "rb").read()
        n = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8:8 + n])
        header["model.norm.weight"]["data_offsets"] = [0, 4 * math.prod(header["model.norm.weight"]["shape"])]
        text = json.dumps(header).encode()
        open(p, "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])

    def write(name, text):
        p = os.path.join(tmp, name)
        open(p, "w").write(text)
        return p

    def add_tensors(extra):  # the model's tensors and `extra`'s (name, shape), zeros
        def edit(d):
            path = os.path.join(d, "model.safetensors")
            e2e_common.write_safetensors(path, e2e_common.safetensors_tensors(path) +
                                         [(k, shape, [0.0] * math.prod(shape)) for k, shape in extra])
        return edit

    no_key = copy_model("no-key", drop_key)
    truncated = copy_model("truncated", truncate)
    huge = copy_model("huge", huge_layer_count)
    overlapped = copy_model("overlapped", overlap_offsets)
    out_of_range = write("range.jsonl", '{"tokens": [1, 2]}\n{"tokens": [3, 300]}\n')
    empty = write("empty.jsonl", "")
    malformed = write("malformed.jsonl", '{"tokens": [1, 2]}\n{"tokens": [1, 2\n')
    overlong = write("long.jsonl", json.dumps({"tokens": [1] * 600}) + "\n")

    def cmd(m, inp, *extra):
        return lambda out: ["score", "--model", m, "--input", inp, "--output", out] + list(extra)

    # A tensor the model config.json describes does not read (a q norm in a Llama): refused naming it,
    # rather than the model computed without it; the rotary buffers older transformers saved are not
    # parameters, and the model with them scores as without.
    unread = copy_model("unread", add_tensors([("model.layers.1.self_attn.q_norm.weight", [16])]))
    expect_error(args, tmp, "unread-tensor", cmd(unread, args.input),
                 r"unread: the weights hold 1 tensor\(s\) that the model config\.json describes does not have "
                 r"\(model\.layers\.1\.self_attn\.q_norm\.weight\)")
    buffers = copy_model("buffers", add_tensors([("model.layers.%d.self_attn.rotary_emb.inv_freq" % l, [8])
                                                 for l in range(2)]))
    scored = []
    for m in (model, buffers):
        out = os.path.join(tmp, "scored-%d.jsonl" % len(scored))
        e2e_common.run_ok(args.mpiexec, [args.spin, "score", "--model", m, "--input", args.input, "--output", out], 1)
        scored.append(open(out).read())
    assert scored[0] == scored[1], "the rotary buffers changed the scores"
    expect_error(args, tmp, "missing-config-key", cmd(no_key, args.input),
                 r"rank 0: .*config\.json: missing required key \"hidden_size\"")
    expect_error(args, tmp, "kv-heads-vs-tp", cmd(model, args.input, "--tp", "4"),
                 r"num_key_value_heads \(2\) is not divisible by tensor-parallel size 4", ranks=4)
    expect_error(args, tmp, "heads-vs-tp", cmd(model, args.input, "--tp", "3"),
                 r"num_attention_heads \(4\) is not divisible by tensor-parallel size 3", ranks=3)
    expect_error(args, tmp, "world-vs-tp", cmd(model, args.input, "--tp", "2"),
                 r"world size 3 is not divisible by tp \(2\)", ranks=3)
    checkpoint = os.path.join(tmp, "checkpoint")
    e2e_common.run_ok(args.mpiexec, [args.spin, "ckpt", "import-hf", model, checkpoint], 1)
    expect_error(args, tmp, "adapter-with-checkpoint", cmd(checkpoint, args.input, "--adapter", tmp),
                 r"--adapter merges a PEFT LoRA adapter into a Hugging Face model, and .*checkpoint is a spin checkpoint")
    expect_error(args, tmp, "pp-vs-layers", cmd(model, args.input, "--pp", "3"),
                 r"pipeline-parallel size 3 exceeds the model's 2 layers", ranks=3)
    expect_error(args, tmp, "pp-layers-sum", cmd(model, args.input, "--pp", "2", "--pp-layers", "2,1"),
                 r"--pp-layers sums to 3 layers but the model has 2")
    expect_error(args, tmp, "truncated-weights", cmd(truncated, args.input),
                 r"model\.safetensors: tensor \".*\": .*truncated")
    expect_error(args, tmp, "layers-beyond-the-weights", cmd(huge, args.input),
                 r"huge/config\.json describes a model of .* parameters \(num_hidden_layers 1000000000000, "
                 r"hidden_size 64\), but the weight files hold \d+ values: a config\.json that does not match")
    expect_error(args, tmp, "overlapping-offsets", cmd(overlapped, args.input),
                 r"overlapped/model\.safetensors: tensor \".*\": data_offsets \[0, \d+\] overlap the tensor "
                 r"before it, which ends at \d+ \(malformed safetensors header\)")
    expect_error(args, tmp, "token-out-of-range", cmd(model, out_of_range),
                 r"range\.jsonl:2: token id 300 is outside the vocabulary \[0, 256\)")
    expect_error(args, tmp, "empty-input", cmd(model, empty), r"empty\.jsonl: no records")
    expect_error(args, tmp, "malformed-jsonl", cmd(model, malformed), r"malformed\.jsonl:2: not valid JSON")
    expect_error(args, tmp, "overlong-sequence", cmd(model, overlong),
                 r"long\.jsonl:1: 600 tokens; the model allows at most 512")
    expect_error(args, tmp, "missing-model", cmd(os.path.join(tmp, "nowhere"), args.input),
                 r"nowhere/config\.json: cannot open")
    expect_error(args, tmp, "missing-input", cmd(model, os.path.join(tmp, "nowhere.jsonl")),
                 r"nowhere\.jsonl: cannot open")
    # A directory opens as a stream and fails at the first read ("read error" before); a symbolic-link loop
    # was a bare filesystem_error.
    os.mkdir(os.path.join(tmp, "adir"))
    expect_error(args, tmp, "directory-input", cmd(model, os.path.join(tmp, "adir")),
                 r"adir: a directory, not a data file")
    # A pipe (`<(zcat data.jsonl.gz)`) was read up to its format's first bytes and then seen empty ("read error",
    # "cannot map the file (Success)"): every rank reads the data, more than once.
    pipe = os.path.join(tmp, "pipe")
    os.mkfifo(pipe)
    expect_error(args, tmp, "pipe-input", cmd(model, pipe),
                 r"pipe: a pipe or a device, not a data file: every rank reads the data, more than once")
    expect_error(args, tmp, "directory-output", lambda out: cmd(model, args.input)(os.path.join(tmp, "adir")),
                 r"spin score: --output \S*adir: a directory, where the output is a file")
    os.symlink("loop-b", os.path.join(tmp, "loop-a"))
    os.symlink("loop-a", os.path.join(tmp, "loop-b"))
    expect_error(args, tmp, "symlink-loop-model", cmd(os.path.join(tmp, "loop-a"), args.input),
                 r"loop-a/config\.json: cannot open")
    expect_error(args, tmp, "negative-batch-tokens", cmd(model, args.input, "--batch-tokens", "-1"),
                 r"spin score: --batch-tokens must not be negative")
    expect_error(args, tmp, "unknown-option", cmd(model, args.input, "--tpp", "2"),
                 r"unrecognised option '--tpp'")
    expect_error(args, tmp, "missing-option", lambda out: ["score", "--model", model, "--output", out],
                 r"the option '--input' is required")
    expect_error(args, tmp, "unknown-command", lambda out: ["scroe"], r"unknown command \"scroe\"")
    expect_error(args, tmp, "unknown-device", cmd(model, args.input, "--device", "tpu"),
                 r"unknown device 'tpu' \(expected cpu or cuda\)")
    expect_error(args, tmp, "unknown-precision", cmd(model, args.input, "--precision", "fp16"),
                 r"unknown precision 'fp16' \(expected fp32 or bf16\)")
    expect_error(args, tmp, "unknown-attention-backend", cmd(model, args.input, "--attention-backend", "flash"),
                 r"unknown attention backend 'flash' \(expected auto, simt or unfused\)")
    if not os.path.exists("/dev/nvidia0"):
        # Where no GPU is visible, --device cuda is one agreed error, whichever build this is.
        expect_error(args, tmp, "no-gpu", cmd(model, args.input, "--device", "cuda"),
                     r"--device cuda: (no CUDA device is visible|this spin was built without CUDA)")


def case_special_outputs(args, tmp):
    """A named pipe is written in place, never replaced by a file renamed over it (as /dev/null was, run as
    root); a symbolic link is written through, the link kept."""
    model = os.path.join(args.models, "tiny-llama")
    want = score(args, model, args.input, os.path.join(tmp, "plain.jsonl"))
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo).read()), daemon=True)
    reader.start()
    e2e_common.run_ok(args.mpiexec, [args.spin, "score", "--model", model, "--input", args.input, "--output", fifo,
                                     "--batch-size", "3"], 1)
    reader.join(60)
    assert got and got[0] == open(os.path.join(tmp, "plain.jsonl")).read(), "the pipe's reader got another output"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode), "the named pipe was replaced"
    assert not os.path.exists(fifo + ".tmp")
    os.mkdir(os.path.join(tmp, "real"))
    link = os.path.join(tmp, "link.jsonl")
    os.symlink(os.path.join("real", "out.jsonl"), link)  # relative, to a file not written yet
    score(args, model, args.input, link)
    assert os.path.islink(link), "the link was replaced"
    assert open(os.path.join(tmp, "real", "out.jsonl")).read() == open(os.path.join(tmp, "plain.jsonl")).read()
    # An output directory is never written over a pipe, --overwrite or not.
    checkpoint = os.path.join(tmp, "checkpoint")
    e2e_common.run_ok(args.mpiexec, [args.spin, "ckpt", "import-hf", model, checkpoint], 1)
    e2e_common.expect_error(args.mpiexec, "export-over-a-pipe",
                            [args.spin, "ckpt", "export-hf", checkpoint, fifo, "--overwrite"],
                            r"spin ckpt export-hf: \S*fifo is a device, FIFO or socket, which an output never replaces",
                            1, None)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def case_text(args, tmp):
    model = e2e_common.hf_tokenizer_model(os.path.join(tmp, "model"))
    chat = json.load(open(os.path.join(e2e_common.HF_BPE, "chat_cases.json")))
    text, ids = os.path.join(tmp, "text.jsonl"), os.path.join(tmp, "ids.jsonl")
    with open(text, "w") as t, open(ids, "w") as i:
        for c in chat:  # conversations ending with the assistant's turn: prompt and response
            t.write(json.dumps({"messages": c["messages"]}) + "\n")
            i.write(json.dumps({"prompt": c["prompt_ids"], "response": c["response_ids"]}) + "\n")
    got = score(args, model, text, os.path.join(tmp, "text_out.jsonl"), 2, 2, ["--template", "llama3"])
    want = score(args, model, ids, os.path.join(tmp, "ids_out.jsonl"), 2, 2)
    compare(got, want, 0.0, 0.0, "text (llama3 template) vs apply_chat_template's ids")
    bad = os.path.join(tmp, "bad.jsonl")
    with open(bad, "w") as f:
        f.write(json.dumps({"prompt": "hi", "response": "there"}) + "\n" + json.dumps({"prompt": "no response"}) + "\n")
    expect_error(args, tmp, "text-without-response",
                 lambda out: ["score", "--model", model, "--input", bad, "--output", out], r"bad\.jsonl:2: ")
    # config.json's BOS outside the vocabulary: named there, where the text's first record was blamed.
    bad_bos = os.path.join(tmp, "bad-bos")
    shutil.copytree(model, bad_bos)
    cfg = json.load(open(os.path.join(bad_bos, "config.json")))
    cfg["bos_token_id"] = 100000
    json.dump(cfg, open(os.path.join(bad_bos, "config.json"), "w"))
    expect_error(args, tmp, "bos-beyond-the-vocabulary",
                 lambda out: ["score", "--model", bad_bos, "--input", text, "--output", out, "--template", "llama3"],
                 r"bad-bos/config\.json: bos_token_id 100000 is outside the vocabulary \(1200\)")


def main():
    tiny_score = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "tiny_score.jsonl")
    e2e_common.run_case(__doc__, {"layouts": case_layouts, "dtypes": case_dtypes, "precision": case_precision,
                                  "bad-input": case_bad_input, "text": case_text,
                                  "special-outputs": case_special_outputs},
                        "spin_e2e_", extra_args=[("--input", {"default": tiny_score})])


if __name__ == "__main__":
    main()

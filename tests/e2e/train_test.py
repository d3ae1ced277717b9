#!/usr/bin/env python3
"""End-to-end checks of `spin train`, one case per CTest test (its iterations and their responses:
train_iterations_test.py; LoRA: train_lora_test.py; the model families: train_families_test.py):

  layouts     the same SPIN run (text data, byte tokenizer) on 1 rank and on TP 2 x PP 2 writes
              the same metrics and the same final weights; the first step of each iteration has
              loss log 2 and zero rewards; --spin.ref_logprobs sampler runs; spin.micro_batch_tokens
              at PP 2 x DP 2 (micro-batches cut by tokens) agrees with the 1-rank run
  interleaved parallel.vpp = 2 (two model chunks a stage: the interleaved 1F1B schedule, scoring
              and generation going round the stages once a chunk) at PP 2 x DP 2 on a 4-layer model:
              the 1-rank run's metrics, generated responses and weights; stopped after step 3 and
              resumed on one rank without chunks, it ends where the uninterrupted run ends; micro-
              batches cut by tokens split into whole groups of the stages (their transfers not
              overlapped: parallel.overlap_p2p_comm false), the same run; micro-batches not in whole
              groups refused
  frozen      model.frozen_dtype: the reference in bf16 alone changes no metric of a bf16 run (resident,
              offloaded, resumed), bitwise; LoRA over a bf16 base trains and exports
  config      unknown keys, values of the wrong type, a lambda list shorter than the iterations,
              a missing required key, bad data: one error line naming the key or file:line;
              spin.generations = data on a SPIN data set's records, and on the same records in
              another layout read by data.columns (the same run, metric for metric)
  signal      SIGUSR1 on one rank mid-run: every rank stops at the next step, a checkpoint is
              saved, the job exits 75 (requeue); resumed, the run ends bitwise where an
              uninterrupted one ends. SIGUSR1 to mpirun (forwarded) and SIGTERM to one rank of a
              running job do the same. TensorBoard event files, read by an independent parser
              (tensorboard_events.py), hold the metrics.jsonl values across resumes. With
              checkpoint.async_save the run is unchanged and resumes bitwise from a checkpoint
              written in the background.
  rmsprop     optim.name = rmsprop with ZeRO-1: resumed bitwise; not AdamW's run; the other
              optimizer's checkpoint refused
  time_limit  checkpoint.exit_duration_mins: one step a run, requeued until done: the
              uninterrupted run, bitwise
  balanced    parallel.pp_layers = balanced on a model whose head is several layers' work at the run's
              sequence length (data.max_prompt_tokens + data.max_response_tokens): the even split
              says what balancing would save, balanced runs 3,1 -- both the 1-rank run; without
              the limits (the model's 4,096 positions) balanced is the even 2,2; the generated
              responses' limit (sampling.max_new_tokens) counts where it is the longer
  profile     logging.profile_step_start..end at PP 2: each rank's Chrome trace holds exactly the
              window's steps, properly nested ranges, and, per step, the reference's forwards in
              order and the policy's forwards and backwards in 1F1B order for its stage
"""
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import tensorboard_events as tb
from e2e_common import (REQUEUE, expect_error, read_hf_dir, read_safetensors, run, run_case, run_ok, run_requeued,
                        tree_state, TIMEOUT)
from train_common import ROOT, metrics, setup, untimed


RUN_KEYS = ["loss", "rewards_actual", "rewards_generated", "accuracy", "generated_length_mean"]


def assert_close_runs(x_lines, y_lines):
    """Two runs' metrics lines agree to 1e-5 in the run's figures."""
    assert len(x_lines) == len(y_lines), (len(x_lines), len(y_lines))
    for x, y in zip(x_lines, y_lines):
        for key in RUN_KEYS:
            assert abs(x[key] - y[key]) <= 1e-5 * max(1.0, abs(x[key])), (key, x, y)


def assert_close_weights(wa, wb):
    """Every tensor of two weight sets within 1e-5 relative L2."""
    for name in wa:
        num = sum((p - q) ** 2 for p, q in zip(wa[name], wb[name]))
        den = sum(q * q for q in wa[name])
        assert math.sqrt(num / den) < 1e-5, name


def case_layouts(args, tmp):
    config = setup(tmp)
    out1, out4 = os.path.join(tmp, "one"), os.path.join(tmp, "four")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", out1], 1)
    r4 = run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", out4,
                               "--parallel.tp", "2", "--parallel.pp", "2", "--logging.peak_tflops", "0.5"], 4)
    a, b = metrics(os.path.join(out1, "metrics.jsonl")), metrics(os.path.join(out4, "metrics.jsonl"))
    assert len(a) == len(b) == 14, (len(a), len(b))  # 2 x 6 steps + 2 validations
    assert_close_runs(a, b)
    for x, y in zip(a, b):
        # Model FLOPs: the same sequences on every layout; their rate per rank over the training
        # phase, and with logging.peak_tflops its share of that peak.
        if x["kind"] == "train":
            assert x["training_flops"] == y["training_flops"] > 0, (x, y)
            # The step's 8 responses, generated in it: their tokens, at a rate over its generation.
            assert x["generated_tokens"] == y["generated_tokens"] == round(8 * x["generated_length_mean"]), (x, y)
            for m in (x, y):
                rate = m["generated_tokens"] / m["seconds_generation"]
                assert abs(m["generation_tokens_per_second"] - rate) <= 1e-4 * rate, (m, rate)
            for m, ranks in ((x, 1), (y, 4)):
                rate = m["training_flops"] / m["seconds_training"] / ranks / 1e12
                assert abs(m["tflops_per_rank"] - rate) <= 1e-4 * rate, (m, rate)
            assert "mfu" not in x and abs(y["mfu"] - y["tflops_per_rank"] / 0.5) <= 1e-5 * y["mfu"], y
    assert re.search(r"tok/s, [0-9.e+-]+ TFLOP/s a rank \(MFU \d+%\)", r4.stdout), r4.stdout[-1500:]
    firsts = [m for m in a if m["kind"] == "train" and m["step"] in (1, 7)]
    assert len(firsts) == 2
    for m in firsts:
        assert m["rewards_actual"] == 0.0 and m["rewards_generated"] == 0.0, m
        assert abs(m["loss"] - math.log(2)) < 1e-12, m
    wa = read_safetensors(os.path.join(out1, "iteration_2", "model.safetensors"))
    wb = read_safetensors(os.path.join(out4, "iteration_2", "model.safetensors"))
    assert_close_weights(wa, wb)
    assert os.path.exists(os.path.join(out4, "iteration_2", "byte_tokenizer.json"))
    assert "[spin]" in open(os.path.join(out4, "config.ini")).read()
    print("1 rank and TP 2 x PP 2: %d metric lines and %d tensors agree" % (len(a), len(wa)))
    # model.path as a spin checkpoint of the model (imported at TP 2, with its byte tokenizer): the
    # 1-rank run's metrics and weights, bitwise -- an SFT run's checkpoint starts SPIN as its export would.
    checkpoint, out_ck = os.path.join(tmp, "model-checkpoint"), os.path.join(tmp, "from-checkpoint")
    run_ok(args.mpiexec, [args.spin, "ckpt", "import-hf", os.path.join(tmp, "model"), checkpoint, "--tp", "2"], 2)
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", out_ck, "--model.path",
                          checkpoint], 1)
    c = metrics(os.path.join(out_ck, "metrics.jsonl"))
    keys = ["loss", "rewards_actual", "rewards_generated", "accuracy", "generated_length_mean"]
    assert [[m[k] for k in keys] for m in c] == [[m[k] for k in keys] for m in a], (c[:2], a[:2])
    assert read_safetensors(os.path.join(out_ck, "iteration_2", "model.safetensors")) == wa
    print("model.path a spin checkpoint: the same run, bitwise")
    # model.sequence_parallel: the rows split between the TP regions -- the same run up to the
    # rounding of the norms' weight gradients (summed per rank, then over ranks).
    sp = os.path.join(tmp, "sequence_parallel")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", sp,
                          "--parallel.tp", "2", "--parallel.pp", "2", "--model.sequence_parallel", "true"], 4)
    assert_close_runs(b, metrics(os.path.join(sp, "metrics.jsonl")))
    assert_close_weights(wb, read_safetensors(os.path.join(sp, "iteration_2", "model.safetensors")))
    assert "sequence_parallel = true" in open(os.path.join(sp, "config.ini")).read()
    print("model.sequence_parallel at TP 2 x PP 2: metrics and weights agree with the run without")
    # spin.micro_batch_tokens at PP 2 x DP 2: each replica's share of a step cut by tokens, not by
    # pairs -- the 1-rank run's metrics and weights up to the order of float sums.
    by_tokens = os.path.join(tmp, "by_tokens")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", by_tokens,
                          "--parallel.pp", "2", "--spin.micro_batch_size", "4", "--spin.micro_batch_tokens", "80",
                          "--checkpoint.save_max_shard_size", "40000"], 4)
    c = metrics(os.path.join(by_tokens, "metrics.jsonl"))
    assert_close_runs(a, c)
    cuts = [m["micro_batches"] for m in c if m["kind"] == "train"]
    assert all(n >= 2 for n in cuts) and max(cuts) > 2, cuts  # 2 replicas; the fixed count would be 1 each
    # Its models in files of at most 40 kB, the two replicas writing every other one.
    files = [f for f in os.listdir(os.path.join(by_tokens, "iteration_2")) if f.endswith(".safetensors")]
    assert len(files) > 2, files
    assert_close_weights(wa, read_hf_dir(os.path.join(by_tokens, "iteration_2")))
    print("spin.micro_batch_tokens at PP 2 x DP 2: %s micro-batches a step; metrics and weights (in %d files) agree"
          % (cuts, len(files)))
    # spin.ref_offload: the reference kept apart and swapped into the policy's buffers for its
    # work -- the same run, bitwise.
    off = os.path.join(tmp, "offload")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", off,
                          "--spin.ref_offload", "true"], 1)
    assert untimed(os.path.join(off, "metrics.jsonl")) == untimed(os.path.join(out1, "metrics.jsonl"))
    for it in (1, 2):
        assert (open(os.path.join(off, "iteration_%d" % it, "model.safetensors"), "rb").read() ==
                open(os.path.join(out1, "iteration_%d" % it, "model.safetensors"), "rb").read()), it
    # model.recompute_activations: each layer's forward run again in the backward -- the same
    # run, bitwise.
    rec = os.path.join(tmp, "recompute")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", rec,
                          "--model.recompute_activations", "true"], 1)
    assert untimed(os.path.join(rec, "metrics.jsonl")) == untimed(os.path.join(out1, "metrics.jsonl"))
    assert (open(os.path.join(rec, "iteration_2", "model.safetensors"), "rb").read() ==
            open(os.path.join(out1, "iteration_2", "model.safetensors"), "rb").read())
    print("spin.ref_offload true, model.recompute_activations true: metrics and weights bitwise those without")
    # spin.rollout_step_tokens: the rollouts' prompts prefilled 4 tokens a model call, beside the
    # decoding sequences -- the same responses, so the same run up to rounding.
    chunked = os.path.join(tmp, "chunked")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", chunked,
                          "--spin.rollout_step_tokens", "4"], 1)
    c = metrics(os.path.join(chunked, "metrics.jsonl"))
    assert len(c) == len(a), (len(c), len(a))
    for x, y in zip(a, c):
        assert x["generated_length_mean"] == y["generated_length_mean"], (x, y)
        for key in ["loss", "rewards_actual", "rewards_generated", "accuracy"]:
            assert abs(x[key] - y[key]) <= 1e-5 * max(1.0, abs(x[key])), (key, x, y)
    print("spin.rollout_step_tokens 4: the metrics of whole-prompt prefills")
    # sampling.end_strings: every printable ASCII character ends a response (the byte-level
    # tokenizer's text), so the generated responses are shorter than without.
    ends = os.path.join(tmp, "end_strings")
    printable = json.dumps([chr(c) for c in range(33, 127)])
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", ends,
                          "--spin.max_iterations", "1", "--sampling.end_strings", printable], 1)
    short = [m["generated_length_mean"] for m in metrics(os.path.join(ends, "metrics.jsonl")) if m["kind"] == "train"]
    full = [m["generated_length_mean"] for m in a if m["kind"] == "train"][:len(short)]
    assert len(short) == 6 and sum(short) < 0.8 * sum(full), (short, full)
    print("sampling.end_strings (every printable character): mean generated length %.2f -> %.2f" %
          (sum(full) / len(full), sum(short) / len(short)))
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", os.path.join(tmp, "sampler"),
                          "--spin.ref_logprobs", "sampler", "--spin.max_iterations", "1"], 2)
    first = metrics(os.path.join(tmp, "sampler", "metrics.jsonl"))[0]
    assert abs(first["rewards_generated"]) < 1e-4, first
    print("sampler reference log-probabilities: first-step generated reward %.2g" % first["rewards_generated"])
    # logps_actual: the policy's mean log-probability of the ground truth -- at the first step the
    # model's own, which spin score computes independently (one step over all 48 examples).
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", os.path.join(tmp, "logps"),
                          "--spin.global_batch_size", "48", "--spin.max_steps", "1"], 2)
    got = metrics(os.path.join(tmp, "logps", "metrics.jsonl"))[0]
    scores = os.path.join(tmp, "scores.jsonl")
    run_ok(args.mpiexec, [args.spin, "score", "--model", os.path.join(tmp, "model"), "--input",
                          os.path.join(tmp, "data", "train.jsonl"), "--template", "plain", "--output", scores], 1)
    want = [json.loads(l)["logprob_sum"] for l in open(scores)]
    assert len(want) == 48 and abs(got["logps_actual"] - sum(want) / 48) <= 1e-5 * abs(got["logps_actual"]), (got, want)
    assert got["logps_generated"] < 0 and got["logps_generated"] != got["logps_actual"], got
    print("logps_actual at the first step = spin score's mean over the data (%.4f)" % got["logps_actual"])
    # Mixed precision through the whole command (TP 2 x PP 2, logits 7 rows at a time): policy ==
    # reference at the start (loss log 2 exactly), the policy moves (its bf16 copy follows the
    # optimizer), and the run differs from the float32 one.
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", os.path.join(tmp, "bf16"),
                          "--model.precision", "bf16", "--spin.max_iterations", "1", "--parallel.tp", "2",
                          "--parallel.pp", "2", "--model.logits_chunk_rows", "7"], 4)
    m16 = [m for m in metrics(os.path.join(tmp, "bf16", "metrics.jsonl")) if m["kind"] == "train"]
    assert abs(m16[0]["loss"] - math.log(2)) < 1e-12 and m16[0]["rewards_actual"] == 0.0, m16[0]
    assert m16[1]["rewards_actual"] != 0.0, m16[1]
    assert all(math.isfinite(m["loss"]) for m in m16), m16
    assert m16[1]["rewards_actual"] != a[1]["rewards_actual"], "bf16 products changed nothing"
    print("model.precision bf16: %d steps, step-2 reward %.4g (fp32: %.4g)"
          % (len(m16), m16[1]["rewards_actual"], a[1]["rewards_actual"]))


def case_frozen(args, tmp):
    """model.frozen_dtype under bf16 products (TP 2, two iterations): the reference in bf16 alone (auto) against
    float32 values with a bf16 copy (fp32), resident and offloaded -- the same metrics, bitwise, and each
    iteration from loss log 2; stopped in the second iteration and resumed (its checkpoint's reference the bf16
    values), bitwise; LoRA's base in bf16 (frozen_dtype bf16): each iteration from log 2, the exported model's
    norms the base's exactly, its adapted matrices moved."""
    config = setup(tmp)
    common = [args.spin, "train", "--config", config, "--data.validation", "", "--model.precision", "bf16",
              "--spin.max_iterations", "2", "--parallel.tp", "2"]
    runs = {}
    for name, extra in [("auto", []), ("fp32", ["--model.frozen_dtype", "fp32"]),
                        ("offload", ["--spin.ref_offload", "true"]),
                        ("offload-fp32", ["--spin.ref_offload", "true", "--model.frozen_dtype", "fp32"])]:
        r = run_ok(args.mpiexec, common + extra + ["--checkpoint.save_dir", os.path.join(tmp, name)], 2)
        held = "the reference held in bf16 alone (model.frozen_dtype = auto)" in r.stdout
        assert held == (not name.endswith("fp32")), (name, r.stdout[-3000:])
        runs[name] = untimed(os.path.join(tmp, name, "metrics.jsonl"))
    auto = runs["auto"]
    assert len(auto) == 12, len(auto)
    for name, m in runs.items():
        assert m == auto, (name, m, auto)
    starts = [m for m in auto if m["step"] in (1, 7)]
    assert len(starts) == 2 and all(abs(m["loss"] - math.log(2)) < 1e-12 for m in starts), starts
    part = os.path.join(tmp, "part")
    run_ok(args.mpiexec, common + ["--checkpoint.save_dir", part, "--spin.max_steps", "9"], 2)
    run_ok(args.mpiexec, common + ["--checkpoint.save_dir", part, "--checkpoint.resume", "true"], 2)
    assert untimed(os.path.join(part, "metrics.jsonl")) == auto
    print("model.frozen_dtype bf16 (auto) = fp32, resident and offloaded: %d steps bitwise; resumed at step 9: bitwise"
          % len(auto))
    lora = os.path.join(tmp, "lora")
    r = run_ok(args.mpiexec, common + ["--checkpoint.save_dir", lora, "--model.frozen_dtype", "bf16", "--lora.rank", "4",
                                       "--lora.alpha", "8", "--optim.lr", "1e-2"], 2)
    assert "the reference, LoRA's base, held in bf16 alone (model.frozen_dtype = bf16)" in r.stdout, r.stdout[-3000:]
    m = untimed(os.path.join(lora, "metrics.jsonl"))
    starts = [x for x in m if x["step"] in (1, 7)]
    assert len(m) == 12 and all(abs(x["loss"] - math.log(2)) < 1e-12 for x in starts), starts
    base = read_safetensors(os.path.join(tmp, "model", "model.safetensors"))
    merged = read_safetensors(os.path.join(lora, "iteration_2", "model.safetensors"))
    assert sorted(base) == sorted(merged), sorted(merged)
    norms = [n for n in base if n.endswith("norm.weight")]
    assert norms and all(merged[n] == base[n] for n in norms), norms
    assert merged["model.layers.0.self_attn.q_proj.weight"] != base["model.layers.0.self_attn.q_proj.weight"]
    print("LoRA over a bf16 base: both iterations from log 2; exported with the norms unchanged")


def case_config(args, tmp):
    config = setup(tmp)
    out = os.path.join(tmp, "out")

    def with_line(section, line):
        path = os.path.join(tmp, "edited.ini")
        text = open(config).read().replace("[%s]\n" % section, "[%s]\n%s\n" % (section, line))
        open(path, "w").write(text)
        return path

    e = lambda name, extra, pattern, cfg=config: expect_error(
        args.mpiexec, name, [args.spin, "train", "--config", cfg] + extra, pattern, 2, os.path.join(out, "metrics.jsonl"))
    e("unknown-key", [], r"edited\.ini: unrecognised option 'spin\.kl_penalti'", with_line("spin", "kl_penalti = 3"))
    e("wrong-type", [], r"edited\.ini: the argument \('two'\) for option 'spin\.max_epochs' is invalid", with_line("spin", "max_epochs = two"))
    # Written by a Windows editor: a UTF-8 byte order mark first and CRLF line ends; read as without them (the mark
    # was "an invalid line '[model]'", itself invisible) -- up to the wrong value planted further on.
    windows = os.path.join(tmp, "windows.ini")
    with open(windows, "wb") as f:
        f.write(b"\xef\xbb\xbf" + open(with_line("spin", "max_epochs = two"), "rb").read().replace(b"\n", b"\r\n"))
    e("windows-ini", [], r"windows\.ini: the argument \('two'\) for option 'spin\.max_epochs' is invalid", windows)
    e("batch-larger-than-data", ["--spin.global_batch_size", "512", "--spin.micro_batch_size", "1"],
      r"spin\.global_batch_size 512 exceeds the \d+ examples of the training data \(\S+\.jsonl: \d+ records ")
    e("wrong-type-override", ["--optim.lr", "fast"], r"the argument \('fast'\) for option '--optim\.lr' is invalid")
    e("unknown-override", ["--spin.itterations", "3"], r"unrecognised option '--spin\.itterations'")
    e("short-lambda-list", ["--spin.max_iterations", "3"], r"kl_penalty lists 2 values for 3 iterations")
    e("pregenerate-without-reuse", ["--spin.pregenerate", "true"], r"spin\.pregenerate .* needs spin\.reuse_generations = true")
    e("missing-config", [], r"nowhere\.ini: cannot open the configuration file", os.path.join(tmp, "nowhere.ini"))
    bad = os.path.join(tmp, "bad.jsonl")
    open(bad, "w").write('{"prompt": "add 1+1=", "response": "2"}\n{"prompt": "x", "response": ""}\n')
    e("empty-response", ["--data.train", bad], r"bad\.jsonl:2: the response is empty")
    e("bad-template", ["--data.template", "zephyr"], r"unknown prompt template \"zephyr\"")
    e("prompt-room", ["--sampling.max_new_tokens", "48"], r"leaves no room for a prompt")
    e("bad-device", ["--parallel.device", "tpu"], r"parallel\.device must be cpu or cuda, got 'tpu'")
    e("bad-precision", ["--model.precision", "fp16"], r"model\.precision must be fp32 or bf16, got 'fp16'")
    # Settings torch.optim would refuse (and eps 0: 0 / 0 for a weight whose gradient stays 0), negative
    # counts that used to mean "off" by accident.
    e("adam-beta", ["--optim.beta1", "1.5"], r"optim\.beta1 and optim\.beta2 must be in \[0, 1\), got 1\.5 and 0\.999")
    e("adam-eps", ["--optim.eps", "0"], r"optim\.eps must be > 0, got 0")
    e("negative-weight-decay", ["--optim.weight_decay", "-1"], r"optim\.weight_decay must not be negative, got -1")
    e("negative-clip", ["--optim.clip_grad", "-1"], r"optim\.clip_grad must not be negative \(0: off\), got -1")
    e("negative-keep-last", ["--checkpoint.keep_last", "-1"], r"checkpoint\.keep_last .* must not be negative")
    # The stage options named as spin train's keys (were --vpp and --pp-layers, spin sft's).
    e("zero-vpp", ["--parallel.vpp", "0"], r"parallel\.vpp 0: a pipeline stage holds at least one model chunk")
    e("pp-layers-sum", ["--parallel.pp_layers", "5"], r"parallel\.pp_layers sums to 5 layers but the model has 2")
    e("negative-seed", ["--sampling.seed", "-1"],  # read unsigned, it was 2^64 - 1 without a word
      r"data\.seed and sampling\.seed must not be negative, got 1234 and -1")
    e("negative-prompt-limit", ["--data.max_prompt_tokens", "-1"], r"data\.max_prompt_tokens .* must not be negative")
    afile = os.path.join(tmp, "afile")
    open(afile, "w").close()
    e("uncreatable-save-dir", ["--checkpoint.save_dir", os.path.join(afile, "out")],
      r"checkpoint\.save_dir \S*afile/out: cannot create the directory \(Not a directory\)")
    e("bad-frozen-dtype", ["--model.frozen_dtype", "fp16"], r"spin train: model\.frozen_dtype must be auto, bf16 or fp32, got 'fp16'")
    e("bad-attention-backend", ["--model.attention_backend", "flash"],
      r"model\.attention_backend must be auto, simt or unfused, got 'flash'")
    e("end-strings-not-a-list", ["--sampling.end_strings", "###"],
      r"sampling\.end_strings must be a JSON list of strings, e\.g\. \[\"###\"\], got ###")
    e("rollout-step-tokens", ["--spin.rollout_step_tokens", "2"],
      r"spin\.rollout_step_tokens = 2 cannot feed the 3 sequences one model call holds \(3 in flight over 1 pipeline")
    e("aux-loss-dense", ["--model.router_aux_loss_coef", "0.01"],
      r"model\.router_aux_loss_coef = 0\.01: .* is not a mixture of experts")
    e("z-loss-dense", ["--model.router_z_loss_coef", "0.001"],
      r"model\.router_z_loss_coef = 0\.001: .* is not a mixture of experts")
    e("z-loss-negative", ["--model.router_z_loss_coef", "-1"], r"model\.router_z_loss_coef must be >= 0, got -1")
    # Non-finite settings: a NaN aux-loss coefficient read as "the config.json's", an infinite learning rate or
    # lambda (inf x the first step's zero margin: a NaN loss), all accepted before.
    e("aux-loss-nan", ["--model.router_aux_loss_coef", "nan"],
      r"model\.router_aux_loss_coef and model\.router_z_loss_coef must be finite, got nan and 0")
    e("infinite-lr", ["--optim.lr", "inf"], r"learning rates: need 0 <= min_lr \(0\) <= lr \(inf\) < infinity")
    e("infinite-lambda", ["--spin.kl_penalty", "1.0, inf"], r"kl_penalty values must be finite and > 0, got inf")
    e("negative-decay-steps", ["--optim.decay_steps", "-5"],
      r"optim\.decay_steps must not be negative \(0: the last step\), got -5")
    e("bias-rate-dense", ["--model.router_bias_update_rate", "0.001"],
      r"model\.router_bias_update_rate = 0\.001: .* has no router correction bias")
    e("bias-rate-negative", ["--model.router_bias_update_rate", "-1"],
      r"model\.router_bias_update_rate must be >= 0, got -1")
    e("negative-logits-chunk", ["--model.logits_chunk_rows", "-1"],
      r"model\.logits_chunk_rows must be 0 \(off\) or positive, got -1")
    e("recompute-layers-alone", ["--model.recompute_num_layers", "1"],
      r"model\.recompute_num_layers must be 0 \(every layer\) or positive, with model\.recompute_activations = true, "
      r"got 1")
    e("bad-loss", ["--spin.loss", "kto"], r"spin\.loss \"kto\" is not sigmoid, hinge or ipo")
    e("negative-sft-weight", ["--spin.sft_loss_weight", "-1"], r"spin\.sft_loss_weight must be >= 0, got -1")
    e("warmup-twice", ["--optim.warmup_steps", "3", "--optim.warmup_ratio", "0.1"],
      r"optim\.warmup_ratio and optim\.warmup_steps are both set")
    e("warmup-ratio", ["--optim.warmup_ratio", "1.5"], r"optim\.warmup_ratio must be in \[0, 1\), got 1\.5")
    # A ratio of 1e300 was cast to steps with undefined behaviour; NaN was read as "no ratio".
    e("wsd-decay-ratio", ["--optim.wsd_decay_ratio", "nan"], r"optim\.wsd_decay_ratio must be in \[0, 1\], got nan")
    e("bad-generations", ["--spin.generations", "model"], r"spin\.generations \"model\" is not reference or data")
    e("generations-no-field", ["--spin.generations", "data"],
      r"train\.jsonl:1: prompt/response text records carry no generated response")
    e("generations-sampler", ["--spin.generations", "data", "--spin.ref_logprobs", "sampler"],
      r"spin\.ref_logprobs = sampler needs the reference's own samples")

    # spin.generations = data: SPIN data set records whose generated answers are all "0".
    spin_data = os.path.join(tmp, "spin_data.jsonl")
    with open(spin_data, "w") as f:
        for line in open(os.path.join(tmp, "data", "train.jsonl")):
            r = json.loads(line)
            user = {"role": "user", "content": r["prompt"]}
            f.write(json.dumps({"real": [user, {"role": "assistant", "content": r["response"]}],
                                "generated": [user, {"role": "assistant", "content": "0"}]}) + "\n")
    given_out = os.path.join(tmp, "given")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--data.train", spin_data, "--data.validation", "",
                          "--spin.generations", "data", "--spin.max_iterations", "1", "--spin.max_steps", "3",
                          "--checkpoint.save_dir", given_out], 2)
    m = metrics(os.path.join(given_out, "metrics.jsonl"))
    assert len(m) == 3 and abs(m[0]["loss"] - math.log(2)) < 1e-6, m[0]
    assert all(s["generated_length_mean"] == 2.0 and s["generated_length_max"] == 2.0 for s in m), m
    print("spin.generations = data: 3 steps on the given answers ('0' + EOS: 2 tokens each)")
    # The same records in a layout of no known shape, read by data.columns: the same run, metric for metric.
    columns_data, columns_out = os.path.join(tmp, "columns.jsonl"), os.path.join(tmp, "columns")
    with open(columns_data, "w") as f:
        for line in open(os.path.join(tmp, "data", "train.jsonl")):
            r = json.loads(line)
            f.write(json.dumps({"q": r["prompt"], "a": r["response"], "g": "0", "id": 1}) + "\n")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--data.train", columns_data, "--data.validation", "",
                          "--data.columns", "q,a,g", "--spin.generations", "data", "--spin.max_iterations", "1",
                          "--spin.max_steps", "3", "--checkpoint.save_dir", columns_out], 2)
    assert untimed(os.path.join(columns_out, "metrics.jsonl")) == untimed(os.path.join(given_out, "metrics.jsonl"))
    print("data.columns = q,a,g: the same 3 steps as the SPIN data set's records")
    e("bad-columns", ["--data.columns", "q"], r"data\.columns must be PROMPT,RESPONSE or PROMPT,RESPONSE,GENERATED")
    with open(spin_data, "a") as f:
        f.write(json.dumps({"real": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}) + "\n")
    e("generations-missing", ["--spin.generations", "data", "--data.train", spin_data],
      r"spin_data\.jsonl:49: no \"generated\" response")
    e("hinge-smoothing", ["--spin.loss", "hinge", "--spin.label_smoothing", "0.1"],
      r"spin\.label_smoothing applies to the sigmoid loss only, not hinge")


def case_signal(args, tmp):
    config = setup(tmp)
    pp2 = ["--parallel.pp", "2"]
    whole = os.path.join(tmp, "whole")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", whole] + pp2, 2)
    out = os.path.join(tmp, "signalled")
    cmd = [args.spin, "train", "--config", config, "--checkpoint.save_dir", out] + pp2
    r = run(args.mpiexec, cmd, 2, fault="signal-after-step@4")  # SIGUSR1 raised in rank 1 after step 4
    assert r.returncode == REQUEUE, (r.returncode, r.stdout, r.stderr)
    assert "stopped by a signal on another rank after step 4" in r.stdout, r.stdout
    assert open(os.path.join(out, "latest")).read().strip() == "step_00000004"
    assert not [l for l in r.stderr.splitlines() if l.startswith("spin: error")], r.stderr
    # A fresh start into the stopped run's save_dir would write over its checkpoints and metrics:
    # refused, nothing there touched (and the resume below still ends bitwise).
    before = tree_state(out)
    expect_error(args.mpiexec, "earlier-run-in-save-dir", cmd,
                 r"checkpoint.save_dir \S*signalled holds an earlier run's checkpoints \(latest: "
                 r"\S*signalled/step_00000004\), which this run would write over: continue that run "
                 r"\(checkpoint.resume = true", 2, None)
    assert tree_state(out) == before
    run_ok(args.mpiexec, cmd + ["--checkpoint.resume", "true"], 2)
    assert untimed(os.path.join(out, "metrics.jsonl")) == untimed(os.path.join(whole, "metrics.jsonl"))
    for it in (1, 2):
        a = open(os.path.join(out, "iteration_%d" % it, "model.safetensors"), "rb").read()
        assert a == open(os.path.join(whole, "iteration_%d" % it, "model.safetensors"), "rb").read(), it
    print("SIGUSR1 in rank 1 after step 4: exit %d, checkpoint step 4; resumed: bitwise the uninterrupted run" % REQUEUE)

    # checkpoint.async_save: checkpoints every 2 steps written in the background while training
    # goes on change nothing in the run, and one written while steps 3 and 4 ran holds step 2
    # exactly: resumed from it, the run ends bitwise as the uninterrupted one.
    asyn = os.path.join(tmp, "async")
    # Each background write starts 1 s late: steps ran meanwhile.
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", asyn,
                          "--checkpoint.async_save", "true", "--checkpoint.save_interval", "2"] + pp2, 2,
           fault="async-save-delay")
    assert untimed(os.path.join(asyn, "metrics.jsonl")) == untimed(os.path.join(whole, "metrics.jsonl"))
    assert os.path.exists(os.path.join(asyn, "step_00000002", "index.h5"))
    again = os.path.join(tmp, "async-resumed")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", again,
                          "--checkpoint.load", os.path.join(asyn, "step_00000002")] + pp2, 2)
    assert untimed(os.path.join(again, "metrics.jsonl")) == [m for m in untimed(os.path.join(whole, "metrics.jsonl"))
                                                              if m["step"] > 2]
    for it in (1, 2):
        a = open(os.path.join(again, "iteration_%d" % it, "model.safetensors"), "rb").read()
        assert a == open(os.path.join(whole, "iteration_%d" % it, "model.safetensors"), "rb").read(), it
    print("checkpoint.async_save: the run unchanged; resumed from the background-written step 2: bitwise")
    # A background write that fails (rank 1's, injected) is one error at the commit, every rank
    # exits non-zero, and nothing is committed.
    failing = os.path.join(tmp, "async-failing")
    r = run(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", failing,
                           "--checkpoint.load", os.path.join(out, "step_00000004"), "--checkpoint.async_save",
                           "true", "--checkpoint.save_interval", "2"] + pp2, 2, fault="async-save-fail")
    errors = [l for l in r.stderr.splitlines() if l.startswith("spin: error")]
    assert r.returncode != 0 and len(errors) == 1, (r.returncode, r.stderr)
    assert re.search(r"rank 1: .*step_00000006: shard_\S+\.h5: write failed", errors[0]), errors
    committed = [f for f in os.listdir(failing) if f == "latest" or (f.startswith("step_") and not f.endswith(".tmp"))]
    assert not committed, committed
    print("a failing background write: one error line, exit %d, nothing committed" % r.returncode)

    # TensorBoard events, read back by an independent parser, hold the metrics.jsonl values
    # (as float32) -- for the resumed run across its two event files, and again after the
    # finished run is restarted from step 4 (checkpoint.load within its own save_dir: allowed) and
    # stopped at step 8: the third file's SessionLog
    # START drops the first run's steps 5..12, and only 5..8 are redone.
    for d in (whole, out):
        assert tb.scalars(os.path.join(d, "tensorboard")) == tb.expected_from_jsonl(metrics(os.path.join(d, "metrics.jsonl"))), d
    run_ok(args.mpiexec, cmd + ["--checkpoint.load", os.path.join(out, "step_00000004"), "--spin.max_steps", "8"], 2)
    files = os.listdir(os.path.join(out, "tensorboard"))
    assert len(files) == 3, files
    redone = untimed(os.path.join(out, "metrics.jsonl"))
    assert redone == [m for m in untimed(os.path.join(whole, "metrics.jsonl")) if m["step"] <= 8], redone
    shown = tb.scalars(os.path.join(out, "tensorboard"))
    assert shown == tb.expected_from_jsonl(metrics(os.path.join(out, "metrics.jsonl")))
    print("TensorBoard: %d scalars in 3 event files match metrics.jsonl after resume and restart" % len(shown))

    # Real deliveries to a running job: SIGUSR1 to mpirun, SIGTERM to one rank.
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OPENBLAS_NUM_THREADS="1")
    for name, target in [("usr1-to-mpirun", "mpirun"), ("term-to-a-rank", "rank")]:
        out = os.path.join(tmp, name)
        long_run = [args.mpiexec, "-n", "2", "--oversubscribe", args.spin, "train", "--config", config,
                    "--checkpoint.save_dir", out, "--spin.max_iterations", "30", "--spin.kl_penalty", "1"] + pp2
        p = subprocess.Popen(long_run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        log = os.path.join(out, "metrics.jsonl")
        deadline = time.time() + TIMEOUT
        while not (os.path.exists(log) and open(log).read().count("\n") >= 2) and p.poll() is None:
            assert time.time() < deadline, "no progress"
            time.sleep(0.01)
        if target == "mpirun":
            p.send_signal(signal.SIGUSR1)
        else:
            ranks = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
            ranks = [q for q in ranks if open("/proc/%s/comm" % q).read().strip() == "spin"]
            assert ranks, "no rank found"
            os.kill(int(ranks[-1]), signal.SIGTERM)
        try:
            stdout, stderr = p.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            sys.exit("FAIL: %s: the job did not stop (a hang)" % name)
        assert p.returncode == REQUEUE, (name, p.returncode, stdout[-2000:], stderr[-2000:])
        step = int(open(os.path.join(out, "latest")).read().strip()[5:])
        assert 2 <= step < 180, step
        assert "stopped by" in stdout and "after step %d" % step in stdout, stdout[-1000:]
        print("%s: stopped at step %d of 180 with exit %d" % (name, step, REQUEUE))


def case_time_limit(args, tmp):
    """checkpoint.exit_duration_mins: past the limit (~0 here) a run saves a checkpoint at the next
    step boundary and exits 75 -- after one step of its own, so that a requeued job always moves
    on; requeued until done, the runs write the uninterrupted run's metrics and model bitwise."""
    config = setup(tmp)
    common = [args.spin, "train", "--config", config, "--data.validation", "", "--spin.max_iterations", "1",
              "--spin.kl_penalty", "1.0"]
    whole, timed = os.path.join(tmp, "whole"), os.path.join(tmp, "timed")
    run_ok(args.mpiexec, common + ["--checkpoint.save_dir", whole], 2)
    runs = run_requeued(args.mpiexec, common + ["--checkpoint.save_dir", timed, "--checkpoint.resume", "true",
                                                "--checkpoint.exit_duration_mins", "1e-9"], 2,
                        lambda k: "stopped by the time limit (checkpoint.exit_duration_mins = 1e-09 min) after step "
                                  "%d;" % k, 10)
    assert runs == 6, runs
    assert untimed(os.path.join(timed, "metrics.jsonl")) == untimed(os.path.join(whole, "metrics.jsonl"))
    assert (open(os.path.join(timed, "iteration_1", "model.safetensors"), "rb").read() ==
            open(os.path.join(whole, "iteration_1", "model.safetensors"), "rb").read())
    expect_error(args.mpiexec, "negative-time-limit",
                 common + ["--checkpoint.save_dir", os.path.join(tmp, "bad"), "--checkpoint.exit_duration_mins", "-1"],
                 r"checkpoint\.exit_duration_mins must be a number of minutes >= 0 \(0: no limit\), got -1", 2,
                 os.path.join(tmp, "bad", "metrics.jsonl"))
    print("checkpoint.exit_duration_mins ~0: 6 runs of one step each (exit 75, then 0): the uninterrupted metrics "
          "and model, bitwise")
    # parallel.distributed_timeout_minutes: rank 1 hangs after step 2, waiting on nothing (as a rank stuck in a kernel
    # or on a lost node would); rank 0, waiting on it in the next collective, ends after the timeout (3 s here) with
    # one error line naming the wait, and mpirun stops rank 1: the job exits non-zero within seconds instead of
    # holding its machines to the time limit.
    hung = os.path.join(tmp, "hung")
    started = time.time()
    r = run(args.mpiexec, common + ["--checkpoint.save_dir", hung, "--parallel.distributed_timeout_minutes", "0.05"], 2,
            fault="hang-signal-after-step@2")
    elapsed = time.time() - started
    errors = [l for l in r.stderr.splitlines() if l.startswith("spin: error")]
    assert r.returncode != 0 and len(errors) == 1, (r.returncode, r.stdout, r.stderr)
    assert re.search(r"^spin: error: rank 0: MPI_\w+ .*over a group of 2 ranks has not returned after \d+ s: a rank "
                     r"it waits on stopped or hangs .*\(parallel\.distributed_timeout_minutes = 0\.05; 0 turns this off\)$",
                     errors[0]), errors
    assert elapsed < 60, elapsed
    assert max(m["step"] for m in metrics(os.path.join(hung, "metrics.jsonl"))) == 2  # the steps before the hang
    expect_error(args.mpiexec, "negative-timeout",
                 common + ["--checkpoint.save_dir", os.path.join(tmp, "bad"), "--parallel.distributed_timeout_minutes",
                           "-1"],
                 r"parallel\.distributed_timeout_minutes must be >= 0 \(0: no timeout\), got -1", 2,
                 os.path.join(tmp, "bad", "metrics.jsonl"))
    print("parallel.distributed_timeout_minutes 0.05 with rank 1 hung after step 2: %s (%.0f s)" % (errors[0], elapsed))


def case_rmsprop(args, tmp):
    """optim.name = rmsprop (the SPIN code's optimizer) at DP 2 with the distributed optimizer:
    stopped at step 4 and resumed, the run ends bitwise as the uninterrupted one; it is not
    AdamW's run; a checkpoint of the other optimizer is refused by name."""
    config = setup(tmp)
    common = [args.spin, "train", "--config", config, "--data.validation", "", "--spin.max_iterations", "1",
              "--spin.kl_penalty", "1.0", "--optim.distributed_optimizer", "true"]
    rms = common + ["--optim.name", "rmsprop", "--optim.weight_decay", "0.01"]
    whole, part, adamw = (os.path.join(tmp, d) for d in ("whole", "part", "adamw"))
    run_ok(args.mpiexec, rms + ["--checkpoint.save_dir", whole], 2)
    run_ok(args.mpiexec, rms + ["--checkpoint.save_dir", part, "--spin.max_steps", "4"], 2)
    run_ok(args.mpiexec, rms + ["--checkpoint.save_dir", part, "--checkpoint.resume", "true"], 2)
    a = untimed(os.path.join(whole, "metrics.jsonl"))
    assert untimed(os.path.join(part, "metrics.jsonl")) == a
    assert (open(os.path.join(part, "iteration_1", "model.safetensors"), "rb").read() ==
            open(os.path.join(whole, "iteration_1", "model.safetensors"), "rb").read())
    run_ok(args.mpiexec, common + ["--optim.weight_decay", "0.01", "--checkpoint.save_dir", adamw], 2)
    b = untimed(os.path.join(adamw, "metrics.jsonl"))
    assert a[0]["loss"] == b[0]["loss"] and a[1]["loss"] != b[1]["loss"], (a[:2], b[:2])
    expect_error(args.mpiexec, "other-optimizer", common + ["--checkpoint.save_dir", part, "--checkpoint.resume", "true"],
                 r"step_0*6 holds the state of optimizer rmsprop, not of this run's adamw", 2, None)
    expect_error(args.mpiexec, "bad-optimizer", common + ["--checkpoint.save_dir", os.path.join(tmp, "bad"),
                                                          "--optim.name", "sgd"],
                 r"optim\.name \"sgd\" is not adamw or rmsprop", 2, os.path.join(tmp, "bad", "metrics.jsonl"))
    print("optim.name = rmsprop at DP 2, ZeRO-1: resumed at step 4 bitwise; not AdamW's run; the other optimizer's "
          "checkpoint refused")


def one_f_one_b(stage, stages, micro_batches):
    """The order stage `stage` of `stages` runs forwards (F) and backwards (B) under 1F1B
    (Megatron's forward_backward_pipelining_without_interleaving), written out independently."""
    warmup = min(stages - stage - 1, micro_batches)
    order = [("F", i) for i in range(warmup)]
    for i in range(micro_batches - warmup):
        order += [("F", warmup + i), ("B", i)]
    return order + [("B", i) for i in range(micro_batches - warmup, micro_batches)]


def case_profile(args, tmp):
    config = setup(tmp)
    out = os.path.join(tmp, "out")
    # 8 prompts a step in micro-batches of 2: 4 micro-batches on each of the 2 stages.
    r = run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", out, "--parallel.pp", "2",
                              "--spin.max_iterations", "1", "--logging.profile_step_start", "2",
                              "--logging.profile_step_end", "3"], 2)
    # Every step's log line ends with the time left at the run's pace; none after the last.
    etas = [re.search(r"\| eta (\d+s|\d+m\d\ds|\d+h\d\dm)$", l) for l in r.stdout.splitlines() if l.startswith("iter ")]
    assert len(etas) == 6 and all(etas) and etas[-1].group(1) == "0s", r.stdout[-1500:]
    for stage in (0, 1):
        trace = json.load(open(os.path.join(out, "profile", "rank%d.json" % stage)))
        events = sorted((e for e in trace["traceEvents"] if e["ph"] == "X"), key=lambda e: (e["ts"], -e["dur"]))
        assert all(e["dur"] >= 0 and e["tid"] == 0 for e in events), stage
        steps = [e for e in events if e["name"] == "step"]
        assert [e["args"]["step"] for e in steps] == [2, 3], steps
        # Ranges nest: each lies inside the innermost open range that it starts in (3 decimals of us).
        stack = []
        for e in events:
            while stack and e["ts"] >= stack[-1]["ts"] + stack[-1]["dur"] - 1e-3:
                stack.pop()
            if stack:
                assert e["ts"] + e["dur"] <= stack[-1]["ts"] + stack[-1]["dur"] + 2e-3, (stage, e, stack[-1])
            e["parent"] = stack[-1]["name"] if stack else None
            stack.append(e)
        assert all(e["parent"] is None for e in steps)
        inside = lambda outer, name: [e for e in events if e["name"] == name and outer["ts"] <= e["ts"] < outer["ts"] + outer["dur"]]
        for s in steps:
            for part in ("generation", "reference", "policy"):
                assert len(inside(s, part)) == 1, (stage, s["args"], part)
            reference, policy = inside(s, "reference")[0], inside(s, "policy")[0]
            assert inside(s, "generation")[0]["ts"] < reference["ts"] < policy["ts"], s
            assert inside(inside(s, "generation")[0], "model call"), "the reference generates"
            kind = lambda e: "F" if e["name"] == "forward" else "B"
            work = lambda outer: [(kind(e), e["args"]["mb"]) for e in events if e["name"] in ("forward", "backward")
                                  and outer["ts"] <= e["ts"] < outer["ts"] + outer["dur"]]
            assert work(reference) == [("F", mb) for mb in range(4)], (stage, work(reference))
            pipeline = inside(policy, "1F1B")
            assert len(pipeline) == 1 and pipeline[0]["args"]["micro_batches"] == 4, pipeline
            assert work(pipeline[0]) == one_f_one_b(stage, 2, 4), (stage, work(pipeline[0]))
            assert inside(policy, "optimizer") and inside(policy, "p2p"), "the optimizer and the stage's messages"
    # jobs/profile_summary.py's figures add up.
    merged = os.path.join(tmp, "merged.json")
    summary = subprocess.run([sys.executable, os.path.join(ROOT, "jobs", "profile_summary.py"), os.path.join(out, "profile"),
                              "--json", "--merge", merged], check=True, capture_output=True, text=True).stdout
    both = json.load(open(merged))["traceEvents"]
    assert sorted({e["pid"] for e in both}) == [0, 1], "one process per rank"
    assert len([e for e in both if e["name"] == "step"]) == 4 and \
        len([e for e in both if e["name"] == "process_name"]) == 2, "every rank's ranges and names"
    for rank, f in json.loads(summary).items():
        assert f["steps"] == 2 and f["1F1B"] > 0, (rank, f)
        assert f["generation"] + f["reference"] + f["policy"] <= f["step"] * 1.001, (rank, f)
        assert f["compute"] + f["p2p"] <= f["1F1B"] * 1.001 and f["1F1B"] + f["optimizer"] <= f["policy"] * 1.001, (rank, f)
        assert 0 <= f["bubble"] < 1 and f["reduction"] <= f["optimizer"] * 1.001, (rank, f)
    expect_error(args.mpiexec, "profile-window", [args.spin, "train", "--config", config, "--logging.profile_step_start", "3",
                                                   "--logging.profile_step_end", "2"],
                 r"logging\.profile_step_start \(3\) \.\. logging\.profile_step_end \(2\) is no window of steps", 2,
                 os.path.join(tmp, "nothing"))
    print("logging.profile_step_start 2 .. end 3 at PP 2: per rank a Chrome trace of exactly steps 2 and 3, ranges nested, "
          "reference forwards in order and the policy's forwards and backwards in 1F1B order; an empty window refused")


def case_interleaved(args, tmp):
    config = setup(tmp, layers=4)
    one, vpp = os.path.join(tmp, "one"), os.path.join(tmp, "vpp")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", one], 1)
    r = run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", vpp, "--parallel.pp",
                              "2", "--parallel.vpp", "2", "--optim.distributed_optimizer", "true"], 4)
    assert "layout tp 1 x pp 2 (2 chunks a stage) x dp 2" in r.stdout, r.stdout[-2000:]
    a, b = metrics(os.path.join(one, "metrics.jsonl")), metrics(os.path.join(vpp, "metrics.jsonl"))
    assert_close_runs(a, b)
    assert all(x["generated_length_mean"] == y["generated_length_mean"] for x, y in zip(a, b)), "other responses"
    wa = read_safetensors(os.path.join(one, "iteration_2", "model.safetensors"))
    assert_close_weights(wa, read_safetensors(os.path.join(vpp, "iteration_2", "model.safetensors")))
    print("PP 2 x 2 chunks x DP 2: %d metric lines, the responses and the weights of 1 rank" % len(a))
    # Stopped by SIGUSR1 after step 3 (a checkpoint of interleaved stages, ZeRO-1's moments among it),
    # resumed on one rank: the uninterrupted run's metrics and weights.
    stopped = os.path.join(tmp, "stopped")
    base = [args.spin, "train", "--config", config, "--checkpoint.save_dir", stopped]
    s = run(args.mpiexec, base + ["--parallel.pp", "2", "--parallel.vpp", "2", "--optim.distributed_optimizer", "true"],
            4, fault="signal-after-step@3")
    assert s.returncode == REQUEUE and open(os.path.join(stopped, "latest")).read().strip() == "step_00000003", (
        s.returncode, s.stdout[-2000:], s.stderr[-2000:])
    run_ok(args.mpiexec, base + ["--checkpoint.resume", "true"], 1)
    assert_close_runs(a, metrics(os.path.join(stopped, "metrics.jsonl")))
    assert_close_weights(wa, read_safetensors(os.path.join(stopped, "iteration_2", "model.safetensors")))
    print("stopped after step 3 at PP 2 x 2 chunks x DP 2, resumed on 1 rank: the uninterrupted run")
    # Micro-batches cut by tokens, split into whole groups of the 2 stages: the 1-rank run's figures
    # (this run's exchanges between stages waited for at once: parallel.overlap_p2p_comm false).
    by_tokens = os.path.join(tmp, "by_tokens")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", by_tokens, "--parallel.pp",
                          "2", "--parallel.vpp", "2", "--spin.micro_batch_size", "4", "--spin.micro_batch_tokens",
                          "80", "--parallel.overlap_p2p_comm", "false"], 4)
    c = metrics(os.path.join(by_tokens, "metrics.jsonl"))
    assert_close_runs(a, c)
    assert all(m["micro_batches"] % 2 == 0 for m in c if m["kind"] == "train"), c  # whole groups on each replica
    assert_close_weights(wa, read_safetensors(os.path.join(by_tokens, "iteration_2", "model.safetensors")))
    print("by tokens at PP 2 x 2 chunks x DP 2: %s micro-batches a step; the 1-rank run" %
          [m["micro_batches"] for m in c if m["kind"] == "train"])
    # Refused: fewer micro-batches a step than the 2 stages.
    out = os.path.join(tmp, "refused")
    expect_error(args.mpiexec, "vpp-micro-batches",
                 [args.spin, "train", "--config", config, "--checkpoint.save_dir", out, "--parallel.pp", "2",
                  "--parallel.vpp", "2", "--spin.micro_batch_size", "4"],
                 r"parallel.vpp = 2: the interleaved schedule trains at least one micro-batch a pipeline stage, 2 a "
                 r"step, but each data-parallel rank has 1 micro-batches a step", 4, out)


def case_balanced(args, tmp):
    # Hidden 8 under the byte vocabulary's 259: the head 3.6 layers' training work at the 32 tokens
    # the limits allow (a layer's attention grows with the sequence, the head's work does not), a
    # fraction of one at 4,096. The even split's last stage runs 2 layers and the head (5.6 layers'
    # work), balanced's 1 and the head beside stage 0's 3: 23.2% off the slowest stage.
    config = setup(tmp, layers=4, hidden=8, heads=2, kv_heads=1, positions=4096)
    limits = ["--data.max_prompt_tokens", "16", "--data.max_response_tokens", "16"]

    def train(name, ranks, *extra):
        out = os.path.join(tmp, name)
        r = run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", out] + list(extra),
                   ranks)
        return r, metrics(os.path.join(out, "metrics.jsonl")), read_safetensors(
            os.path.join(out, "iteration_2", "model.safetensors"))

    _, a, wa = train("one", 1, *limits)
    even, b, wb = train("even", 2, "--parallel.pp", "2", *limits)
    assert "spin train: pipeline balance: parallel.pp_layers = balanced (3,1) would take 23.2% off the slowest " \
           "stage's work (the LM head's among it)" in even.stdout, even.stdout[-3000:]
    bal, c, wc = train("balanced", 2, "--parallel.pp", "2", "--parallel.pp_layers", "balanced", *limits)
    assert "spin train: parallel.pp_layers = balanced: 3,1 layers a stage" in bal.stdout, bal.stdout[-3000:]
    assert "pipeline balance" not in bal.stdout, bal.stdout[-3000:]
    for got, weights in ((b, wb), (c, wc)):
        assert_close_runs(a, got)
        assert_close_weights(wa, weights)
    print("PP 2 even (2,2; its hint 23.2%%) and balanced (3,1): %d metric lines and the weights of 1 rank" % len(a))
    # Without both limits the layers are weighed at the positions, 4,096 tokens: the even split.
    unlimited, _, _ = train("unlimited", 2, "--parallel.pp", "2", "--parallel.pp_layers", "balanced")
    assert "spin train: parallel.pp_layers = balanced: 2,2 layers a stage" in unlimited.stdout, \
        unlimited.stdout[-3000:]
    # A pair trains the real response and a generated one: real responses of 8 tokens at most beside
    # generated ones of 30 weigh the layers at 16 + 30 tokens, as real ones of 30 do -- not at 16 + 8.
    def hint(name, *response):
        r, _, _ = train(name, 2, "--parallel.pp", "2", "--data.max_prompt_tokens", "16", *response)
        return re.search(r"pipeline balance: .*", r.stdout).group(0)

    generated = hint("generated", "--data.max_response_tokens", "8", "--sampling.max_new_tokens", "30")
    assert generated == hint("real", "--data.max_response_tokens", "30") != hint("short", "--data.max_response_tokens",
                                                                                  "8"), generated


def main():
    run_case(__doc__, {"layouts": case_layouts, "interleaved": case_interleaved, "config": case_config,
                       "frozen": case_frozen, "signal": case_signal,
                       "time_limit": case_time_limit, "rmsprop": case_rmsprop, "profile": case_profile,
                       "balanced": case_balanced},
             "spin_train_")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""End-to-end checks of `spin train`, one case per CTest test:

  layouts     the same SPIN run (text data, byte tokenizer) on 1 rank and on TP 2 x PP 2 writes
              the same metrics and the same final weights; the first step of each iteration has
              loss log 2 and zero rewards; --spin.ref_logprobs sampler runs
  config      unknown keys, values of the wrong type, a lambda list shorter than the iterations,
              a missing required key, bad data: one error line naming the key or file:line
  signal      SIGUSR1 on one rank mid-run: every rank stops at the next step, a checkpoint is
              saved, the job exits 75 (requeue); resumed, the run ends bitwise where an
              uninterrupted one ends. SIGUSR1 to mpirun (forwarded) and SIGTERM to one rank of a
              running job do the same. TensorBoard event files, read by an independent parser
              (tensorboard_events.py), hold the metrics.jsonl values across resumes. With
              checkpoint.async_save the run is unchanged and resumes bitwise from a checkpoint
              written in the background.
  hf_tokenizer  a model with a byte-level BPE tokenizer.json and the llama3 template trains, and
              its exported iteration carries the tokenizer files
  offline     spin generate --spin-data's greedy answers to the training set, trained on with
              spin.generations = data: the metrics of the run that generates them itself
  reset       optim.reset_each_iteration: the second iteration trains as a new run started from
              the first iteration's exported model
  save_generations  spin.save_generations: the iteration's responses exported as SPIN records;
              trained on offline, the online iteration's metrics
  rmsprop     optim.name = rmsprop with ZeRO-1: resumed bitwise; not AdamW's run; the other
              optimizer's checkpoint refused
  time_limit  checkpoint.exit_duration_mins: one step a run, requeued until done: the
              uninterrupted run, bitwise
  mix         spin.mix_previous_iteration: the second iteration trains on both iterations'
              responses (twice the steps), resumes bitwise from checkpoints at and past the first
              iteration's end, and schedules each iteration's own steps
  lora        lora.rank: the same metrics on 1 rank and at TP 2 x PP 2 (sequence parallel); each
              iteration starts at loss log 2 after the merge; stopped and resumed, bitwise; a
              checkpoint's policy is its reference plus a change of rank <= lora.rank in the adapted
              projections alone, and its adapters exported for PEFT, given as model.adapter over
              the reference, start a run as the policy does; a full run's checkpoint and
              ref_offload refused
  lora_dropout  lora.dropout on every projection: 1 rank = TP 2 x PP 2 (sequence parallel), the
              masks acting (other gradients and losses than without dropout) though an iteration's first
              loss is log 2;
              stopped and resumed, bitwise; PEFT's lora_dropout exported; a dropout of 1 refused
  profile     logging.profile_step_start..end at PP 2: each rank's Chrome trace holds exactly the
              window's steps, properly nested ranges, and, per step, the reference's forwards in
              order and the policy's forwards and backwards in 1F1B order for its stage
"""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import tensorboard_events as tb
from e2e_common import (REQUEUE, expect_error, matrix_rank, multimodal_checkpoint, hf_tokenizer_model, read_safetensors,
                        run, run_case, run_ok, run_requeued, TIMEOUT)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")


def setup(tmp):
    """A tiny byte-level model and a small text task."""
    subprocess.run([sys.executable, os.path.join(ROOT, "jobs", "demo", "make_task.py"), os.path.join(tmp, "data"),
                    "--train", "48", "--validation", "8", "--test", "4"], check=True, capture_output=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "data", "make_tiny_model.py"), os.path.join(tmp, "model"),
                    "--vocab", "259", "--hidden", "32", "--intermediate", "64", "--layers", "2", "--heads", "4",
                    "--kv-heads", "2", "--max-positions", "48", "--byte-tokenizer"], check=True, capture_output=True)
    config = os.path.join(tmp, "spin.ini")
    with open(config, "w") as f:
        f.write("""[model]
path = %(tmp)s/model
[data]
train = %(tmp)s/data/train.jsonl
validation = %(tmp)s/data/validation.jsonl
template = plain
[spin]
kl_penalty = 1.0, 2.0
max_iterations = 2
global_batch_size = 8
micro_batch_size = 2
rollout_batch_size = 3
[optim]
lr = 3e-3
[sampling]
max_new_tokens = 10
top_p = 0.95
[checkpoint]
save_dir = %(tmp)s/out
""" % {"tmp": tmp})
    return config


def metrics(path):
    return [json.loads(l) for l in open(path)]


def case_layouts(args, tmp):
    config = setup(tmp)
    out1, out4 = os.path.join(tmp, "one"), os.path.join(tmp, "four")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", out1], 1)
    r4 = run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", out4,
                               "--parallel.tp", "2", "--parallel.pp", "2", "--logging.peak_tflops", "0.5"], 4)
    a, b = metrics(os.path.join(out1, "metrics.jsonl")), metrics(os.path.join(out4, "metrics.jsonl"))
    assert len(a) == len(b) == 14, (len(a), len(b))  # 2 x 6 steps + 2 validations
    for x, y in zip(a, b):
        for key in ["loss", "rewards_actual", "rewards_generated", "accuracy", "generated_length_mean"]:
            assert abs(x[key] - y[key]) <= 1e-5 * max(1.0, abs(x[key])), (key, x, y)
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
    for name in wa:
        num = sum((p - q) ** 2 for p, q in zip(wa[name], wb[name]))
        den = sum(q * q for q in wa[name])
        assert math.sqrt(num / den) < 1e-5, name
    assert os.path.exists(os.path.join(out4, "iteration_2", "byte_tokenizer.json"))
    assert "[spin]" in open(os.path.join(out4, "config.ini")).read()
    print("1 rank and TP 2 x PP 2: %d metric lines and %d tensors agree" % (len(a), len(wa)))
    # model.sequence_parallel: the rows split between the TP regions -- the same run up to the
    # rounding of the norms' weight gradients (summed per rank, then over ranks).
    sp = os.path.join(tmp, "sequence_parallel")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", sp,
                          "--parallel.tp", "2", "--parallel.pp", "2", "--model.sequence_parallel", "true"], 4)
    c = metrics(os.path.join(sp, "metrics.jsonl"))
    assert len(c) == len(b), (len(c), len(b))
    for x, y in zip(b, c):
        for key in ["loss", "rewards_actual", "rewards_generated", "accuracy", "generated_length_mean"]:
            assert abs(x[key] - y[key]) <= 1e-5 * max(1.0, abs(x[key])), (key, x, y)
    wc = read_safetensors(os.path.join(sp, "iteration_2", "model.safetensors"))
    for name in wb:
        num = sum((p - q) ** 2 for p, q in zip(wb[name], wc[name]))
        den = sum(q * q for q in wb[name])
        assert math.sqrt(num / den) < 1e-5, name
    assert "sequence_parallel = true" in open(os.path.join(sp, "config.ini")).read()
    print("model.sequence_parallel at TP 2 x PP 2: metrics and weights agree with the run without")
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
    e("bad-attention-backend", ["--model.attention_backend", "flash"],
      r"model\.attention_backend must be auto, simt or unfused, got 'flash'")
    e("end-strings-not-a-list", ["--sampling.end_strings", "###"],
      r"sampling\.end_strings must be a JSON list of strings, e\.g\. \[\"###\"\], got ###")
    e("rollout-step-tokens", ["--spin.rollout_step_tokens", "2"],
      r"spin\.rollout_step_tokens = 2 cannot feed the 3 sequences one model call holds \(3 in flight over 1 pipeline")
    e("negative-logits-chunk", ["--model.logits_chunk_rows", "-1"],
      r"model\.logits_chunk_rows must be 0 \(off\) or positive, got -1")
    e("bad-loss", ["--spin.loss", "kto"], r"spin\.loss \"kto\" is not sigmoid, hinge or ipo")
    e("negative-sft-weight", ["--spin.sft_loss_weight", "-1"], r"spin\.sft_loss_weight must be >= 0, got -1")
    e("warmup-twice", ["--optim.warmup_steps", "3", "--optim.warmup_ratio", "0.1"],
      r"optim\.warmup_ratio and optim\.warmup_steps are both set")
    e("warmup-ratio", ["--optim.warmup_ratio", "1.5"], r"optim\.warmup_ratio must be in \[0, 1\), got 1\.5")
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
    with open(spin_data, "a") as f:
        f.write(json.dumps({"real": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}) + "\n")
    e("generations-missing", ["--spin.generations", "data", "--data.train", spin_data],
      r"spin_data\.jsonl:49: no \"generated\" response")
    e("hinge-smoothing", ["--spin.loss", "hinge", "--spin.label_smoothing", "0.1"],
      r"spin\.label_smoothing applies to the sigmoid loss only, not hinge")


# Fields of the process's own work, not of the run: times and rates, and generated_tokens (a
# process resumed past the first epoch of spin.reuse_generations without the cache replays it).
TIMINGS = {"tokens_per_second", "tflops_per_rank", "mfu", "generation_tokens_per_second", "seconds_generation",
           "seconds_reference", "seconds_training", "generated_tokens"}


def untimed(path):
    return [{k: v for k, v in m.items() if k not in TIMINGS} for m in metrics(path)]


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
    # finished run is restarted from step 4 and stopped at step 8: the third file's SessionLog
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


def train_family(args, config, tmp, kind, trained, template=None):
    """A tiny model of `kind` with its tokenizer (hf_tokenizer_model) trained 6 SPIN steps at TP 2
    in bf16 with data.template auto: `template` (by default the one named after it) is chosen,
    responses are generated, the first loss is log 2 (policy = reference), every loss finite, the
    tensor `trained` moves and the exported model has the original's tensors. Returns the
    exported tensors and the run's folder."""
    shutil.rmtree(os.path.join(tmp, "model"))
    hf_tokenizer_model(os.path.join(tmp, "model"), kind=kind)
    out = os.path.join(tmp, kind)
    r = run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", out, "--data.template",
                              "auto", "--spin.max_iterations", "1", "--parallel.tp", "2", "--model.precision", "bf16"], 2)
    assert "prompt template %s (data.template = auto)" % (template or kind) in r.stdout, r.stdout[:2000]
    m = [x for x in metrics(os.path.join(out, "metrics.jsonl")) if x["kind"] == "train"]
    assert len(m) == 6 and m[0]["generated_length_mean"] > 0 and all(math.isfinite(x["loss"]) for x in m), m
    assert abs(m[0]["loss"] - math.log(2)) < 1e-6, m[0]
    before = read_safetensors(os.path.join(tmp, "model", "model.safetensors"))
    after = read_safetensors(os.path.join(out, "iteration_1", "model.safetensors"))
    assert sorted(before) == sorted(after), sorted(after)
    assert before[trained] != after[trained], trained
    return after, out


def case_hf_tokenizer(args, tmp):
    """A model with a Hugging Face byte-level BPE tokenizer.json (the Llama-3-style test
    tokenizer) and the llama3 chat template, which data.template = auto picks for it: spin train
    tokenizes, generates until <|eot_id|>, starts at loss log 2, and the exported model carries
    the tokenizer files."""
    config = setup(tmp)
    hf_tokenizer_model(os.path.join(tmp, "model"))  # replaces setup's model (config.ini names it)
    out = os.path.join(tmp, "out")
    r = run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", out, "--data.template",
                              "auto", "--spin.max_iterations", "1"], 2)
    assert "prompt template llama3 (data.template = auto)" in r.stdout, r.stdout[:2000]
    m = [x for x in metrics(os.path.join(out, "metrics.jsonl")) if x["kind"] == "train"]
    assert len(m) == 6 and abs(m[0]["loss"] - math.log(2)) < 1e-12, m
    assert m[0]["generated_length_mean"] > 0, m[0]
    for f in ("tokenizer.json", "tokenizer_config.json"):
        assert os.path.exists(os.path.join(out, "iteration_1", f)), f
    print("tokenizer.json + llama3 template: 6 steps, first loss log 2, generated length %.1f"
          % m[0]["generated_length_mean"])

    # Qwen2 (q/k/v biases, tied embeddings, NFC tokenizer) at TP 2: auto picks chatml; the
    # exported model has trained biases and Qwen2's config.
    shutil.rmtree(os.path.join(tmp, "model"))
    hf_tokenizer_model(os.path.join(tmp, "model"), kind="qwen2")
    out = os.path.join(tmp, "qwen2")
    r = run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", out, "--data.template",
                              "auto", "--spin.max_iterations", "1", "--parallel.tp", "2"], 2)
    assert "prompt template chatml (data.template = auto)" in r.stdout, r.stdout[:2000]
    m = [x for x in metrics(os.path.join(out, "metrics.jsonl")) if x["kind"] == "train"]
    assert len(m) == 6 and abs(m[0]["loss"] - math.log(2)) < 1e-12 and m[0]["generated_length_mean"] > 0, m
    before = read_safetensors(os.path.join(tmp, "model", "model.safetensors"))
    after = read_safetensors(os.path.join(out, "iteration_1", "model.safetensors"))
    assert sorted(before) == sorted(after) and "lm_head.weight" not in after, sorted(after)
    moved = before["model.layers.0.self_attn.k_proj.bias"] != after["model.layers.0.self_attn.k_proj.bias"]
    assert moved, "the biases did not train"
    assert json.load(open(os.path.join(out, "iteration_1", "config.json")))["model_type"] == "qwen2"
    # Its checkpoint after 3 steps (the split biases in the AdamW state too) resumes at DP 2 with
    # the distributed optimizer to the uninterrupted run's losses.
    part = os.path.join(tmp, "qwen2-part")
    common = [args.spin, "train", "--config", config, "--checkpoint.save_dir", part, "--data.template", "auto",
              "--spin.max_iterations", "1"]
    run_ok(args.mpiexec, common + ["--parallel.tp", "2", "--spin.max_steps", "3"], 2)
    run_ok(args.mpiexec, common + ["--optim.distributed_optimizer", "true", "--checkpoint.resume", "true"], 2)
    resumed = [x for x in metrics(os.path.join(part, "metrics.jsonl")) if x["kind"] == "train"]
    assert [x["step"] for x in resumed] == [x["step"] for x in m], resumed
    for x, y in zip(resumed, m):
        assert abs(x["loss"] - y["loss"]) <= 1e-5 * max(1.0, abs(y["loss"])), (x, y)
    print("Qwen2 + chatml at TP 2: 6 steps, first loss log 2, biases trained, exported as qwen2; "
          "resumed at DP 2 (ZeRO-1) from step 3 to the same losses")
    # The same model as the language model of a Qwen2.5-VL checkpoint (no prefix, M-RoPE, which over
    # text is RoPE): the same losses; exported whole -- its config.json and vision tensors as they
    # were, the language model trained under its own names.
    vl = multimodal_checkpoint(os.path.join(tmp, "model"), os.path.join(tmp, "qwen2.5-vl"), kind="qwen2_5_vl")
    out = os.path.join(tmp, "qwen2.5-vl-run")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", out, "--data.template",
                          "auto", "--spin.max_iterations", "1", "--parallel.tp", "2", "--model.path", vl], 2)
    vl_losses = [x["loss"] for x in metrics(os.path.join(out, "metrics.jsonl")) if x["kind"] == "train"]
    assert vl_losses == [x["loss"] for x in m], (vl_losses, m)
    exported = os.path.join(out, "iteration_1")
    assert open(os.path.join(exported, "config.json")).read() == open(os.path.join(vl, "config.json")).read()
    before, after = (read_safetensors(os.path.join(d, "model.safetensors")) for d in (vl, exported))
    assert sorted(before) == sorted(after), sorted(after)
    assert all(before[k] == after[k] for k in before if k.startswith("visual.")), "vision tensors moved"
    assert before["model.layers.0.self_attn.k_proj.bias"] != after["model.layers.0.self_attn.k_proj.bias"]
    print("Qwen2.5-VL checkpoint at TP 2: the text model's losses; exported whole, its language model trained")

    # Qwen3 (head norms) with a Qwen3-style tokenizer: auto picks qwen3 (thinking off); the head
    # norms train and stay equal on both TP ranks (one exported copy).
    train_family(args, config, tmp, "qwen3", "model.layers.1.self_attn.q_norm.weight")
    print("Qwen3 + qwen3 template at TP 2 in bf16: 6 steps, first loss log 2, head norms trained, exported")
    # Gemma (GeGLU, 1 + w norms, scaled tied embeddings) with a SentencePiece model in Gemma's
    # layout: auto picks gemma; generation stops at <end_of_turn> (5), which ends the ground truth
    # too; the norms train; exported tied, as a gemma.
    after, out = train_family(args, config, tmp, "gemma", "model.layers.0.input_layernorm.weight")
    assert "lm_head.weight" not in after, sorted(after)
    assert json.load(open(os.path.join(out, "iteration_1", "config.json")))["model_type"] == "gemma"
    print("Gemma + gemma template at TP 2 in bf16: 6 steps, first loss log 2, norms trained, exported tied")
    # Gemma 2 (besides, sandwich norms, its score scale, capped scores and logits -- in generation,
    # scoring and training alike): the gemma template; the norm of the MLP's output trains.
    after, out = train_family(args, config, tmp, "gemma2", "model.layers.1.post_feedforward_layernorm.weight", "gemma")
    assert json.load(open(os.path.join(out, "iteration_1", "config.json")))["model_type"] == "gemma2"
    print("Gemma 2 + gemma template at TP 2 in bf16: 6 steps, first loss log 2, output norms trained, exported")
    # Gemma 3 (Gemma 2's parts without caps, head norms of 1 + w, an 8-key window with its own
    # RoPE base in layer 0 of every 2): auto picks gemma3 by <start_of_image>; the head norms train.
    after, out = train_family(args, config, tmp, "gemma3", "model.layers.0.self_attn.k_norm.weight")
    assert json.load(open(os.path.join(out, "iteration_1", "config.json")))["model_type"] == "gemma3_text"
    print("Gemma 3 + gemma3 template at TP 2 in bf16: 6 steps, first loss log 2, head norms trained, exported")
    # The same model as the language model of a Gemma 3 multimodal checkpoint: trained alike (the
    # same losses), exported whole -- the original's config.json and vision tensors, the trained
    # language model under language_model.
    text_losses = [x["loss"] for x in metrics(os.path.join(out, "metrics.jsonl")) if x["kind"] == "train"]
    multimodal = multimodal_checkpoint(os.path.join(tmp, "model"), os.path.join(tmp, "gemma3-multimodal"))
    out = os.path.join(tmp, "gemma3-mm-run")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", out, "--data.template",
                          "auto", "--spin.max_iterations", "1", "--parallel.tp", "2", "--model.precision", "bf16",
                          "--model.path", multimodal], 2)
    losses = [x["loss"] for x in metrics(os.path.join(out, "metrics.jsonl")) if x["kind"] == "train"]
    assert losses == text_losses, (losses, text_losses)
    exported = os.path.join(out, "iteration_1")
    assert open(os.path.join(exported, "config.json")).read() == open(os.path.join(multimodal, "config.json")).read()
    before, after = (read_safetensors(os.path.join(d, "model.safetensors")) for d in (multimodal, exported))
    assert sorted(before) == sorted(after), sorted(after)
    assert all(before[k] == after[k] for k in before if not k.startswith("language_model.")), "vision tensors moved"
    assert before["language_model.model.layers.0.self_attn.k_norm.weight"] != \
        after["language_model.model.layers.0.self_attn.k_norm.weight"]
    print("Gemma 3 multimodal checkpoint at TP 2: the text model's losses; exported whole, its language model trained")
    # Phi-3 (q/k/v and gate/up fused in its files, LongRoPE) with Phi-4's tokenizer: auto picks
    # phi4 by <|im_sep|>; each TP rank reads its rows of the fused tensors, the export fuses the
    # trained ones again.
    after, out = train_family(args, config, tmp, "phi4", "model.layers.0.mlp.gate_up_proj.weight")
    assert json.load(open(os.path.join(out, "iteration_1", "config.json")))["model_type"] == "phi3"
    print("Phi-3 + phi4 template at TP 2 in bf16: 6 steps, first loss log 2, fused tensors trained, exported fused")
    # Phi-4-mini (half of each head rotating, tied embeddings) with an o200k tokenizer whose chat
    # tokens strip the whitespace beside them: auto picks phi4-mini; generation stops at <|end|>.
    after, out = train_family(args, config, tmp, "o200k", "model.layers.0.self_attn.qkv_proj.weight", "phi4-mini")
    assert "lm_head.weight" not in after, sorted(after)
    print("Phi-4-mini + phi4-mini template at TP 2 in bf16: 6 steps, first loss log 2, exported tied")
    # Mistral with Mistral NeMo's Tekken (tekken.json, version v3): auto picks mistral-v3 by [INST]
    # and [/INST]; the exported model carries tekken.json.
    after, out = train_family(args, config, tmp, "tekken", "model.layers.0.self_attn.q_proj.weight", "mistral-v3")
    assert os.path.exists(os.path.join(out, "iteration_1", "tekken.json"))
    print("Mistral + Tekken + mistral-v3 template at TP 2 in bf16: 6 steps, first loss log 2, exported with tekken.json")
    # Granite (its multipliers in generation, scoring and training; tied embeddings) with llama3's
    # tokenizer: exported tied, as a granite whose multipliers are the original's.
    after, out = train_family(args, config, tmp, "granite", "model.layers.1.mlp.down_proj.weight", "llama3")
    exported = json.load(open(os.path.join(out, "iteration_1", "config.json")))
    assert exported["model_type"] == "granite" and exported["residual_multiplier"] == 0.3, exported
    assert "lm_head.weight" not in after, sorted(after)
    print("Granite + llama3 template at TP 2 in bf16: 6 steps, first loss log 2, exported tied as a granite")


def case_offline(args, tmp):
    """The offline pipeline: spin generate --spin-data answers the training set greedily, spin
    train --spin.generations data trains on those answers -- the same metrics, bit for bit, as
    spin train generating the same greedy answers itself (iteration 0: the reference is the
    model that generated)."""
    config = setup(tmp)
    common = ["--data.validation", "", "--spin.max_iterations", "1", "--spin.max_steps", "4",
              "--sampling.greedy", "true"]
    online = os.path.join(tmp, "online")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", online] + common, 2)
    records = os.path.join(tmp, "spin_records.jsonl")
    run_ok(args.mpiexec, [args.spin, "generate", "--model", os.path.join(tmp, "model"), "--input",
                          os.path.join(tmp, "data", "train.jsonl"), "--template", "plain", "--spin-data", "--greedy",
                          "--max-new-tokens", "10", "--batch-size", "5", "--output", records, "--tp", "2"], 2)
    first = json.loads(open(records).readline())
    assert set(first) >= {"prompt", "response", "generated", "finish_reason", "generated_text"}, first
    offline = os.path.join(tmp, "offline")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", offline,
                          "--data.train", records, "--spin.generations", "data"] + common, 2)
    # length_capped is unknown for given answers (reported 0); everything else is the same.
    a, b = untimed(os.path.join(online, "metrics.jsonl")), untimed(os.path.join(offline, "metrics.jsonl"))
    for m in a + b:
        m.pop("length_capped")
    assert len(a) == 4 and a == b, (a, b)
    print("4 steps on spin generate --spin-data's answers = 4 steps generating them (loss %s ... %s)" %
          (a[0]["loss"], a[-1]["loss"]))


def case_reset(args, tmp):
    """optim.reset_each_iteration: a 2-iteration run whose second iteration is a run of its own
    (LR schedule restarted, fresh AdamW) trains that iteration exactly as a new spin train
    started from the first iteration's exported model does -- the SPIN code's way of running
    iterations (without shuffling and with greedy answers, so that no key depends on the
    iteration); without the option the second iteration differs."""
    config = setup(tmp)
    common = [args.spin, "train", "--config", config, "--data.validation", "", "--data.shuffle", "false",
              "--sampling.greedy", "true", "--spin.kl_penalty", "1.0", "--optim.schedule", "linear",
              "--optim.warmup_ratio", "0.3", "--optim.min_lr", "1e-4"]
    whole, kept, first, second = (os.path.join(tmp, d) for d in ("whole", "kept", "first", "second"))
    run_ok(args.mpiexec, common + ["--optim.reset_each_iteration", "true", "--checkpoint.save_dir", whole], 2)
    run_ok(args.mpiexec, common + ["--checkpoint.save_dir", kept], 2)
    run_ok(args.mpiexec, common + ["--spin.max_iterations", "1", "--checkpoint.save_dir", first], 2)
    run_ok(args.mpiexec, common + ["--spin.max_iterations", "1", "--checkpoint.save_dir", second,
                                   "--model.path", os.path.join(first, "iteration_1")], 2)
    keys = ("loss", "rewards_actual", "rewards_generated", "accuracy", "lr", "grad_norm")
    fields = lambda ms: [{k: m[k] for k in keys} for m in ms if m["kind"] == "train"]
    w, k = fields(untimed(os.path.join(whole, "metrics.jsonl"))), fields(untimed(os.path.join(kept, "metrics.jsonl")))
    one, two = fields(untimed(os.path.join(first, "metrics.jsonl"))), fields(untimed(os.path.join(second, "metrics.jsonl")))
    half = len(w) // 2
    assert len(w) == 2 * len(one) == 2 * len(two) and half > 2, (len(w), len(one), len(two))
    assert w[:half] == one and w[half:] == two, (w, one, two)
    assert k[half:] != two, "without the option the second iteration continues the first's schedule and moments"
    assert w[half]["lr"] == w[0]["lr"] < w[1]["lr"], "the warm-up starts again"
    assert w[0]["lr"] == 3e-3 / 2, "warmup_ratio 0.3 of an iteration's 6 steps: 2 warm-up steps"
    print("optim.reset_each_iteration: iteration 2 = a new run from iteration_1 (%d steps; lr %.3g -> %.3g again)" %
          (half, w[half]["lr"], w[half + 1]["lr"]))
    # WSD (warmup-stable-decay) over each iteration's 6 steps: 2 warm-up steps, held, the last
    # ceil(0.3 x 6) = 2 steps (after step 4) annealed linearly to min_lr at the 6th.
    wsd = os.path.join(tmp, "wsd")
    run_ok(args.mpiexec, common[:-6] + ["--optim.schedule", "wsd", "--optim.warmup_ratio", "0.3", "--optim.min_lr", "1e-4",
                                        "--optim.wsd_decay_ratio", "0.3", "--optim.wsd_decay_style", "linear",
                                        "--optim.reset_each_iteration", "true", "--checkpoint.save_dir", wsd], 2)
    lrs = [m["lr"] for m in fields(untimed(os.path.join(wsd, "metrics.jsonl")))]
    peak = 3e-3
    want = [peak / 2, peak, peak, peak, peak, 1e-4 + (peak - 1e-4) * 0.5] * 2
    assert len(lrs) == 12 and all(abs(a - b) <= 1e-12 for a, b in zip(lrs, want)), (lrs, want)
    print("optim.schedule = wsd: %s" % ", ".join("%.3g" % x for x in lrs[:6]))


def case_reuse(args, tmp):
    """spin.reuse_generations over 2 epochs of 2 iterations at PP 2: stopped in an iteration's
    second epoch and resumed, the run ends bitwise as the uninterrupted one -- with the
    iteration's responses read back from the checkpoint (no generation again), and from a
    checkpoint without them (written at the end of the first epoch by a run without reuse) with
    the first epoch's generation replayed; and it differs from the run that draws new responses
    every epoch from the first iteration's second epoch on. The reference sums kept for the
    iteration (spin.cache_ref_logprobs, on by default) come back from the checkpoint; the run
    that forwards them again every epoch is the same run up to float rounding (a sum forwarded
    in another micro-batch's packing rounds differently), and the replay is checked with it
    (a run without reuse kept no generated half's sum to resume with)."""
    config = setup(tmp)
    common = [args.spin, "train", "--config", config, "--spin.max_epochs", "2", "--parallel.pp", "2"]
    reuse = common + ["--spin.reuse_generations", "true"]
    whole, fresh, part = (os.path.join(tmp, d) for d in ("whole", "fresh", "part"))
    run_ok(args.mpiexec, reuse + ["--checkpoint.save_dir", whole], 2)
    run_ok(args.mpiexec, common + ["--checkpoint.save_dir", fresh], 2)
    a, b = untimed(os.path.join(whole, "metrics.jsonl")), untimed(os.path.join(fresh, "metrics.jsonl"))
    first = lambda ms, epoch: [m for m in ms if m["kind"] == "train" and m["iteration"] == 1 and m["epoch"] == epoch]
    assert first(a, 1) == first(b, 1) and first(a, 2) != first(b, 2), "reuse changes the second epoch only"
    work_a, work_b = metrics(os.path.join(whole, "metrics.jsonl")), metrics(os.path.join(fresh, "metrics.jsonl"))
    assert all(m["generated_tokens"] == 0 for m in first(work_a, 2)), "the second epoch generates nothing (48 = 6 x 8)"
    assert all(m["generated_tokens"] > 0 for m in first(work_b, 2)), "without reuse every step generates"
    uncached = os.path.join(tmp, "uncached")
    run_ok(args.mpiexec, reuse + ["--spin.cache_ref_logprobs", "false", "--checkpoint.save_dir", uncached], 2)
    u = untimed(os.path.join(uncached, "metrics.jsonl"))
    assert len(u) == len(a) and [m["step"] for m in u] == [m["step"] for m in a], (len(u), len(a))
    for x, y in zip(a, u):
        assert x.keys() == y.keys(), (x, y)
        for key in ["loss", "rewards_actual", "rewards_generated", "accuracy", "generated_length_mean", "grad_norm"]:
            if key in x:  # validation records have no grad_norm
                assert abs(x[key] - y[key]) <= 1e-5 * max(1.0, abs(x[key])), ("kept vs forwarded again", key, x, y)
    # spin.pregenerate: each iteration's first-epoch responses in one call -- the same responses.
    ahead = os.path.join(tmp, "ahead")
    run_ok(args.mpiexec, reuse + ["--spin.pregenerate", "true", "--checkpoint.save_dir", ahead], 2)
    p = untimed(os.path.join(ahead, "metrics.jsonl"))
    assert [m["generated_length_mean"] for m in p] == [m["generated_length_mean"] for m in a], "other responses"
    for x, y in zip(a, p):
        assert abs(x["loss"] - y["loss"]) <= 1e-5 * max(1.0, abs(x["loss"])), ("pregenerated", x, y)
    # 6 steps an epoch: step 9 is the first iteration's second epoch, step 15 the second's.
    forwarding = ["--spin.cache_ref_logprobs", "false"]
    for stop, cached in ((9, True), (15, True), (6, False)):
        shutil.rmtree(part, ignore_errors=True)
        first_part = reuse if cached else common + forwarding
        run_ok(args.mpiexec, first_part + ["--checkpoint.save_dir", part, "--spin.max_steps", str(stop)], 2)
        r = run_ok(args.mpiexec, (reuse if cached else reuse + forwarding) +
                   ["--checkpoint.save_dir", part, "--checkpoint.resume", "true"], 2)
        assert ("came with it (no replay)" in r.stdout) == cached, (stop, cached, r.stdout[-2000:])
        assert ("reference log-probability sums came with it" in r.stdout) == cached, (stop, r.stdout[-2000:])
        changes = [l for l in r.stdout.splitlines() if "settings changed since the checkpoint" in l]
        if cached:
            assert not changes, changes
        else:  # the first part ran without reuse and kept its sums
            assert changes and "spin.reuse_generations false -> true" in changes[0], changes
            assert "spin.cache_ref_logprobs" not in changes[0], changes
        assert untimed(os.path.join(part, "metrics.jsonl")) == (a if cached else u), stop
        for it in (1, 2):
            x = open(os.path.join(part, "iteration_%d" % it, "model.safetensors"), "rb").read()
            y = open(os.path.join(whole if cached else uncached, "iteration_%d" % it, "model.safetensors"), "rb").read()
            assert x == y, (stop, it)
    print("spin.reuse_generations: second epochs differ from resampling; stopped at steps 9 and 15 and resumed "
          "with the responses and reference sums from the checkpoint, and from step 6 without them (replayed; "
          "every reference sum forwarded): bitwise the uninterrupted run; keeping the reference sums or forwarding "
          "them every epoch: the same run up to rounding")


def case_mix(args, tmp):
    """spin.mix_previous_iteration at DP 2: the second iteration visits the 48 prompts twice an
    epoch (12 steps instead of 6) -- with its reference's responses and with the first
    iteration's, which the checkpoints carry: stopped at the first iteration's end and inside the
    second, and resumed, the run ends bitwise as the uninterrupted one. With
    optim.reset_each_iteration each iteration's schedule spans its own steps. A checkpoint of a
    run without mixing is refused, as is mixing without spin.reuse_generations."""
    config = setup(tmp)
    common = [args.spin, "train", "--config", config, "--data.validation", "", "--spin.reuse_generations", "true",
              "--spin.mix_previous_iteration", "true"]
    whole, part = os.path.join(tmp, "whole"), os.path.join(tmp, "part")
    r = run_ok(args.mpiexec, common + ["--checkpoint.save_dir", whole], 2)
    assert "6 steps (12 from iteration 2 on, with the previous iteration's responses) (18 in all)" in r.stdout, \
        r.stdout[:3000]
    a = untimed(os.path.join(whole, "metrics.jsonl"))
    steps = [(m["iteration"], m["step"]) for m in a if m["kind"] == "train"]
    assert steps == [(1, s) for s in range(1, 7)] + [(2, s) for s in range(7, 19)], steps
    assert a[6]["loss"] == math.log(2) and a[6]["rewards_generated"] == 0.0, a[6]
    for stop in (6, 10):
        shutil.rmtree(part, ignore_errors=True)
        run_ok(args.mpiexec, common + ["--checkpoint.save_dir", part, "--spin.max_steps", str(stop)], 2)
        r = run_ok(args.mpiexec, common + ["--checkpoint.save_dir", part, "--checkpoint.resume", "true"], 2)
        assert untimed(os.path.join(part, "metrics.jsonl")) == a, stop
        for it in (1, 2):
            x = open(os.path.join(part, "iteration_%d" % it, "model.safetensors"), "rb").read()
            y = open(os.path.join(whole, "iteration_%d" % it, "model.safetensors"), "rb").read()
            assert x == y, (stop, it)
    # One schedule per iteration: warm-up over 30% of 6 steps, then of 12.
    reset = os.path.join(tmp, "reset")
    run_ok(args.mpiexec, common + ["--checkpoint.save_dir", reset, "--optim.reset_each_iteration", "true",
                                   "--optim.schedule", "linear", "--optim.warmup_ratio", "0.3"], 2)
    lrs = [m["lr"] for m in untimed(os.path.join(reset, "metrics.jsonl")) if m["kind"] == "train"]
    assert lrs[0] == 3e-3 / 2 and lrs[6] == 3e-3 / 4 and lrs[9] == 3e-3, lrs
    # Refusals.
    plain = os.path.join(tmp, "plain")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--data.validation", "", "--spin.max_steps", "7",
                          "--spin.reuse_generations", "true", "--checkpoint.save_dir", plain], 2)
    expect_error(args.mpiexec, "resume-unmixed", common + ["--checkpoint.save_dir", plain, "--checkpoint.resume", "true"],
                 r"step_0*7 was saved by a run without spin\.mix_previous_iteration; this run is with it", 2, None)
    expect_error(args.mpiexec, "mix-without-reuse",
                 [args.spin, "train", "--config", config, "--spin.mix_previous_iteration", "true",
                  "--checkpoint.save_dir", os.path.join(tmp, "bad")],
                 r"spin\.mix_previous_iteration trains on the previous iteration's responses, which only "
                 r"spin\.reuse_generations = true keeps", 2, os.path.join(tmp, "bad", "metrics.jsonl"))
    print("spin.mix_previous_iteration: iteration 2 has 12 steps of both iterations' responses; stopped at steps 6 "
          "and 10 and resumed: bitwise the uninterrupted run; per-iteration schedules; refusals")


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


def case_save_generations(args, tmp):
    """spin.save_generations: an iteration's synthetic data set -- every prompt's response,
    those the steps left out (48 prompts, 2 steps of 20) generated at the iteration's end -- as
    token-id SPIN records with their text; trained on with spin.generations = data, it gives the
    online iteration's metrics, bit for bit (length_capped aside: unknown for given responses)."""
    config = setup(tmp)
    common = [args.spin, "train", "--config", config, "--data.validation", "", "--spin.max_iterations", "1",
              "--spin.kl_penalty", "1.0", "--spin.global_batch_size", "20"]
    online, offline = os.path.join(tmp, "online"), os.path.join(tmp, "offline")
    r = run_ok(args.mpiexec, common + ["--spin.reuse_generations", "true", "--spin.save_generations", "true",
                                       "--checkpoint.save_dir", online], 2)
    export = os.path.join(online, "generations", "iteration_1.jsonl")
    assert "iteration 1's responses in %s" % export in r.stdout, r.stdout[-2000:]
    records = [json.loads(l) for l in open(export)]
    assert len(records) == 48, len(records)
    for rec in records:
        assert rec["generated"] and set(rec) == {"prompt", "response", "generated", "capped", "prompt_text",
                                                 "response_text", "generated_text"}, rec
    assert not os.path.exists(export + ".partial")
    run_ok(args.mpiexec, common + ["--data.train", export, "--spin.generations", "data", "--checkpoint.save_dir",
                                   offline], 2)
    a, b = untimed(os.path.join(online, "metrics.jsonl")), untimed(os.path.join(offline, "metrics.jsonl"))
    for m in a + b:
        m.pop("length_capped")
    assert len(a) == 2 and a == b, (a, b)
    expect_error(args.mpiexec, "save-without-reuse", common + ["--spin.save_generations", "true",
                                                               "--checkpoint.save_dir", os.path.join(tmp, "bad")],
                 r"spin\.save_generations writes an iteration's one response per prompt: it needs "
                 r"spin\.reuse_generations = true", 2, os.path.join(tmp, "bad", "metrics.jsonl"))
    print("spin.save_generations: 48 records (8 generated at the iteration's end); trained on offline: the same "
          "metrics")


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


def case_lora(args, tmp):
    """lora.rank 4 on q_proj and v_proj: 1 rank against TP 2 x PP 2 with sequence parallelism;
    stopped at step 4 at DP 2 and resumed against the uninterrupted DP 2 run; the step-4
    checkpoint's policy against its reference."""
    config = setup(tmp)
    common = [args.spin, "train", "--config", config, "--data.validation", "", "--lora.rank", "4", "--lora.alpha", "8",
              "--lora.targets", "q_proj,v_proj", "--optim.lr", "1e-2"]
    one, four, whole, part = (os.path.join(tmp, d) for d in ("one", "four", "whole", "part"))
    run_ok(args.mpiexec, common + ["--checkpoint.save_dir", one], 1)
    run_ok(args.mpiexec, common + ["--checkpoint.save_dir", four, "--parallel.tp", "2", "--parallel.pp", "2",
                                   "--model.sequence_parallel", "true"], 4)
    a, b = untimed(os.path.join(one, "metrics.jsonl")), untimed(os.path.join(four, "metrics.jsonl"))
    assert len(a) == len(b) == 12, (len(a), len(b))
    # Float32 summation orders of two layouts, amplified by 12 AdamW steps at lr 1e-2: within 1e-5
    # on an AVX2 machine, up to 1.3e-5 by the last step on an AVX-512 one (OpenBLAS picks its sgemm
    # kernel by the product's size); a wrong split or a lost reduction moves them by ~1e-2.
    for x, y in zip(a, b):
        for key in ["loss", "rewards_actual", "rewards_generated", "accuracy", "grad_norm"]:
            assert abs(x[key] - y[key]) <= 5e-5 * max(1.0, abs(x[key])), (key, x, y)
    # Each iteration starts with the policy equal to its reference: the adapters merged, fresh ones.
    for first in (a[0], a[6]):
        assert abs(first["loss"] - math.log(2)) < 1e-6 and first["rewards_actual"] == 0.0, first
    assert a[5]["loss"] < 0.6 and a[11]["loss"] < 0.6, (a[5], a[11])  # the adapters learn
    # Resumed mid-iteration: the frozen reference, the adapters and their AdamW state carry over.
    run_ok(args.mpiexec, common + ["--checkpoint.save_dir", whole], 2)
    run_ok(args.mpiexec, common + ["--checkpoint.save_dir", part, "--spin.max_steps", "4"], 2)
    step4 = os.path.join(part, "step_00000004")
    run_ok(args.mpiexec, common + ["--checkpoint.save_dir", part, "--checkpoint.resume", "true"], 2)
    assert untimed(os.path.join(part, "metrics.jsonl")) == untimed(os.path.join(whole, "metrics.jsonl"))
    for k in (1, 2):
        assert (open(os.path.join(part, "iteration_%d" % k, "model.safetensors"), "rb").read() ==
                open(os.path.join(whole, "iteration_%d" % k, "model.safetensors"), "rb").read())
    # The checkpoint's policy (what every tool reads) is the reference + scale B A: a change of
    # rank <= 4 in q_proj and v_proj, nothing else.
    hf_policy, hf_reference = os.path.join(tmp, "policy4"), os.path.join(tmp, "reference4")
    run_ok(args.mpiexec, [args.spin, "ckpt", "export-hf", step4, hf_policy], 1)
    run_ok(args.mpiexec, [args.spin, "ckpt", "export-hf", step4, hf_reference, "--which", "reference"], 1)
    policy = read_safetensors(os.path.join(hf_policy, "model.safetensors"))
    reference = read_safetensors(os.path.join(hf_reference, "model.safetensors"))
    changed = sorted(n for n in policy if policy[n] != reference[n])
    assert changed == sorted("model.layers.%d.self_attn.%s_proj.weight" % (l, p) for l in (0, 1) for p in "qv"), changed
    for name in changed:
        cols = 32  # hidden: q_proj [32, 32], v_proj [16, 32]
        diff = [x - y for x, y in zip(policy[name], reference[name])]
        rows = [diff[i:i + cols] for i in range(0, len(diff), cols)]
        largest = max(abs(d) for d in diff)
        assert largest > 1e-4 and matrix_rank(rows, 1e-4 * largest) == 4, (name, largest)
    # The step-4 adapters in PEFT's format over their reference (model.adapter, merged at the start)
    # start a run exactly as the merged policy does.
    hf_lora = os.path.join(tmp, "lora4")
    run_ok(args.mpiexec, [args.spin, "ckpt", "export-hf", step4, hf_lora, "--which", "lora"], 1)
    started = {}
    for name, model_args in (("merged", ["--model.path", hf_policy]),
                             ("adapter", ["--model.path", hf_reference, "--model.adapter", hf_lora])):
        run_ok(args.mpiexec, common + model_args + ["--checkpoint.save_dir", os.path.join(tmp, "from-" + name),
                                                    "--spin.max_steps", "2"], 1)
        started[name] = untimed(os.path.join(tmp, "from-" + name, "metrics.jsonl"))
    assert started["adapter"] == started["merged"], (started["adapter"], started["merged"])
    expect_error(args.mpiexec, "no-adapter", common + ["--checkpoint.save_dir", os.path.join(tmp, "z"),
                                                       "--model.adapter", os.path.join(tmp, "nowhere")],
                 r"nowhere/adapter_config\.json: cannot open", 1, None)
    expect_error(args.mpiexec, "lora-offload", common + ["--checkpoint.save_dir", os.path.join(tmp, "x"),
                                                         "--spin.ref_offload", "true"],
                 r"spin\.ref_offload with lora\.rank 4", 1, None)
    full = os.path.join(tmp, "full")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--data.validation", "", "--checkpoint.save_dir", full,
                          "--spin.max_steps", "2"], 1)
    expect_error(args.mpiexec, "full-checkpoint", common + ["--checkpoint.save_dir", full, "--checkpoint.resume", "true"],
                 r"step_0*2 was saved by a run without LoRA; this run is with LoRA rank 4", 1, None)
    expect_error(args.mpiexec, "bad-target", [args.spin, "train", "--config", config, "--lora.rank", "4",
                                              "--checkpoint.save_dir", os.path.join(tmp, "y"), "--lora.targets", "q_proj,qkv"],
                 r"lora\.targets = \"q_proj,qkv\": \"qkv\" is not a projection", 1, None)
    print("lora.rank 4 (q, v): 1 rank = TP 2 x PP 2 with SP to 1e-5; iterations start at log 2; resumed at step 4 "
          "bitwise; the checkpoint's policy = reference + rank-4 changes of q and v alone, and its adapters in PEFT's "
          "format over the reference (model.adapter) start a run as the policy does; offload, a full run's "
          "checkpoint, a missing adapter and a bad target refused")


def case_lora_dropout(args, tmp):
    """lora.dropout 0.2 on every projection: masks keyed by sample, position, layer, projection and
    global column, so 1 rank and TP 2 x PP 2 with sequence parallelism (o_proj's and down_proj's
    inputs split by column) train alike; resumed mid-iteration, bitwise (the masks follow the step,
    not the process)."""
    config = setup(tmp)
    common = [args.spin, "train", "--config", config, "--data.validation", "", "--lora.rank", "4", "--lora.alpha", "8",
              "--optim.lr", "1e-2"]
    dropped = common + ["--lora.dropout", "0.2"]
    eight = ["--spin.max_steps", "8"]
    one, four, plain, whole, part = (os.path.join(tmp, d) for d in ("one", "four", "plain", "whole", "part"))
    run_ok(args.mpiexec, dropped + eight + ["--checkpoint.save_dir", one], 1)
    run_ok(args.mpiexec, dropped + eight + ["--checkpoint.save_dir", four, "--parallel.tp", "2", "--parallel.pp", "2",
                                            "--model.sequence_parallel", "true"], 4)
    run_ok(args.mpiexec, common + eight + ["--checkpoint.save_dir", plain], 1)
    a, b, c = (untimed(os.path.join(d, "metrics.jsonl")) for d in (one, four, plain))
    assert len(a) == len(b) == len(c) == 8, (len(a), len(b), len(c))
    # (5e-5: the float32 orders of two layouts through 8 AdamW steps; case_lora says why)
    for x, y in zip(a, b):
        for key in ["loss", "rewards_actual", "rewards_generated", "accuracy", "grad_norm"]:
            assert abs(x[key] - y[key]) <= 5e-5 * max(1.0, abs(x[key])), (key, x, y)
    # B = 0 at an iteration's start: the model is its reference whatever the masks (log 2), but B's
    # gradient (dy^T u, u from the masked input) is not the unmasked one; later losses differ too.
    for first in (0, 6):
        assert abs(a[first]["loss"] - math.log(2)) < 1e-6, a[first]
        assert abs(a[first]["grad_norm"] - c[first]["grad_norm"]) > 1e-6 * c[first]["grad_norm"], (a[first], c[first])
    assert all(abs(a[s]["loss"] - c[s]["loss"]) > 1e-6 for s in (2, 3, 4, 5)), [(x["loss"], y["loss"]) for x, y in zip(a, c)]
    run_ok(args.mpiexec, dropped + eight + ["--checkpoint.save_dir", whole], 2)
    run_ok(args.mpiexec, dropped + ["--checkpoint.save_dir", part, "--spin.max_steps", "3"], 2)
    run_ok(args.mpiexec, dropped + eight + ["--checkpoint.save_dir", part, "--checkpoint.resume", "true"], 2)
    assert untimed(os.path.join(part, "metrics.jsonl")) == untimed(os.path.join(whole, "metrics.jsonl"))
    peft = os.path.join(tmp, "peft")
    run_ok(args.mpiexec, [args.spin, "ckpt", "export-hf", os.path.join(whole, "step_00000008"), peft, "--which", "lora"], 1)
    adapter = json.load(open(os.path.join(peft, "adapter_config.json")))
    assert adapter["lora_dropout"] == 0.2 and adapter["r"] == 4, adapter
    expect_error(args.mpiexec, "dropout-1", common + ["--checkpoint.save_dir", os.path.join(tmp, "x"),
                                                      "--lora.dropout", "1"],
                 r"lora\.dropout = 1: must be in \[0, 1\)", 1, None)
    print("lora.dropout 0.2: 1 rank = TP 2 x PP 2 with SP to 1e-5; log 2 at each iteration's first step with another "
          "gradient, other losses after; resumed at step 3 bitwise; lora_dropout exported; a dropout of 1 refused")


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


def main():
    run_case(__doc__, {"layouts": case_layouts, "config": case_config, "signal": case_signal,
                       "hf_tokenizer": case_hf_tokenizer, "reuse": case_reuse, "offline": case_offline,
                       "reset": case_reset, "profile": case_profile, "mix": case_mix,
                       "time_limit": case_time_limit, "rmsprop": case_rmsprop, "lora": case_lora, "lora_dropout": case_lora_dropout,
                       "save_generations": case_save_generations},
             "spin_train_")


if __name__ == "__main__":
    main()

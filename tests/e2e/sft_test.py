#!/usr/bin/env python3
"""End-to-end checks of `spin sft`, one case per CTest test:

  layouts     the same run on 1 rank and on (TP, PP, DP) = (2, 2, 2) with the distributed
              optimizer, (1, 2, 2) with tied embeddings and micro-batches cut by tokens
              (--micro-batch-tokens), writes the same weights (1e-5); a Mixtral at
              TP 2 x PP 2 with its experts spread over the TP ranks (--ep 2) likewise (1e-4); a
              4-layer model at PP 2 x DP 2 with two chunks a stage (--vpp 2, interleaved 1F1B)
              likewise, its validation losses too, and with micro-batches cut by tokens; its
              transfers waited for at once (--no-overlap-p2p-comm) the same run bitwise; the
              4-layer model whose head outweighs 6 layers at 32 tokens at PP 2, split evenly (the
              balanced split's saving printed) and with --pp-layers balanced (3, 1), likewise; at
              its 4,096 positions balanced is 2, 2
  learns      on a copy task the loss falls, and `spin score` rates the training responses
              higher under the written model than under the initial one; --validation every
              --eval-interval steps: its loss falls, its last equals spin score's mean NLL of the
              written model, and PP 2 x DP 2 gives the same losses; --metrics and --tensorboard
              hold the printed figures
  bad-input   impossible layouts and batches (--vpp among them), and a diverging run, stop with one error line
  lora        --lora-rank 4 on q_proj and v_proj with --lora-dropout 0.1 (other losses than
              without): 1 rank and TP 2 x PP 2 with ZeRO-1 agree (losses, weights); the written model is the input plus a change of rank 4 in those
              projections alone; stopped and resumed, bitwise; the checkpoint's adapter exported
              in PEFT's format and given as --adapter over its base (spin score at TP 2, spin sft)
              equals its merged model, bitwise, as does the checkpoint given to spin score itself; a
              checkpoint of other LoRA settings refused; --frozen-dtype bf16 in bf16: the same losses
  resume      --save-dir: SIGUSR1 after step 3 of 8 saves a checkpoint and exits 75 (spin score of the
              save directory, its latest, = of the checkpoint's Hugging Face export, and spin sft
              starting from it = from that export, bitwise); --resume
              ends as the uninterrupted run (losses and weights bitwise); checkpoints every 3
              steps keep the last 2; a run of another batch size is refused the checkpoint
"""
import json
import math
import os
import random
import re
import struct
import sys

import tensorboard_events

from e2e_common import (REQUEUE, expect_error, matrix_rank, read_hf_dir, read_safetensors, run, run_case, run_ok,
                        run_requeued, tree_state)


def copy_task(path, n=64, seed=7):
    """Responses repeat the prompt: something a tiny model can learn in a few steps."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            prompt = [rng.randrange(3, 256) for _ in range(rng.randint(3, 10))]
            f.write(json.dumps({"prompt": prompt, "response": prompt + [2]}) + "\n")


DEFAULTS = {"--global-batch-size": "16", "--micro-batch-size": "2", "--epochs": "2", "--lr": "3e-3",
            "--lr-schedule": "cosine", "--warmup-steps": "2", "--weight-decay": "0.1", "--log-interval": "1"}


def sft_command(args, model, data, out, *extra):
    """spin sft with DEFAULTS, where options given in `extra` replace the defaults."""
    given = set(extra[::2])
    defaults = [x for k, v in DEFAULTS.items() if k not in given for x in (k, v)]
    return [args.spin, "sft", "--model", model, "--train", data, "--output", out] + defaults + list(extra)


def sft(args, model, data, out, ranks=1, *extra):
    return run_ok(args.mpiexec, sft_command(args, model, data, out, *extra), ranks)


def losses(stdout):
    return [float(l.split("| loss ")[1].split()[0]) for l in stdout.splitlines() if l.startswith("step ")]


def validation_losses(stdout):
    """(step, loss) of each --validation line."""
    return [(int(l.split("| step ")[1].split("/")[0]), float(l.split("| loss ")[1].split()[0]))
            for l in stdout.splitlines() if l.startswith("validation | ")]


def same_weights(a_dir, b_dir, what, tolerance=1e-5):
    a, b = read_hf_dir(a_dir), read_hf_dir(b_dir)
    assert sorted(a) == sorted(b), "%s: different tensors" % what
    worst = 0.0
    for name in a:
        num = sum((x - y) ** 2 for x, y in zip(a[name], b[name]))
        den = sum(y * y for y in b[name]) or 1.0
        worst = max(worst, math.sqrt(num / den))
    if worst > tolerance:
        sys.exit("FAIL: %s: weights differ by %.3g (relative L2)" % (what, worst))
    print("%s: %d tensors agree (max relative L2 difference %.3g)" % (what, len(a), worst))


def case_layouts(args, tmp):
    data = os.path.join(tmp, "copy.jsonl")
    copy_task(data)
    # Phi-3: each TP rank reads its rows of the fused tensors, the export fuses them again. Its
    # tolerance: one embedding element of it differs by 2.7e-3, one step of the learning rate --
    # a gradient element near 0 whose sign the two layouts' summation orders round apart, which
    # AdamW's first steps (m / sqrt(v) ~ sign(g)) turn into a whole step either way; the rest agree
    # within 7e-5 (measured), and a wrong fusion moves whole tensors by O(1).
    for model, ranks, extra, tolerance in [
            ("tiny-llama", 8, ["--tp", "2", "--pp", "2", "--distributed-optimizer", "--sequence-parallel",
                               "--overlap-grad-reduce"], 1e-5),
            # Micro-batches cut by tokens (a replica's 8 sequences, ~2 a micro-batch): other sums' order only.
            # The model in files of at most 20 kB, the two replicas writing every other file.
            ("tiny-llama-tied", 4, ["--micro-batch-size", "8", "--micro-batch-tokens", "30", "--pp", "2",
                                    "--logits-chunk-rows", "5", "--recompute-activations",
                                    "--save-max-shard-size", "20000"], 1e-5),
            ("tiny-phi3", 2, ["--tp", "2", "--sequence-parallel"], 1e-3),
            # A mixture's experts spread over the TP ranks (each rank two of four, whole), as one rank.
            ("tiny-mixtral", 4, ["--tp", "2", "--ep", "2", "--pp", "2", "--distributed-optimizer"], 1e-4)]:
        path = os.path.join(args.models, model)
        one = sft(args, path, data, os.path.join(tmp, model + "-1"))
        many = sft(args, path, data, os.path.join(tmp, model + "-n"), ranks, *extra)
        got, want = losses(many.stdout), losses(one.stdout)
        assert len(got) == len(want) == 8 and all(abs(g - w) <= 1e-5 * abs(w) for g, w in zip(got, want)), (got, want)
        same_weights(os.path.join(tmp, model + "-n"), os.path.join(tmp, model + "-1"),
                     "%s on %d ranks (%s) vs 1 rank" % (model, ranks, " ".join(extra)), tolerance)
        if "--save-max-shard-size" in extra:
            files = [f for f in os.listdir(os.path.join(tmp, model + "-n")) if f.endswith(".safetensors")]
            assert len(files) > 3, files
    # Interleaved stages (--vpp 2): a 4-layer tied model, stage 0 running layers 0 and 2, stage 1
    # layers 1 and 3, at PP 2 x DP 2 with ZeRO-1: the losses, the validation losses (forward-only
    # through the chunks, 64 records in micro-batches of 2: 16 a replica) and the weights of one rank.
    path = os.path.join(args.models, "tiny-llama-4l")
    valid = ["--validation", data, "--eval-interval", "4"]
    one = sft(args, path, data, os.path.join(tmp, "vpp-1"), 1, *valid)
    many = sft(args, path, data, os.path.join(tmp, "vpp-n"), 4, "--pp", "2", "--vpp", "2", "--distributed-optimizer",
               *valid)
    assert "layout tp 1 x pp 2 (2 chunks a stage) x dp 2" in many.stdout, many.stdout
    for got, want in [(losses(many.stdout), losses(one.stdout)),
                      ([l for _, l in validation_losses(many.stdout)], [l for _, l in validation_losses(one.stdout)])]:
        assert len(got) == len(want) > 1 and all(abs(g - w) <= 1e-5 * abs(w) for g, w in zip(got, want)), (got, want)
    same_weights(os.path.join(tmp, "vpp-n"), os.path.join(tmp, "vpp-1"), "tiny-llama-4l at PP 2 x 2 chunks x DP 2",
                 1e-5)
    # The transfers between stages overlapped with the computations (the default) or each exchange
    # waited for at once (--no-overlap-p2p-comm): the same messages, so the same run bitwise.
    blocking = sft(args, path, data, os.path.join(tmp, "vpp-blocking"), 4, "--pp", "2", "--vpp", "2",
                   "--distributed-optimizer", "--no-overlap-p2p-comm", *valid)
    assert losses(blocking.stdout) == losses(many.stdout), (losses(blocking.stdout), losses(many.stdout))
    same_weights(os.path.join(tmp, "vpp-blocking"), os.path.join(tmp, "vpp-n"),
                 "tiny-llama-4l at PP 2 x 2 chunks x DP 2, exchanges waited for at once", 0.0)
    # Micro-batches cut by tokens under interleaving: each replica's cut split into whole groups of the
    # 2 stages (data::cut_micro_batches) -- the same run to the order of float sums.
    tokens = sft(args, path, data, os.path.join(tmp, "vpp-tokens"), 4, "--pp", "2", "--vpp", "2", "--micro-batch-size",
                 "8", "--micro-batch-tokens", "30")
    got, want = losses(tokens.stdout), losses(one.stdout)
    assert len(got) == len(want) and all(abs(g - w) <= 1e-5 * abs(w) for g, w in zip(got, want)), (got, want)
    same_weights(os.path.join(tmp, "vpp-tokens"), os.path.join(tmp, "vpp-1"),
                 "tiny-llama-4l at PP 2 x 2 chunks x DP 2, micro-batches by tokens", 1e-5)
    # --pp-layers balanced: the stages' FLOPs evened out, the head's counted (model::balanced_split,
    # unit-tested), each layer weighed at the run's sequence length. A 4-layer model whose head
    # (vocabulary 4096 over hidden 64) is 6.4 layers' work at the 32 tokens --max-prompt-tokens 16
    # --max-response-tokens 16 allow and 0.47 at the 4,096 weighed without limits: with the limits the
    # even split's run says what balancing would take off its last stage (8.4 -> 7.4 layers' work:
    # 11.9%) and balanced runs 3, 1 -- the same run as one rank; without them balanced is the even 2, 2.
    heavy = os.path.join(args.models, "tiny-llama-4l-vocab4k")
    limits = ["--max-prompt-tokens", "16", "--max-response-tokens", "16"]
    one = sft(args, heavy, data, os.path.join(tmp, "heavy-1"), 1, *limits)
    even = sft(args, heavy, data, os.path.join(tmp, "heavy-even"), 2, "--pp", "2", *limits)
    assert "spin sft: pipeline balance: --pp-layers balanced (3,1) would take 11.9% off the slowest stage's " \
           "work" in even.stdout, even.stdout
    bal = sft(args, heavy, data, os.path.join(tmp, "balanced"), 2, "--pp", "2", "--pp-layers", "balanced", *limits)
    assert "spin sft: --pp-layers balanced: 3,1 layers a stage" in bal.stdout, bal.stdout
    assert "pipeline balance" not in bal.stdout, bal.stdout
    for run_, name in [(even, "heavy-even"), (bal, "balanced")]:
        got, want = losses(run_.stdout), losses(one.stdout)
        assert len(got) == len(want) and all(abs(g - w) <= 1e-5 * abs(w) for g, w in zip(got, want)), (got, want)
        same_weights(os.path.join(tmp, name), os.path.join(tmp, "heavy-1"),
                     "tiny-llama-4l-vocab4k at PP 2, %s" % ("--pp-layers balanced (3,1)" if name == "balanced"
                                                            else "the even split (2,2)"), 1e-5)
    long_ = sft(args, heavy, data, os.path.join(tmp, "balanced-long"), 2, "--pp", "2", "--pp-layers", "balanced")
    assert "spin sft: --pp-layers balanced: 2,2 layers a stage" in long_.stdout, long_.stdout


def mean_score(args, model, data, tmp):
    out = os.path.join(tmp, "scores.jsonl")
    run_ok(args.mpiexec, [args.spin, "score", "--model", model, "--input", data, "--output", out], 1)
    scores = [json.loads(l)["logprob_sum"] for l in open(out)]
    return sum(scores) / len(scores)


def case_learns(args, tmp):
    data = os.path.join(tmp, "copy.jsonl")
    copy_task(data)
    model = os.path.join(args.models, "tiny-llama")
    trained = os.path.join(tmp, "trained")
    r = sft(args, model, data, trained, 2, "--tp", "2", "--epochs", "4", "--profile-step-start", "2",
            "--profile-step-end", "3", "--validation", data, "--eval-interval", "8", "--metrics",
            os.path.join(tmp, "learns.jsonl"), "--tensorboard", os.path.join(tmp, "learns-tb"))
    l = losses(r.stdout)
    # The profile: steps 2 and 3 on both TP ranks, each one forward then backward per micro-batch
    # (one stage: 1F1B without warm-up), 16 / 2 = 8 of them.
    assert "profiled steps 2..3" in r.stdout, r.stdout
    for rank in (0, 1):
        events = [e for e in json.load(open(trained + ".profile/rank%d.json" % rank))["traceEvents"] if e["ph"] == "X"]
        steps = sorted((e for e in events if e["name"] == "step"), key=lambda e: e["ts"])
        assert [s["args"]["step"] for s in steps] == [2, 3], steps
        for s in steps:
            work = [(e["name"][0].upper(), e["args"]["mb"]) for e in sorted(events, key=lambda e: e["ts"])
                    if e["name"] in ("forward", "backward") and s["ts"] <= e["ts"] < s["ts"] + s["dur"]]
            assert work == [(k, mb) for mb in range(8) for k in "FB"], (rank, work)
    assert l[-1] < l[0] - 1.0, "the loss did not fall: %r" % l
    before, after = mean_score(args, model, data, tmp), mean_score(args, trained, data, tmp)
    assert after > before + 10.0, (before, after)
    print("loss %.3f -> %.3f; mean response log-probability %.2f -> %.2f" % (l[0], l[-1], before, after))
    # --validation (here the training data) every 8 steps and after the last: the mean NLL per response
    # token, which falls; the last equals spin score's of the written model over the same records, and
    # PP 2 x DP 2 gives the same losses.
    v = validation_losses(r.stdout)
    assert [s for s, _ in v] == [8, 16] and v[1][1] < v[0][1], v
    # --metrics holds the same figures, a line a step and a validation, every digit.
    lines = [json.loads(l) for l in open(os.path.join(tmp, "learns.jsonl"))]
    train_lines = [m for m in lines if m["kind"] == "train"]
    assert [m["step"] for m in train_lines] == list(range(1, 17)), lines
    assert all(abs(m["loss"] - x) <= 5e-5 for m, x in zip(train_lines, l)) and len(l) == 16, (train_lines, l)
    assert [(m["step"], round(m["loss"], 6)) for m in lines if m["kind"] == "validation"] == v, (lines, v)
    # --tensorboard: the same figures as scalars (float32), read by an independent parser.
    f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
    want = {}
    for m in lines:
        names = ["loss", "lr", "grad_norm", "tokens_per_second", "tflops_per_rank"] if m["kind"] == "train" else ["loss"]
        want.update({("%s/%s" % (m["kind"], n), m["step"]): f32(m[n]) for n in names})
    assert tensorboard_events.scalars(os.path.join(tmp, "learns-tb")) == want
    out = os.path.join(tmp, "validation_scores.jsonl")
    run_ok(args.mpiexec, [args.spin, "score", "--model", trained, "--input", data, "--output", out], 1)
    nll = -sum(json.loads(line)["logprob_sum"] for line in open(out))
    tokens = sum(len(json.loads(line)["response"]) for line in open(data))
    assert abs(v[1][1] - nll / tokens) <= 1e-5 * nll / tokens, (v, nll / tokens)
    other = sft(args, model, data, os.path.join(tmp, "trained-pp2"), 4, "--pp", "2", "--epochs", "4",
                "--validation", data, "--eval-interval", "8")
    w = validation_losses(other.stdout)
    assert [s for s, _ in w] == [8, 16] and all(abs(a[1] - b[1]) <= 1e-5 * b[1] for a, b in zip(w, v)), (w, v)
    print("validation loss %.4f -> %.4f: spin score's %.4f; PP 2 x DP 2 the same" % (v[0][1], v[1][1], nll / tokens))


def case_bad_input(args, tmp):
    data = os.path.join(tmp, "copy.jsonl")
    copy_task(data)
    model = os.path.join(args.models, "tiny-llama")
    out = os.path.join(tmp, "out")

    def cmd(*extra):
        return sft_command(args, model, data, out, *extra)

    e = lambda name, c, pattern, ranks=2: expect_error(args.mpiexec, name, c, pattern, ranks, out)
    e("more-stages-than-layers", cmd("--pp", "4"),
      r"pipeline-parallel size 4 exceeds the model's 2 layers", ranks=4)
    e("pp-layers-sum", cmd("--pp", "2", "--pp-layers", "1,2"),
      r"--pp-layers sums to 3 layers but the model has 2")
    e("pp-layers-not-a-list", cmd("--pp", "2", "--pp-layers", "1;1"),
      r"--pp-layers \"1;1\" is not a comma-separated list of integers")
    e("batch-not-divisible", cmd("--micro-batch-size", "3"),
      r"global batch size 16 is not divisible by micro-batch size 3 x data-parallel size 2 = 6")
    e("batch-larger-than-data", cmd("--global-batch-size", "128"),
      r"spin sft: --global-batch-size 128 exceeds the 64 examples of the training data \(\S+\.jsonl: 64 records ")
    e("unknown-schedule", cmd("--lr-schedule", "cosin"), r"unknown learning-rate schedule \"cosin\"")
    e("bad-frozen-dtype", cmd("--frozen-dtype", "fp16"), r"spin sft: --frozen-dtype must be auto, bf16 or fp32, got 'fp16'")
    e("negative-logits-chunk", cmd("--logits-chunk-rows", "-5"), r"--logits-chunk-rows must be 0 \(off\) or positive")
    e("router-bias-dense", cmd("--router-bias-update-rate", "0.001"),
      r"spin sft: --router-bias-update-rate = 0\.001: .* has no router correction bias")
    e("profile-window", cmd("--profile-step-start", "4", "--profile-step-end", "1"),
      r"--profile-step-start \(4\) \.\. --profile-step-end \(1\) is no window of steps")
    e("eval-interval-without-validation", cmd("--eval-interval", "4"), r"spin sft: --eval-interval needs --validation")
    e("negative-micro-batch-tokens", cmd("--micro-batch-tokens", "-1"),
      r"spin sft: --micro-batch-tokens must not be negative")
    e("bad-save-dtype", cmd("--save-dtype", "fp4"), r"spin sft: --save-dtype \"fp4\" is not f32, bf16 or f16")
    e("zero-save-max-shard-size", cmd("--save-max-shard-size", "0"), r"spin sft: --save-max-shard-size must be positive")
    # An unsigned option read "-1" as 2^64 - 1 (no limit); a negative decay step count as "the last step"; an
    # infinite LoRA alpha gave NaN at the first step.
    e("negative-save-max-shard-size", cmd("--save-max-shard-size", "-1"),
      r"spin sft: --save-max-shard-size must be positive, got -1")
    e("negative-seed", cmd("--seed", "-1"), r"spin sft: --seed must not be negative, got -1")
    # Above the hidden size an adapter is larger, not more expressive (2^63 - 1 was a "negative dimension").
    e("lora-rank-above-hidden", cmd("--lora-rank", "9223372036854775807"),
      r"spin sft: --lora-rank = 9223372036854775807 is above the model's hidden size 64")
    e("negative-decay-steps", cmd("--lr-decay-steps", "-5"),
      r"spin sft: --lr-decay-steps must not be negative \(0: the last step\), got -5")
    e("infinite-lora-alpha", cmd("--lora-rank", "2", "--lora-alpha", "inf"),
      r"spin sft: --lora-alpha = inf: must be positive and finite")
    e("negative-timeout", cmd("--distributed-timeout-minutes", "-1"),
      r"--distributed-timeout-minutes must be >= 0 \(0: no timeout\), got -1")
    e("adam-beta", cmd("--adam-beta2", "1"), r"spin sft: --adam-beta1 and --adam-beta2 must be in \[0, 1\), got 0\.9 and 1")
    e("adam-eps", cmd("--adam-eps", "0"), r"spin sft: --adam-eps must be > 0, got 0")
    e("negative-weight-decay", cmd("--weight-decay", "-0.1"), r"spin sft: --weight-decay must not be negative, got -0\.1")
    # A save directory that cannot be created (under a file here; a read-only mount alike): refused
    # before training, not at the first save.
    afile = os.path.join(tmp, "afile")
    open(afile, "w").close()
    e("uncreatable-save-dir", cmd("--save-dir", os.path.join(afile, "save")),
      r"--save-dir \S*afile/save: cannot create the directory \(Not a directory\)")
    # FP8 of a model whose files hold a layer's experts as one 3-D tensor: refused before any work.
    e("fp8-granitemoe", sft_command(args, os.path.join(args.models, "tiny-granitemoe"), data, out, "--save-dtype", "fp8"),
      r"spin sft: --save-dtype fp8: the model's files hold \"model\.layers\.0\.block_sparse_moe\.[a-z_]+\.weight\" as "
      r"a \[\d+, \d+, \d+\] tensor .* which block-scaled FP8 does not hold")
    # Interleaving: chunks the model's layers cannot fill, fewer sequences than the stages (a cut by tokens
    # cannot make one micro-batch a stage of them), fewer micro-batches than the stages, and a pipeline
    # of one stage.
    e("vpp-more-chunks-than-layers", cmd("--pp", "2", "--vpp", "2"),
      r"--vpp 2 at pp 2: 4 model chunks, but the model has 2 layers")
    four = os.path.join(args.models, "tiny-llama-4l")
    e("vpp-by-tokens", sft_command(args, four, data, out, "--pp", "2", "--vpp", "2", "--micro-batch-size", "1",
                                   "--global-batch-size", "1", "--micro-batch-tokens", "30"),
      r"spin sft: --vpp 2: the interleaved schedule trains at least one micro-batch a pipeline stage, 2 a step, "
      r"but each data-parallel rank has 1 sequences a step, which micro-batches cut by tokens cannot make 2 of")
    e("vpp-micro-batches", sft_command(args, four, data, out, "--pp", "2", "--vpp", "2", "--micro-batch-size", "16"),
      r"spin sft: --vpp 2: the interleaved schedule trains at least one micro-batch a pipeline stage, 2 a step, "
      r"but each data-parallel rank has 1 micro-batches a step")
    e("vpp-one-stage", sft_command(args, four, data, out, "--vpp", "2"),
      r"--vpp 2 \(interleaved pipeline stages\) needs a pipeline of 2 stages or more, not 1")
    e("diverging-run", cmd("--lr", "1e12", "--lr-schedule", "constant", "--clip-grad", "0",
                           "--max-nonfinite-steps", "2", "--epochs", "20"),
      r"non-finite (loss|gradient norm) in 2 consecutive steps")


def case_resume(args, tmp):
    data = os.path.join(tmp, "copy.jsonl")
    copy_task(data)
    model = os.path.join(args.models, "tiny-llama")
    whole_metrics, metrics_path = os.path.join(tmp, "whole.jsonl"), os.path.join(tmp, "metrics.jsonl")
    whole = sft(args, model, data, os.path.join(tmp, "whole"), 2, "--pp", "2", "--metrics", whole_metrics)
    out, save = os.path.join(tmp, "out"), os.path.join(tmp, "save")
    cmd = sft_command(args, model, data, out, "--pp", "2", "--save-dir", save, "--metrics", metrics_path)
    r = run(args.mpiexec, cmd, 2, fault="signal-after-step@3")  # SIGUSR1 in the last rank after step 3
    assert r.returncode == REQUEUE, (r.returncode, r.stdout, r.stderr)
    assert "stopped by a signal on another rank after step 3" in r.stdout, r.stdout
    assert open(os.path.join(save, "latest")).read().strip() == "step_00000003" and not os.path.exists(out)
    # The stopped run's save directory as spin score's model -- its latest checkpoint, step 3, saved
    # at PP 2 and read at TP 2 -- scores as the checkpoint's Hugging Face export, bitwise.
    exported = os.path.join(tmp, "step3-hf")
    run_ok(args.mpiexec, [args.spin, "ckpt", "export-hf", os.path.join(save, "step_00000003"), exported], 1)
    scored = []
    for m in (save, exported):
        scores = os.path.join(tmp, "scores-%d.jsonl" % len(scored))
        run_ok(args.mpiexec, [args.spin, "score", "--model", m, "--input", data, "--output", scores, "--tp", "2"], 2)
        scored.append(open(scores).read())
    assert scored[0] == scored[1] and scored[0], scored[0][:200]
    # ... and a new spin sft starts from it as from that export: the same weights, bitwise.
    for name, m in (("from-checkpoint", save), ("from-export", exported)):
        sft(args, m, data, os.path.join(tmp, name), 1, "--max-steps", "3")
    assert (open(os.path.join(tmp, "from-checkpoint", "model.safetensors"), "rb").read() ==
            open(os.path.join(tmp, "from-export", "model.safetensors"), "rb").read())
    resumed = run_ok(args.mpiexec, cmd + ["--resume"], 2)
    assert "step_00000003 (step 3)" in resumed.stdout, resumed.stdout
    step_lines = lambda s: [l.split(" | ")[:5] for l in s.splitlines() if l.startswith("step ")]
    assert step_lines(resumed.stdout) == step_lines(whole.stdout)[3:], (resumed.stdout, whole.stdout)
    assert (open(os.path.join(out, "model.safetensors"), "rb").read() ==
            open(os.path.join(tmp, "whole", "model.safetensors"), "rb").read())
    # --metrics: the stopped run's lines up to step 3 and the resumed run's after it are the uninterrupted
    # run's, but for the timings.
    untimed = lambda path: [{k: v for k, v in json.loads(l).items() if k not in ("tokens_per_second", "tflops_per_rank")}
                            for l in open(path)]
    assert untimed(metrics_path) == untimed(whole_metrics) and len(untimed(whole_metrics)) == 8, (
        open(metrics_path).read(), open(whole_metrics).read())
    print("SIGUSR1 after step 3: exit 75, checkpoint step 3; --resume: the uninterrupted losses, weights and "
          "--metrics lines, bitwise")
    # A time limit (of ~0 here): every run saves and exits 75 after one step of its own, and the
    # requeued runs together end with the uninterrupted weights.
    timed_out, timed_save = os.path.join(tmp, "timed"), os.path.join(tmp, "timed_save")
    cmd = sft_command(args, model, data, timed_out, "--pp", "2", "--save-dir", timed_save, "--exit-duration-mins",
                      "1e-9", "--resume")
    runs = run_requeued(args.mpiexec, cmd, 2, lambda k: "stopped by the time limit (spin sft: --exit-duration-mins = "
                                                        "1e-09 min) after step %d;" % k, 20)
    assert runs == len(step_lines(whole.stdout)), (runs, whole.stdout)
    assert (open(os.path.join(timed_out, "model.safetensors"), "rb").read() ==
            open(os.path.join(tmp, "whole", "model.safetensors"), "rb").read())
    print("--exit-duration-mins ~0: one step a run, exit 75, %d runs in all: the uninterrupted weights, bitwise" % runs)
    # Every 3 steps, the last 2 kept; another batch size cannot take the position over.
    every = os.path.join(tmp, "every")
    sft(args, model, data, os.path.join(tmp, "out2"), 1, "--save-dir", every, "--save-interval", "3", "--keep-last", "2")
    assert sorted(d for d in os.listdir(every) if d.startswith("step_")) == ["step_00000003", "step_00000006"]
    expect_error(args.mpiexec, "other-batch-size",
                 sft_command(args, model, data, os.path.join(tmp, "out3"), "--save-dir", every,
                             "--global-batch-size", "8", "--resume"),  # the flag last: pairs before it
                 r"step_00000006 was saved by a run with 16 sequences per step; this run has 8", 1,
                 os.path.join(tmp, "out3"))
    expect_error(args.mpiexec, "resume-without-save-dir",
                 sft_command(args, model, data, os.path.join(tmp, "out3"), "--resume"),
                 r"--save-interval, --exit-duration-mins and --resume need --save-dir", 1, os.path.join(tmp, "out3"))
    # A fresh run into that save directory (no --resume) would write over its checkpoints: refused,
    # nothing there touched.
    before = tree_state(every)
    expect_error(args.mpiexec, "earlier-run-in-save-dir",
                 sft_command(args, model, data, os.path.join(tmp, "out3"), "--save-dir", every),
                 r"--save-dir \S*every holds an earlier run's checkpoints \(latest: \S*every/step_00000006\), which "
                 r"this run would write over: pass --resume", 1, os.path.join(tmp, "out3"))
    assert tree_state(every) == before
    # An existing --output (out2, written above): refused before training, replaced under --overwrite.
    out2 = os.path.join(tmp, "out2")
    before = tree_state(out2)
    expect_error(args.mpiexec, "existing-output", sft_command(args, model, data, out2),
                 r"spin sft: --output: \S*out2 exists \(a Hugging Face model directory\), which the output would "
                 r"replace: pass --overwrite", 1, None)
    assert tree_state(out2) == before
    sft(args, model, data, out2, 1, "--max-steps", "3", "--overwrite")  # the flag last: pairs before it
    assert tree_state(out2) != before
    expect_error(args.mpiexec, "save-dir-in-output",
                 sft_command(args, model, data, os.path.join(tmp, "o"), "--save-dir", os.path.join(tmp, "o", "s")),
                 r"spin sft: --save-dir \S*o/s is --output \S*/o or inside it, which the output replaces at the end", 1,
                 os.path.join(tmp, "o"))
    print("--save-interval 3: steps 3 and 6 kept; other batch size, --resume without --save-dir and a fresh run "
          "into the save directory refused")
    # --optimizer rmsprop: its state (PyTorch's square_avg) goes into the checkpoints, which an
    # AdamW run refuses by name.
    rms_save = os.path.join(tmp, "rms_save")
    rms = sft(args, model, data, os.path.join(tmp, "rms"), 1, "--optimizer", "rmsprop", "--save-dir", rms_save,
              "--save-interval", "3")
    adam_lines = [l.split(" | ")[2] for l in whole.stdout.splitlines() if l.startswith("step ")]
    rms_lines = [l.split(" | ")[2] for l in rms.stdout.splitlines() if l.startswith("step ")]
    assert rms_lines[0] == adam_lines[0] and rms_lines[1] != adam_lines[1], (rms_lines, adam_lines)
    expect_error(args.mpiexec, "other-optimizer",
                 sft_command(args, model, data, os.path.join(tmp, "out4"), "--save-dir", rms_save, "--resume"),
                 r"step_0*6 holds the state of optimizer rmsprop, not of this run's adamw", 1,
                 os.path.join(tmp, "out4"))
    expect_error(args.mpiexec, "bad-optimizer", sft_command(args, model, data, os.path.join(tmp, "out4"),
                                                            "--optimizer", "adam"),
                 r"spin sft: --optimizer \"adam\" is not adamw or rmsprop", 1, os.path.join(tmp, "out4"))
    print("--optimizer rmsprop: trains otherwise than AdamW; its checkpoint refused by an AdamW run")


def case_lora(args, tmp):
    data = os.path.join(tmp, "copy.jsonl")
    copy_task(data)
    model = os.path.join(args.models, "tiny-llama")
    plain = ["--lora-rank", "4", "--lora-alpha", "8", "--lora-targets", "q_proj,v_proj", "--lr", "1e-2"]
    lora = plain + ["--lora-dropout", "0.1"]  # masks keyed by example, position, layer, projection, column
    one = sft(args, model, data, os.path.join(tmp, "one"), 1, *lora)
    undropped = losses(sft(args, model, data, os.path.join(tmp, "plain"), 1, *plain).stdout)
    assert all(abs(a - b) > 1e-6 for a, b in zip(losses(one.stdout)[1:], undropped[1:])), (one.stdout, undropped)
    many = sft(args, model, data, os.path.join(tmp, "many"), 8, *(lora + ["--tp", "2", "--pp", "2",
                                                                         "--distributed-optimizer", "--sequence-parallel"]))
    got, want = losses(many.stdout), losses(one.stdout)
    assert len(got) == len(want) == 8 and all(abs(g - w) <= 1e-5 * abs(w) for g, w in zip(got, want)), (got, want)
    same_weights(os.path.join(tmp, "many"), os.path.join(tmp, "one"), "LoRA at TP 2 x PP 2 x DP 2 vs 1 rank")
    # --frozen-dtype bf16 under --precision bf16: the frozen model in bf16 alone gives the losses of its float32
    # values' bf16 copy; the written model is the merge rounded to bf16, its norms the input's.
    bf16 = lora + ["--precision", "bf16", "--tp", "2"]
    kept = losses(sft(args, model, data, os.path.join(tmp, "bf16-fp32"), 2, *bf16).stdout)
    frozen = sft(args, model, data, os.path.join(tmp, "bf16-frozen"), 2, *(bf16 + ["--frozen-dtype", "bf16"]))
    assert len(kept) == 8 and losses(frozen.stdout) == kept, (frozen.stdout, kept)
    written = read_safetensors(os.path.join(tmp, "bf16-frozen", "model.safetensors"))
    source = read_safetensors(os.path.join(model, "model.safetensors"))
    norms = [n for n in source if n.endswith("norm.weight")]
    assert norms and all(written[n] == source[n] for n in norms), norms
    assert written["model.layers.0.self_attn.q_proj.weight"] != source["model.layers.0.self_attn.q_proj.weight"]
    # The written model: the input with the adapters merged -- rank-4 changes of q and v alone.
    before = read_safetensors(os.path.join(model, "model.safetensors"))
    after = read_safetensors(os.path.join(tmp, "one", "model.safetensors"))
    changed = sorted(n for n in after if after[n] != before[n])
    config = json.load(open(os.path.join(model, "config.json")))
    hidden = config["hidden_size"]
    assert changed == sorted("model.layers.%d.self_attn.%s_proj.weight" % (l, p)
                             for l in range(config["num_hidden_layers"]) for p in "qv"), changed
    for name in changed:
        diff = [x - y for x, y in zip(after[name], before[name])]
        largest = max(abs(d) for d in diff)
        assert matrix_rank([diff[i:i + hidden] for i in range(0, len(diff), hidden)], 1e-4 * largest) == 4, name
    # Stopped after step 3 and resumed: the adapters, their moments and the frozen model carry over.
    out, save = os.path.join(tmp, "out"), os.path.join(tmp, "save")
    cmd = sft_command(args, model, data, out, *(lora + ["--pp", "2", "--save-dir", save]))
    whole = sft(args, model, data, os.path.join(tmp, "whole"), 2, *(lora + ["--pp", "2"]))
    r = run(args.mpiexec, cmd, 2, fault="signal-after-step@3")
    assert r.returncode == REQUEUE, (r.returncode, r.stdout, r.stderr)
    resumed = run_ok(args.mpiexec, cmd + ["--resume"], 2)
    assert losses(resumed.stdout) == losses(whole.stdout)[3:], (resumed.stdout, whole.stdout)
    assert (open(os.path.join(out, "model.safetensors"), "rb").read() ==
            open(os.path.join(tmp, "whole", "model.safetensors"), "rb").read())
    # The step-3 checkpoint as a PEFT adapter over its frozen model: spin score, spin generate and
    # spin sft with --adapter (merged at load) read it as its merged model, bitwise.
    step3 = os.path.join(save, "step_00000003")
    exported = {w: os.path.join(tmp, "step3-" + w) for w in ("lora", "base", "policy")}
    for which, where in exported.items():
        run_ok(args.mpiexec, [args.spin, "ckpt", "export-hf", step3, where, "--which", which], 1)
    scored = {}
    for name, model_args in (("merged", ["--model", exported["policy"]]),
                             ("adapter", ["--model", exported["base"], "--adapter", exported["lora"]])):
        out_file = os.path.join(tmp, "scores-%s.jsonl" % name)
        run_ok(args.mpiexec, [args.spin, "score", "--input", data, "--output", out_file, "--tp", "2"] + model_args, 2)
        scored[name] = [json.loads(l)["logprob_sum"] for l in open(out_file)]
        sft(args, exported["base"] if name == "adapter" else exported["policy"], data, os.path.join(tmp, "sft-" + name),
            1, *(["--adapter", exported["lora"]] if name == "adapter" else []))
    assert scored["adapter"] == scored["merged"], (scored["adapter"][:3], scored["merged"][:3])
    # The checkpoint itself as spin score's model: its policy is the merged model (PP 2 -> TP 2).
    from_checkpoint = os.path.join(tmp, "scores-checkpoint.jsonl")
    run_ok(args.mpiexec, [args.spin, "score", "--model", step3, "--input", data, "--output", from_checkpoint, "--tp", "2"],
           2)
    assert [json.loads(l)["logprob_sum"] for l in open(from_checkpoint)] == scored["merged"]
    assert (open(os.path.join(tmp, "sft-adapter", "model.safetensors"), "rb").read() ==
            open(os.path.join(tmp, "sft-merged", "model.safetensors"), "rb").read())
    expect_error(args.mpiexec, "no-adapter", sft_command(args, model, data, os.path.join(tmp, "none"), "--adapter",
                                                         os.path.join(tmp, "nowhere")),
                 r"nowhere/adapter_config\.json: cannot open", 1, os.path.join(tmp, "none"))
    check_fused_peft_export(args, data, tmp)
    other = sft_command(args, model, data, os.path.join(tmp, "other"), "--pp", "2", "--save-dir", save, "--resume")
    expect_error(args.mpiexec, "lora-checkpoint", other,
                 r"step_00000003 was saved by a run with LoRA rank 4, alpha 8, targets q_proj,v_proj; this run is "
                 r"without LoRA", 2, os.path.join(tmp, "other"))
    print("--lora-rank 4 (q, v), --lora-dropout 0.1 (other losses than without): 1 rank = TP 2 x PP 2 x DP 2 (ZeRO-1, "
          "SP); the output = the input + rank-4 changes of "
          "q and v alone; resumed after step 3 bitwise; its checkpoint's adapter (PEFT's format) over its base scores and "
          "trains as its merged model, bitwise; a LoRA checkpoint refused by a full run")


def check_fused_peft_export(args, data, tmp):
    """Phi-3's adapters for PEFT: spin trains pairs on q, v and gate (parts of the fused qkv_proj and
    gate_up_proj) and on o_proj at rank 2; the export writes one pair per fused module -- qkv_proj's
    of rank 4 (two parts adapted) with alpha 2 x 6 in rank_pattern and alpha_pattern, gate_up_proj's
    of rank 2 --, o_proj's as it is. Each adapted tensor of the merged model is the base's +
    (alpha / r) B A with the module's rank and alpha, as PEFT merges it, and spin score with the
    adapter over the base agrees with the merged model."""
    phi3 = os.path.join(args.models, "tiny-phi3")
    save = os.path.join(tmp, "phi3-save")
    sft(args, phi3, data, os.path.join(tmp, "phi3"), 2, "--lora-rank", "2", "--lora-alpha", "6", "--lora-targets",
        "q_proj,v_proj,o_proj,gate_proj", "--lr", "1e-2", "--tp", "2", "--save-dir", save, "--save-interval", "4")
    step = os.path.join(save, "step_00000004")
    out = {w: os.path.join(tmp, "phi3-" + w) for w in ("lora", "base", "policy")}
    for which, where in out.items():
        run_ok(args.mpiexec, [args.spin, "ckpt", "export-hf", step, where, "--which", which], 1)
    adapter = json.load(open(os.path.join(out["lora"], "adapter_config.json")))
    assert (adapter["r"], adapter["lora_alpha"]) == (2, 6.0), adapter
    assert (adapter["rank_pattern"], adapter["alpha_pattern"]) == ({"qkv_proj": 4}, {"qkv_proj": 12.0}), adapter
    assert sorted(adapter["target_modules"]) == ["gate_up_proj", "o_proj", "qkv_proj"], adapter
    lora = read_safetensors(os.path.join(out["lora"], "adapter_model.safetensors"))
    base = read_safetensors(os.path.join(out["base"], "model.safetensors"))
    policy = read_safetensors(os.path.join(out["policy"], "model.safetensors"))
    config = json.load(open(os.path.join(phi3, "config.json")))
    worst = 0.0
    for l in range(config["num_hidden_layers"]):
        for module in ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj"):
            short = module.split(".")[1]
            r = adapter["rank_pattern"].get(short, adapter["r"])
            scale = adapter["alpha_pattern"].get(short, adapter["lora_alpha"]) / r
            prefix = "base_model.model.model.layers.%d.%s." % (l, module)
            a, b = lora[prefix + "lora_A.weight"], lora[prefix + "lora_B.weight"]
            name = "model.layers.%d.%s.weight" % (l, module)
            cols, rows = len(a) // r, len(b) // r
            assert len(base[name]) == rows * cols, (name, len(base[name]), rows, cols)
            for i in range(rows):
                for j in range(cols):
                    ba = sum(b[i * r + k] * a[k * cols + j] for k in range(r))
                    worst = max(worst, abs(base[name][i * cols + j] + scale * ba - policy[name][i * cols + j]))
    assert worst < 1e-6, worst
    untouched = [n for n in base if "qkv_proj" not in n and "o_proj" not in n and "gate_up_proj" not in n]
    assert untouched and all(base[n] == policy[n] for n in untouched)
    scored = {}
    for name, model_args in (("merged", ["--model", out["policy"]]), ("adapter", ["--model", out["base"], "--adapter",
                                                                                  out["lora"]])):
        out_file = os.path.join(tmp, "phi3-scores-%s.jsonl" % name)
        run_ok(args.mpiexec, [args.spin, "score", "--input", data, "--output", out_file, "--tp", "2"] + model_args, 2)
        scored[name] = [json.loads(l)["logprob_sum"] for l in open(out_file)]
    assert all(abs(x - y) <= 1e-5 * max(1.0, abs(y)) for x, y in zip(scored["adapter"], scored["merged"])), scored
    print("Phi-3 LoRA (q, v, o, gate at rank 2) exported for PEFT as one pair per fused module (qkv_proj's rank 4, "
          "alpha 12 in rank_pattern / alpha_pattern): "
          "the merged model = base + (alpha / r) B A to %.2g; spin score over the base with it = the merged model" % worst)


def main():
    run_case(__doc__, {"layouts": case_layouts, "learns": case_learns, "bad-input": case_bad_input,
                       "resume": case_resume, "lora": case_lora}, "spin_sft_")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""End-to-end checks of `spin plan` (its figures are checked against real allocations in
tests/mpi/train/memory_plan_test.cpp; this checks the command):

  cli   a 7B-shaped config.json at TP 8: the per-rank rows add up to the printed peak; the
        distributed optimizer shrinks the AdamW row by dp; the exit status says whether it fits
        (0) or not (3); RMSprop's state is half AdamW's; the reference in bf16 alone (2 bytes a parameter, the
        embedding 4 more) but with --frozen-dtype fp32 (6) or LoRA's base (fp32 unless asked); the suggested layouts use the GPUs given and fit; under mpirun one rank
        prints; bad input (missing model, tp not dividing the heads, a bad size, seq beyond the
        model) is one error line; --ep on Mixtral 8x7B: the same parameters a rank, larger expert
        buffers, fewer LoRA parameters; --vpp 2: the same parameters a stage, the interleaved
        order's activation sets (an independent walk of Megatron's order), impossible chunks refused.
  configs  jobs/configs/*.ini hold only keys spin train knows, and the layout each is written
        for fits an 80 GiB GPU by spin plan.
"""
import json
import os
import re
import shutil

from e2e_common import expect_error, run, run_case

UNITS = {"KiB": 2 ** 10, "MiB": 2 ** 20, "GiB": 2 ** 30}


def size(text):
    value, unit = text.split()
    return float(value) * UNITS[unit]


def rows(stdout):
    """{label: [bytes per stage]} of the table's size rows."""
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"^\s+(\S.*?)\s{2,}((?:\d+\.\d+ [KMG]iB\s*)+)$", line)
        if m:
            out[m.group(1).strip()] = [size(v) for v in re.findall(r"\d+\.\d+ [KMG]iB", m.group(2))]
    return out


def interleaved_sets(stage, p, v, m):
    """Activation sets stage `stage` of p holds under interleaved 1F1B with v chunks and m micro-batches:
    Megatron's order walked -- groups of N micro-batches through the chunks (Megatron's
    microbatch_group_size_per_vp_stage: p, or the smallest N whose last group is p or more), the last
    group what is left (get_schedule_table), warm-up 2 (p - stage - 1) + (v - 1) N forwards (all when
    that is as many or more), then 1F1B -- counting the most micro-batch-chunks alive at once, the
    model's last chunk's (the head's, on the last stage) apart."""
    n = next(n for n in range(p, m + 1) if m % n == 0 or m % n >= p)
    starts = list(range(0, m, n))
    forward = [(c, i) for g in starts for c in range(v) for i in range(g, min(g + n, m))]
    backward = [(v - 1 - c, i) for g in starts for c in range(v) for i in range(g, min(g + n, m))]
    total = m * v
    warmup = min(2 * (p - stage - 1) + (v - 1) * n, total)
    order = [("F", x) for x in forward[:warmup]]
    for k in range(warmup, total):
        order += [("F", forward[k]), ("B", backward[k - warmup])]
    order += [("B", x) for x in backward[total - warmup:]]
    live, most = [0, 0], [0, 0]
    for kind, (chunk, _) in order:
        pool = 1 if stage == p - 1 and chunk == v - 1 else 0
        live[pool] += 1 if kind == "F" else -1
        most[pool] = max(most[pool], live[pool])
    return sum(most)


def case_cli(args, tmp):
    config = os.path.join(tmp, "config.json")
    json.dump({"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
               "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 4096,
               "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "eos_token_id": 2}, open(config, "w"))
    base = [args.spin, "plan", "--model", config, "--tp", "8", "--pp", "2", "--dp", "4", "--micro-batch", "1",
            "--seq", "2048", "--global-batch", "64", "--gpus", "64"]
    r = run(args.mpiexec, base, 2)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert r.stdout.count("spin plan:") == 1, r.stdout  # one rank prints
    t = rows(r.stdout)
    parts = ["policy weights", "gradients", "master weights (fp32)", "AdamW moments", "reference weights",
             "= activations"]
    for stage in range(2):
        persistent = sum(t[k][stage] for k in parts)
        transient = max(t["generation KV cache (transient)"][stage] + t["generation buffers (transient)"][stage],
                        t["reference scoring (transient)"][stage])
        assert abs(persistent + transient - t["peak"][stage]) <= 0.02 * 2 ** 30, (stage, persistent, transient, t)
    # bf16 weights, fp32 grads, masters and 2 moments: 2 : 4 : 4 : 8
    assert abs(t["AdamW moments"][0] / t["policy weights"][0] - 4) < 0.01, t
    # The reference in bf16 alone (model.frozen_dtype auto): 2 bytes a parameter as the policy's weights, and 4 more
    # for what the forward reads in float32 -- stage 0's embedding shard (32000 / 8 x 4096), the norms (a few KiB);
    # --frozen-dtype fp32: float32 values and their bf16 copy, 6 bytes a parameter.
    embedding = 4 * 32000 // 8 * 4096
    assert abs(t["reference weights"][0] - t["policy weights"][0] - embedding) < 0.01 * embedding, t
    assert 0 < t["reference weights"][1] - t["policy weights"][1] < 0.002 * t["policy weights"][1], t
    t32 = rows(run(args.mpiexec, base + ["--frozen-dtype", "fp32"], 1).stdout)
    for stage in range(2):
        assert abs(t32["reference weights"][stage] / t["policy weights"][stage] - 3) < 0.005, (t32, t)
        assert abs(t32["peak"][stage] - t["peak"][stage] - (t32["reference weights"][stage] -
                                                            t["reference weights"][stage])) < 0.02 * 2 ** 30, (t32, t)
    m = re.search(r"with the distributed optimizer: peak (\d+\.\d+ GiB)", r.stdout)
    assert m, r.stdout
    d = run(args.mpiexec, base + ["--distributed-optimizer"], 1)
    td = rows(d.stdout)
    assert abs(td["AdamW moments (distributed)"][0] * 4 - t["AdamW moments"][0]) < 0.01 * 2 ** 30, (td, t)
    assert re.search(r"peak %s of" % re.escape(m.group(1)), d.stdout), d.stdout
    # RMSprop keeps one state buffer: half AdamW's row, and the peak that much lower.
    rms = run(args.mpiexec, base + ["--optimizer", "rmsprop"], 1).stdout
    tr = rows(rms)
    assert abs(tr["RMSprop state"][0] * 2 - t["AdamW moments"][0]) < 0.01 * 2 ** 30, (tr, t)
    assert abs(t["peak"][0] - tr["peak"][0] - tr["RMSprop state"][0]) < 0.02 * 2 ** 30, (tr, t)
    # LoRA rank 16 on every projection: the adapters are what is trained -- per rank and layer
    # 16 x 34,080 elements (A whole and B's rows of q/k/v and gate/up, A's columns and B whole of
    # o and down, at TP 8), 16 layers a stage -- and the reference stays.
    lora_out = run(args.mpiexec, base + ["--lora-rank", "16"], 1).stdout
    tl = rows(lora_out)
    trained = 16 * 16 * 34080
    assert re.search(r"of which trained \(LoRA adapters\)\s+%.2fM" % (trained / 1e6), lora_out), lora_out
    assert abs(tl["adapter weights"][0] / (2 * trained) - 1) < 0.005, tl  # three digits printed
    assert abs(tl["AdamW moments"][0] / (8 * trained) - 1) < 0.005, tl
    assert tl["reference weights"] == t32["reference weights"], (tl, t32)  # LoRA's base: fp32 unless asked
    tl16 = rows(run(args.mpiexec, base + ["--lora-rank", "16", "--frozen-dtype", "bf16"], 1).stdout)
    assert tl16["reference weights"] == t["reference weights"], (tl16, t)
    # The peak drops by the model's policy copy, gradients, masters and moments, less the
    # adapters' and their activations (the kept u's and the backward's LoRA scratch).
    four = ["gradients", "master weights (fp32)", "AdamW moments"]
    saved = (t32["policy weights"][0] + sum(t32[k][0] for k in four)) - (tl["adapter weights"][0] +
                                                                        sum(tl[k][0] for k in four))
    grown = tl["= activations"][0] - t["= activations"][0]
    assert 0 < grown < 0.01 * t["= activations"][0] and saved > 6 * 2 ** 30, (saved, grown)
    assert abs(t32["peak"][0] - tl["peak"][0] - (saved - grown)) < 0.05 * 2 ** 30, (tl, t32)
    layouts = re.findall(r"--tp (\d+) --pp (\d+) \(dp (\d+)\).*peak (\d+\.\d+ GiB)", r.stdout)
    assert layouts, r.stdout
    for tp, pp, dp, peak in layouts:
        assert int(tp) * int(pp) * int(dp) == 64 and int(tp) <= 8 and size(peak) <= 80 * 2 ** 30, (tp, pp, dp, peak)
    print("7B-shaped, TP 8 x PP 2 x DP 4: peak %s; %d layouts of 64 GPUs suggested" %
          (re.search(r"peak (\S+ GiB) of", r.stdout).group(1), len(layouts)))

    # --attention-backend unfused: cuBLAS attention keeps 8 x 2 x 2048^2 probabilities (32 heads
    # / TP 8 = 4 per rank, 2 sequences per micro-batch) per layer, float32, instead of a
    # log-sum-exp per head and row: 256 MiB more per layer and micro-batch in flight (stage 1: one).
    u = rows(run(args.mpiexec, base + ["--attention-backend", "unfused"], 1).stdout)
    extra = u["= activations"][1] - t["= activations"][1]
    expected = 16 * (4 * 2 * 2048 ** 2 - 4 * 2 * 2048) * 4  # 16 layers on stage 1
    assert abs(extra - expected) <= 0.01 * 2 ** 30, (extra, expected, u, t)
    print("--attention-backend unfused: stage-1 activations +%.2f GiB (probabilities kept)" % (extra / 2 ** 30))

    # --rollout-step-tokens: the generation buffers hold one call's 2048 tokens instead of a
    # rollout of 32 prompts prefilled at once (65536 rows).
    whole = rows(run(args.mpiexec, base + ["--rollout-batch", "32"], 1).stdout)
    chunked = run(args.mpiexec, base + ["--rollout-batch", "32", "--rollout-step-tokens", "2048"], 1).stdout
    assert "rollout 32 (2048 tokens per call)" in chunked, chunked
    for stage in range(2):
        a, b = whole["generation buffers (transient)"][stage], rows(chunked)["generation buffers (transient)"][stage]
        assert 8 * b < a, (stage, a, b)  # the last stage keeps its rollout rows of logits
    print("--rollout-step-tokens 2048: generation buffers %.2f -> %.2f GiB" %
          (whole["generation buffers (transient)"][0] / 2 ** 30, rows(chunked)["generation buffers (transient)"][0] / 2 ** 30))

    # --recompute-num-layers 8: each stage's first 8 of its 16 layers recomputed, the other 8 keeping
    # their activations -- between none and all: all less 7 of the 15 sets all save, plus 8 inputs.
    full = rows(run(args.mpiexec, base + ["--recompute-activations"], 1).stdout)
    half = rows(run(args.mpiexec, base + ["--recompute-activations", "--recompute-num-layers", "8"], 1).stdout)
    for stage in range(2):
        none_, all_, some = t["= activations"][stage], full["= activations"][stage], half["= activations"][stage]
        assert all_ < some < none_, (stage, none_, some, all_)
        assert abs((none_ - some) / (none_ - all_) - 7 / 15) < 0.05, (stage, none_, some, all_)
    print("--recompute-num-layers 8 of 16: stage-0 activations %.2f GiB (none %.2f, all %.2f)" %
          (half["= activations"][0] / 2 ** 30, t["= activations"][0] / 2 ** 30, full["= activations"][0] / 2 ** 30))

    # --vpp 2: the 32 layers in 4 chunks of 8, stage 0 holding chunks 0 and 2 -- the same parameters a
    # stage (the embedding and the head where they were) -- and the activation sets in flight of the
    # interleaved order (16 micro-batches: groups of 2), the model's last chunk's apart, as an
    # independent walk of Megatron's order counts them: stage 0 5 sets of 8 layers, 1.25x 1F1B's 2 of 16
    # in layers.
    inter = run(args.mpiexec, base + ["--vpp", "2"], 1)
    assert inter.returncode == 0 and "tp 8 x pp 2 (2 chunks a stage) x dp 4" in inter.stdout, inter.stdout
    ti = rows(inter.stdout)
    for key in ["policy weights", "gradients", "AdamW moments", "reference weights"]:
        assert ti[key] == t[key], (key, ti, t)
    row = re.search(r"activations \(interleaved, in flight\)(.*)", inter.stdout).group(1)
    sets = [int(n) for n in re.findall(r"(\d+) x \d+\.\d+ [KMG]iB", row)]
    assert sets == [interleaved_sets(s, 2, 2, 16) for s in range(2)] == [5, 4], sets
    assert 1.25 < ti["= activations"][0] / t["= activations"][0] < 1.45, (ti, t)  # + a set of scratch each
    # 5 micro-batches a step, not whole groups of 2: groups of 3 and 2; stage 0 warms up with 2 + 3
    # forwards (6 sets in flight), stage 1 holds 4 of chunk 0 and 2 of the head's.
    odd = run(args.mpiexec, base[:-4] + ["--global-batch", "20", "--gpus", "64", "--vpp", "2"], 1)
    assert odd.returncode == 0 and "5 micro-batches per step (in groups of 3)" in odd.stdout, (odd.stdout, odd.stderr)
    row = re.search(r"activations \(interleaved, in flight\)(.*)", odd.stdout).group(1)
    odd_sets = [int(n) for n in re.findall(r"(\d+) x \d+\.\d+ [KMG]iB", row)]
    assert odd_sets == [interleaved_sets(s, 2, 2, 5) for s in range(2)] == [6, 6], odd_sets
    print("--vpp 2: the same parameters a stage, %s activation sets, stage 0 %.2f -> %.2f GiB" %
          (sets, t["= activations"][0] / 2 ** 30, ti["= activations"][0] / 2 ** 30))

    # --pp-layers balanced on Llama 3 8B's shape (vocabulary 128,256: a head of 2.1 layers' work at 4,096
    # tokens) at PP 4: 9, 9, 8, 6 layers, every stage's training work a token within a layer's of the
    # others (the even split leaves the last 10.1 layers' work), the largest a ninth less than the even
    # split's -- the work figures computed here from the shape as flops.h counts it.
    llama3 = os.path.join(tmp, "llama3.json")
    json.dump({"vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
               "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 8192,
               "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "eos_token_id": 2},
              open(llama3, "w"))
    work, peaks = {}, {}
    for split in ["", "balanced"]:
        r = run(args.mpiexec, [args.spin, "plan", "--model", llama3, "--pp", "4", "--seq", "4096", "--global-batch",
                               "8", "--gpu-mem", "141GiB"] + (["--pp-layers", split] if split else []), 1)
        assert r.returncode == 0, (r.stdout, r.stderr)
        layers = [int(n) for n in re.search(r"\n\s+layers\s+([\d ]+)\n", r.stdout).group(1).split()]
        work[split] = [float(x) for x in re.search(r"training GFLOP a token\s+([\d. ]+)\n", r.stdout).group(1).split()]
        assert layers == ([8, 8, 8, 8] if not split else [9, 9, 8, 6]), (split, layers)
        # The even split's plan says what balancing would take off; the balanced one's has nothing to say.
        hint = re.search(r"pipeline balance: the slowest stage does ([\d.]+) GFLOP a token .*--pp-layers balanced "
                         r"\(9,9,8,6\) takes it to ([\d.]+) \(-10\.8%\)", r.stdout)
        assert bool(hint) == (not split), (split, r.stdout)
        # The layouts it lists split their layers the same way: the asked layout's line has the plan's
        # peak, and the balanced search's other pipelines differ from the even one's.
        peak = re.search(r"\npeak ([\d.]+) GiB of", r.stdout).group(1)
        listed = re.search(r"layouts of 4 GPUs that fit 141\.00 GiB \(fewest model-parallel ranks first(, layers "
                           r"balanced)?\):\n((?:  --.*\n)+)", r.stdout)
        assert listed and bool(listed.group(1)) == bool(split), (split, r.stdout)
        peaks[split] = dict(re.findall(r"  (--tp \d+ --pp \d+) \(dp \d+\).*peak ([\d.]+) GiB", listed.group(2)))
        assert peaks[split]["--tp 1 --pp 4"] == peak, (split, peak, listed.group(2))
    assert peaks[""]["--tp 2 --pp 2"] != peaks["balanced"]["--tp 2 --pp 2"], peaks
    assert peaks[""]["--tp 4 --pp 1"] == peaks["balanced"]["--tp 4 --pp 1"], peaks
    layer = 6 * (2 * 4096 * 4096 + 2 * 1024 * 4096 + 3 * 4096 * 14336) / 1e9 + 12 * 4096 * 4096 / 1e9
    head = 6 * 128256 * 4096 / 1e9
    for got, want in zip(work[""] + work["balanced"], [8 * layer] * 3 + [8 * layer + head] +
                         [9 * layer, 9 * layer, 8 * layer, 6 * layer + head]):
        assert abs(got - want) < 1e-3 * want, (work, want)
    assert abs(max(work["balanced"]) / max(work[""]) - 9 / (8 + head / layer)) < 1e-3, work
    print("--pp-layers balanced at PP 4 on Llama 3 8B's shape: layers 9, 9, 8, 6, training GFLOP a token %s "
          "against the even split's %s" % (work["balanced"], work[""]))

    # A spin checkpoint as the model (its model_config): the Hugging Face directory's plan.
    tiny = os.path.join(args.models, "tiny-llama")
    checkpoint = os.path.join(tmp, "checkpoint")
    run(args.mpiexec, [args.spin, "ckpt", "import-hf", tiny, checkpoint], 1)
    tiny_plan = [args.spin, "plan", "--seq", "64", "--micro-batch", "2", "--model"]
    # And a directory holding config.json alone (no weights: a plan reads none).
    config_only = os.path.join(tmp, "config-only")
    os.makedirs(config_only)
    shutil.copy(os.path.join(tiny, "config.json"), config_only)
    from_hf, from_checkpoint, from_config = (run(args.mpiexec, tiny_plan + [m], 1).stdout
                                             for m in (tiny, checkpoint, config_only))
    assert rows(from_hf) == rows(from_checkpoint) == rows(from_config) and "peak" in rows(from_hf), \
        (from_hf, from_checkpoint, from_config)
    print("a spin checkpoint, or a directory with config.json alone, as --model: the Hugging Face model's plan")

    # --ep 8: Mixtral 8x7B's experts spread over the TP ranks -- the same parameters a rank (one expert
    # whole instead of 1/8 of each), the experts' buffers for the busiest case (each row's one expert
    # there at full width: 4 x k = 2's at 1/8), one expert a rank in the header, the suggestions at TP 8;
    # with LoRA, the experts' replicated factors gone from 7 of 8 ranks. --ep 3 does not divide --tp 8.
    mixtral = [args.spin, "plan", "--model", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "jobs",
                                                          "configs", "models", "mixtral-8x7b-instruct-v0.1.json"),
               "--tp", "8", "--pp", "2", "--dp", "1", "--micro-batch", "1", "--seq", "1024", "--gpus", "16"]
    split, spread = (run(args.mpiexec, mixtral + ["--ep", ep], 1) for ep in ("1", "8"))
    assert split.returncode == 0 and spread.returncode == 0, (split.stderr, spread.stderr)
    assert "experts over ep 8 (1 a rank)" in spread.stdout, spread.stdout
    params = lambda out: re.search(r"parameters on the rank\s+(.*)", out).group(1)
    assert params(split.stdout) == params(spread.stdout), (split.stdout, spread.stdout)
    assert rows(spread.stdout)["= activations"][0] > rows(split.stdout)["= activations"][0]
    suggested = re.findall(r"--tp (\d+) --pp \d+ \(dp \d+\) --ep 8", spread.stdout)
    assert suggested and all(tp == "8" for tp in suggested), spread.stdout
    lora = ["--lora-rank", "16"]
    trained = lambda out: float(re.search(r"of which trained \(LoRA adapters\)\s+(\d+\.\d+)M", out).group(1))
    t1, t8 = (trained(run(args.mpiexec, mixtral + lora + ["--ep", ep], 1).stdout) for ep in ("1", "8"))
    assert t8 < 0.5 * t1, (t1, t8)
    print("--ep 8 on Mixtral 8x7B at TP 8: the same parameters a rank, activations %.2f -> %.2f GiB; LoRA's trained "
          "%.1fM -> %.1fM a rank" % (rows(split.stdout)["= activations"][0] / 2 ** 30,
                                     rows(spread.stdout)["= activations"][0] / 2 ** 30, t1, t8))
    expect_error(args.mpiexec, "ep-not-dividing-tp", mixtral + ["--ep", "3"],
                 r"expert-parallel size 3 does not divide tensor-parallel size 8", 2, None)

    small = run(args.mpiexec, base + ["--gpu-mem", "4GiB"], 2)
    assert small.returncode == 3 and "DOES NOT FIT" in small.stdout, (small.returncode, small.stdout, small.stderr)
    print("4 GiB GPUs: exit 3, DOES NOT FIT")

    e = lambda name, extra, pattern, cmd=base: expect_error(args.mpiexec, name, cmd + extra, pattern, 2, None)
    e("missing-model", [], r"nowhere\.json: cannot open \(the model's config\.json\)",
      [args.spin, "plan", "--model", os.path.join(tmp, "nowhere.json"), "--seq", "10"])
    short = [args.spin, "plan", "--model", config, "--dp", "4"]
    e("tp-heads", ["--tp", "3", "--seq", "100"], r"num_attention_heads \(32\) is not divisible by tensor-parallel size 3", short)
    e("bad-size", ["--gpu-mem", "lots"], r"\"lots\" is not a size")
    # "inf" reads as a double (its conversion to bytes was undefined); 0, negative batches and a negative --seq
    # were planned.
    e("infinite-size", ["--gpu-mem", "inf"], r"\"inf\" is not a size")
    e("zero-size", ["--gpu-mem", "0"], r"spin plan: --gpu-mem must be positive, got 0")
    # Bytes beyond 64 bits were planned as nonsense that fits ("-2 sequences", negative activations).
    e("huge-micro-batch", ["--seq", "64", "--micro-batch", "9223372036854775807"],
      r"spin plan: --micro-batch 9223372036854775807 at --seq 64 is more than 2\^32 tokens", short)
    e("lora-rank-above-hidden", ["--seq", "64", "--lora-rank", "9223372036854775807"],
      r"spin plan: --lora-rank = 9223372036854775807 is above the model's hidden size \d+", short)
    e("zero-pipeline-stages", ["--pp", "0", "--seq", "64"],  # divided by zero (SIGFPE) checking the rollout's step tokens
      r"spin plan: --tp, --pp and --dp must be at least 1, got 1, 0 and 4", short)
    e("negative-batch", ["--rollout-batch", "-1"],
      r"spin plan: --global-batch and --rollout-batch must not be negative \(0: the default\), got 64 and -1")
    e("negative-seq", ["--seq", "-1"], r"spin plan: --seq \(-1\) must be at least 2 tokens", short)
    e("bad-attention-backend", ["--attention-backend", "flash"], r"unknown attention backend 'flash'")
    e("bad-frozen-dtype", ["--frozen-dtype", "fp16"], r"spin plan: --frozen-dtype must be auto, bf16 or fp32, got 'fp16'")
    e("bad-optimizer", ["--optimizer", "sgd"], r"spin plan: --optimizer \"sgd\" is not adamw or rmsprop")
    e("recompute-layers-alone", ["--recompute-num-layers", "4"],
      r"--recompute-num-layers must be 0 \(every layer\) or positive, with --recompute-activations")
    e("seq-too-long", ["--seq", "5000"], r"beyond the model's 4096", short)
    e("prompt-beyond-seq", ["--prompt", "200", "--seq", "100"],
      r"spin plan: --prompt \(200\) must be in \[0, --seq = 100\]: a prompt is part of its sequence", short)
    e("vpp-one-stage", ["--vpp", "2", "--seq", "100"], r"vpp 2: model chunks a stage of a pipeline of 2 stages or more",
      short)
    e("vpp-groups", ["--pp", "2", "--vpp", "2", "--global-batch", "4", "--seq", "100"],
      r"vpp 2: 1 micro-batches a step are fewer than the 2 stages, which the interleaved schedule needs", short)
    e("batch-split", ["--global-batch", "6", "--seq", "100"], r"global batch 6 is not a multiple", short)
    e("step-tokens", ["--rollout-batch", "32", "--rollout-step-tokens", "8"],
      r"--rollout-step-tokens = 8 cannot feed the 16 sequences one model call holds \(32 in flight over 2 pipeline")


# The shipped configs: (config, model shape, GPUs it is written for).
CONFIGS = [("tinyllama-1.1b.ini", "tinyllama-1.1b.json", 8), ("llama-2-7b.ini", "llama-2-7b.json", 16),
           ("mistral-7b.ini", "mistral-7b-v0.1.json", 16),
           ("llama-3.2-1b-instruct.ini", "llama-3.2-1b-instruct.json", 8),
           ("qwen2.5-1.5b-instruct.ini", "qwen2.5-1.5b-instruct.json", 8), ("qwen3-1.7b.ini", "qwen3-1.7b.json", 8),
           ("deepseek-r1-distill-qwen-7b.ini", "deepseek-r1-distill-qwen-7b.json", 8),
           ("gemma-7b-it.ini", "gemma-7b-it.json", 8), ("gemma-2-9b-it.ini", "gemma-2-9b-it.json", 8),
           ("gemma-3-1b-it.ini", "gemma-3-1b-it.json", 8), ("gemma-3-27b-it.ini", "gemma-3-27b-it.json", 16),
           ("zephyr-7b-spin-iter0.ini", "mistral-7b-v0.1.json", 16), ("zephyr-7b-spin.ini", "mistral-7b-v0.1.json", 16),
           ("zephyr-7b-spin-lora.ini", "mistral-7b-v0.1.json", 8),
           ("mistral-nemo-instruct-2407.ini", "mistral-nemo-instruct-2407.json", 16),
           ("phi-4-mini-instruct.ini", "phi-4-mini-instruct.json", 8), ("smollm3-3b.ini", "smollm3-3b.json", 8),
           ("phi-3.5-mini-instruct-8k.ini", "phi-3.5-mini-instruct.json", 8),
           ("granite-3.1-8b-instruct.ini", "granite-3.1-8b-instruct.json", 8),
           ("olmo-7b-instruct.ini", "olmo-7b-instruct.json", 8),
           ("olmo-2-1124-7b-instruct.ini", "olmo-2-1124-7b-instruct.json", 8),
           ("olmo-3-7b-instruct.ini", "olmo-3-7b-instruct.json", 8),
           ("olmo-2-0325-32b-sft.ini", "olmo-2-0325-32b.json", 16),
           ("stablelm-2-zephyr-1.6b.ini", "stablelm-2-zephyr-1.6b.json", 8),
           ("aya-23-8b.ini", "aya-23-8b.json", 8), ("command-r7b.ini", "command-r7b.json", 8),
           ("pythia-6.9b.ini", "pythia-6.9b.json", 8), ("phi-2.ini", "phi-2.json", 8),
           ("mixtral-8x7b-instruct.ini", "mixtral-8x7b-instruct-v0.1.json", 32),
           ("mixtral-8x7b-instruct-lora.ini", "mixtral-8x7b-instruct-v0.1.json", 8),
           ("qwen3-30b-a3b.ini", "qwen3-30b-a3b.json", 32),
           ("qwen1.5-moe-a2.7b-chat.ini", "qwen1.5-moe-a2.7b-chat.json", 8),
           ("c4ai-command-r-plus.ini", "c4ai-command-r-plus.json", 64),
           ("stablelm-2-12b-chat.ini", "stablelm-2-12b.json", 8),
           ("glm-4-9b-0414.ini", "glm-4-9b-0414.json", 8), ("exaone-4.0-32b.ini", "exaone-4.0-32b.json", 16),
           ("seed-oss-36b-instruct.ini", "seed-oss-36b-instruct.json", 16),
           ("glm-4.5-air-lora.ini", "glm-4.5-air.json", 16),
           ("dots.llm1.inst-lora.ini", "dots.llm1.inst.json", 16),
           ("moonlight-16b-a3b-instruct.ini", "moonlight-16b-a3b-instruct.json", 8),
           ("deepseek-v2-lite-chat.ini", "deepseek-v2-lite-chat.json", 8),
           ("deepseek-v3-lora.ini", "deepseek-v3.json", 64)]


def case_configs(args, tmp):
    """jobs/configs/*.ini: every key is one spin train knows, and the layout each is written for
    fits an 80 GiB GPU by spin plan's arithmetic."""
    import configparser
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "jobs", "configs")
    for name, shape, gpus in CONFIGS:
        path = os.path.join(root, name)
        r = run(args.mpiexec, [args.spin, "train", "--config", path], 1)
        errors = [l for l in r.stderr.splitlines() if l.startswith("spin: error")]
        assert r.returncode != 0 and len(errors) == 1, (name, r.stderr)
        # Past the configuration's keys and values: the placeholder paths, the layout, or (the
        # configs run on GPUs) no GPU here.
        assert re.search(r"/path/to/|world size 1 is not divisible|--device cuda: (no CUDA device is visible|"
                         r"this spin was built without CUDA)", errors[0]), (name, errors[0])
        c = configparser.ConfigParser(inline_comment_prefixes=("#",))
        c.read(path)
        tp, pp = int(c["parallel"]["tp"]), int(c["parallel"]["pp"])
        seq = int(c["data"]["max_prompt_tokens"]) + int(c["data"]["max_response_tokens"])
        cmd = [args.spin, "plan", "--model", os.path.join(root, "models", shape), "--tp", str(tp), "--pp", str(pp),
               "--dp", str(gpus // (tp * pp)), "--micro-batch", c["spin"]["micro_batch_size"], "--seq", str(seq),
               "--global-batch", c["spin"]["global_batch_size"], "--rollout-batch", c["spin"]["rollout_batch_size"],
               "--gpu-mem", "80GiB"]
        if c["optim"].getboolean("distributed_optimizer"):
            cmd.append("--distributed-optimizer")
        if c["parallel"].get("ep"):
            cmd += ["--ep", c["parallel"]["ep"]]
        for key, flag in [("sequence_parallel", "--sequence-parallel"), ("recompute_activations", "--recompute-activations")]:
            if c["model"].getboolean(key, fallback=False):
                cmd.append(flag)
        if c["spin"].get("rollout_step_tokens"):
            cmd += ["--rollout-step-tokens", c["spin"]["rollout_step_tokens"]]
        if c["model"].get("logits_chunk_rows"):
            cmd += ["--logits-chunk-rows", c["model"]["logits_chunk_rows"]]
        if c["optim"].get("name"):
            cmd += ["--optimizer", c["optim"]["name"]]
        if c["model"].get("frozen_dtype"):
            cmd += ["--frozen-dtype", c["model"]["frozen_dtype"]]
        if c.has_section("lora"):
            cmd += ["--lora-rank", c["lora"]["rank"], "--lora-targets", c["lora"].get("targets", "all-linear"),
                    "--lora-dropout", c["lora"].get("dropout", "0")]
        if c["parallel"].get("pp_layers"):
            cmd += ["--pp-layers", c["parallel"]["pp_layers"]]
        p = run(args.mpiexec, cmd, 1)
        # Where an even split leaves a stage 2% or more slower, the config balances the stages.
        assert "pipeline balance:" not in p.stdout, (name, re.search(r"pipeline balance:.*", p.stdout).group(0))
        assert p.returncode == 0, (name, p.returncode, p.stdout, p.stderr)
        # A mixture of experts: the parameters a token meets (the model cards' "active" counts).
        active = {"mixtral-8x7b-instruct.ini": "8 experts, 2 a token; 12.880 B parameters a token",
                  "mixtral-8x7b-instruct-lora.ini": "8 experts, 2 a token; 12.880 B parameters a token",
                  "qwen3-30b-a3b.ini": "128 experts, 8 a token; 3.353 B parameters a token",
                  "qwen1.5-moe-a2.7b-chat.ini": "60 experts, 4 a token, a shared expert of 5632; 2.689 B parameters "
                                                "a token",
                  "glm-4.5-air-lora.ini": "128 experts, 8 a token, a shared expert of 1408, the first 1 layer(s) dense "
                                          "of 10944; 13.423 B parameters a token",
                  "dots.llm1.inst-lora.ini": "128 experts, 6 a token, a shared expert of 2816, the first 1 layer(s) "
                                             "dense of 10944; 14.016 B parameters a token",
                  "moonlight-16b-a3b-instruct.ini": "64 experts, 6 a token, a shared expert of 2816, the first 1 "
                                                    "layer(s) dense of 11264; 2.915 B parameters a token",
                  "deepseek-v2-lite-chat.ini": "64 experts, 6 a token, a shared expert of 2816, the first 1 layer(s) "
                                               "dense of 10944; 2.661 B parameters a token",
                  "deepseek-v3-lora.ini": "256 experts, 8 a token, a shared expert of 2048, the first 3 layer(s) "
                                          "dense of 18432; 37.551 B parameters a token"}.get(name)
        assert active is None or active in p.stdout, (name, p.stdout[:500])
        print("%-20s keys valid; tp %d x pp %d on %d GPUs: %s" % (name, tp, pp, gpus,
              re.search(r"peak \S+ GiB of \S+ GiB per GPU: fits", p.stdout).group(0)))


def main():
    run_case(__doc__, {"cli": case_cli, "configs": case_configs}, "spin_plan_")


if __name__ == "__main__":
    main()

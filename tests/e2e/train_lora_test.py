#!/usr/bin/env python3
"""End-to-end checks of `spin train` with LoRA adapters, one case per CTest test:

  adapters    lora.rank: the same metrics on 1 rank and at TP 2 x PP 2 (sequence parallel); each
              iteration starts at loss log 2 after the merge; stopped and resumed, bitwise; a
              checkpoint's policy is its reference plus a change of rank <= lora.rank in the adapted
              projections alone, and its adapters exported for PEFT, given as model.adapter over
              the reference, start a run as the policy does; a full run's checkpoint and
              ref_offload refused
  dropout     lora.dropout on every projection: 1 rank = TP 2 x PP 2 (sequence parallel), the
              masks acting (other gradients and losses than without dropout) though an iteration's first
              loss is log 2;
              stopped and resumed, bitwise; PEFT's lora_dropout exported; a dropout of 1 refused
"""
import json
import math
import os

from e2e_common import expect_error, matrix_rank, read_safetensors, run_case, run_ok
from train_common import setup, untimed


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


def main():
    run_case(__doc__, {"adapters": case_lora, "dropout": case_lora_dropout},
             "spin_train_lora_")


if __name__ == "__main__":
    main()

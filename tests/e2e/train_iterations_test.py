#!/usr/bin/env python3
"""End-to-end checks of `spin train` across iterations and their responses, one case per CTest test:

  offline     spin generate --spin-data's greedy answers to the training set, trained on with
              spin.generations = data: the metrics of the run that generates them itself
  reset       optim.reset_each_iteration: the second iteration trains as a new run started from
              the first iteration's exported model
  save_generations  spin.save_generations: the iteration's responses exported as SPIN records;
              trained on offline, the online iteration's metrics
  mix         spin.mix_previous_iteration: the second iteration trains on both iterations'
              responses (twice the steps), resumes bitwise from checkpoints at and past the first
              iteration's end, and schedules each iteration's own steps
  reuse       spin.reuse_generations over 2 epochs at PP 2: stopped in the second epoch and resumed,
              bitwise the uninterrupted run, from a checkpoint with the iteration's responses and
              from one without them (the first epoch's generation replayed); the reference sums
              kept for the iteration come back too
"""
import json
import math
import os
import shutil

from e2e_common import expect_error, run_case, run_ok
from train_common import metrics, setup, untimed


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


def main():
    run_case(__doc__, {"offline": case_offline, "reset": case_reset, "reuse": case_reuse, "mix": case_mix, "save_generations": case_save_generations},
             "spin_train_iterations_")


if __name__ == "__main__":
    main()

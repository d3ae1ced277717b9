#!/usr/bin/env python3
"""End-to-end checks of `spin eval`, one case per CTest test:

  layouts     exact match and ground-truth NLL against an independent computation -- greedy
              answers from `spin generate`, half of them kept as the ground truth and half
              altered in their last token (exact match 0.5), the NLL from `spin score`'s
              log-probabilities -- on 1 rank (continuous batching: 3 of 10 in flight), at
              TP 2 x PP 2, at DP 2 and at PP 2 with the ground truth scored in micro-batches cut
              by tokens (--batch-tokens); the model read from a spin checkpoint of another layout
              gives the same figures
  bad-input   a missing data file and a prompt leaving no room for the answer: one error line,
              no output
"""
import json
import os
import random

from e2e_common import expect_error, run_case, run_ok

NEW_TOKENS = 6


def model(args):
    return os.path.join(args.models, "tiny-llama")


def write_jsonl(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def eval_run(args, tmp, data, ranks, *extra, model_dir=None):
    out = os.path.join(tmp, "eval.json")
    if os.path.exists(out):
        os.remove(out)
    run_ok(args.mpiexec, [args.spin, "eval", "--model", model_dir or model(args), "--data", data, "--output", out,
                          "--max-new-tokens", str(NEW_TOKENS)] + list(extra), ranks)
    return json.load(open(out))


def case_layouts(args, tmp):
    rng = random.Random(5)
    prompts = os.path.join(tmp, "prompts.jsonl")
    write_jsonl(prompts, [{"prompt": [rng.randrange(3, 256) for _ in range(rng.randint(1, 9))]} for _ in range(10)])
    greedy = os.path.join(tmp, "greedy.jsonl")
    run_ok(args.mpiexec, [args.spin, "generate", "--model", model(args), "--input", prompts, "--output", greedy,
                          "--greedy", "--max-new-tokens", str(NEW_TOKENS)], 1)
    records = []
    for i, g in enumerate(json.loads(l) for l in open(greedy)):
        response = list(g["response"])
        if i % 2:  # not the model's answer any more
            response[-1] = (response[-1] + 1) % 256 if response[-1] + 1 != 2 else 5
        records.append({"prompt": g["prompt"], "response": response})
    data = os.path.join(tmp, "data.jsonl")
    write_jsonl(data, records)

    scores = os.path.join(tmp, "scores.jsonl")
    run_ok(args.mpiexec, [args.spin, "score", "--model", model(args), "--input", data, "--output", scores], 1)
    nll = -sum(json.loads(l)["logprob_sum"] for l in open(scores)) / sum(len(r["response"]) for r in records)

    for ranks, extra in [(1, ["--batch-size", "3"]), (4, ["--tp", "2", "--pp", "2", "--batch-size", "2"]),
                         (2, ["--batch-size", "4"]), (2, ["--pp", "2", "--batch-size", "10", "--batch-tokens", "24"])]:
        got = eval_run(args, tmp, data, ranks, *extra)
        assert got["examples"] == 10, got
        assert got["exact_match"] == 0.5, (extra, got)
        assert abs(got["nll"] - nll) < 2e-6 * max(1.0, abs(nll)), (extra, got, nll)
        print("%d ranks %s: exact match %.2f, nll %.6f (spin score: %.6f)" %
              (ranks, " ".join(extra), got["exact_match"], got["nll"], nll))
    # The model as a spin checkpoint of TP 2 (read at PP 2): the same figures as the Hugging Face
    # model's at that layout.
    checkpoint = os.path.join(tmp, "checkpoint")
    run_ok(args.mpiexec, [args.spin, "ckpt", "import-hf", model(args), checkpoint, "--tp", "2"], 2)
    from_hf = eval_run(args, tmp, data, 2, "--pp", "2", "--batch-size", "3")
    assert eval_run(args, tmp, data, 2, "--pp", "2", "--batch-size", "3", model_dir=checkpoint) == from_hf
    print("from a spin checkpoint of TP 2, at PP 2: the Hugging Face model's figures")


def case_bad_input(args, tmp):
    out = os.path.join(tmp, "eval.json")
    cmd = lambda data, *extra: [args.spin, "eval", "--model", model(args), "--data", data, "--output", out] + list(extra)
    expect_error(args.mpiexec, "missing-data", cmd(os.path.join(tmp, "nowhere.jsonl")), r"nowhere\.jsonl", 2, out)
    long_prompt = os.path.join(tmp, "long.jsonl")
    write_jsonl(long_prompt, [{"prompt": [5, 6], "response": [7]}, {"prompt": [5] * 505, "response": [7]}])
    expect_error(args.mpiexec, "no-room", cmd(long_prompt, "--max-new-tokens", "10"),
                 r"long\.jsonl:2: the prompt leaves no room for 10 new tokens", 2, out)
    # --pp 0 divided by zero (SIGFPE) checking --max-step-tokens before the layout was.
    expect_error(args.mpiexec, "zero-pipeline-stages", cmd(long_prompt, "--pp", "0"),
                 r"invalid parallel layout: tp 1, pp 0, dp 0 \(each must be at least 1\)", 2, out)


def main():
    run_case(__doc__, {"layouts": case_layouts, "bad-input": case_bad_input}, "spin_eval_")


if __name__ == "__main__":
    main()

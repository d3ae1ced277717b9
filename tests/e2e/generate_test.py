#!/usr/bin/env python3
"""End-to-end checks of `spin generate`, one case per CTest test:

  layouts     1 rank, TP 2, TP 2 x PP 2, PP 2 x DP 2 and different batch sizes (sequences in
              flight, refilled as they finish, or every prompt at once) write the same
              responses (log-probabilities to 1e-5), and a Mixtral with its experts spread over
              the TP ranks (--ep 2) its one rank's; the model read from a spin checkpoint of
              another layout writes them bitwise
  scores      `spin score` of prompt + response gives the log-probabilities generation reported
  bad-input   over-long and empty prompts, invalid sampling values: one error line, no output
  text        text prompts ({"prompt": "..."} and {"messages": [...]}) through a model's
              tokenizer.json and the llama3 template: the prompt ids are the template's, the
              responses those of the same ids given directly, and response_text their decoding
  resume      --save-every: rounds write the same file as one; --num-samples 3 writes three
              lines per prompt, sample 0 the single-sample response; SIGUSR1 after round 2 stops
              every rank (exit 75) with those rounds' lines in OUT.partial (its run's fingerprint
              in OUT.partial.run), and the same command
              -- after a torn last line too, on another layout -- keeps those lines and ends
              with the uninterrupted run's records; a partial output of other settings is
              refused by name and left alone
"""
import json
import os
import random
import subprocess
import sys

from e2e_common import HF_BPE, REQUEUE, ROOT, expect_error, hf_tokenizer_model, run, run_ok, run_case, run_requeued


def prompts_file(path, n=10, seed=3):
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            f.write(json.dumps({"prompt": [rng.randrange(256) for _ in range(rng.randint(1, 12))]}) + "\n")


def generate(args, out, ranks=1, *extra, model=None):
    cmd = [args.spin, "generate", "--model", model or os.path.join(args.models, "tiny-llama"),
           "--input", args.prompts, "--output", out, "--max-new-tokens", "16", "--top-p", "0.9",
           "--temperature", "1.1", "--eos-ids", "7", "--seed", "11"] + list(extra)
    run_ok(args.mpiexec, cmd, ranks)
    return [json.loads(l) for l in open(out)]


def case_layouts(args, tmp):
    base = generate(args, os.path.join(tmp, "one.jsonl"), 1, "--batch-size", "3")
    for ranks, extra in [(1, ["--batch-size", "64"]), (2, ["--tp", "2"]),
                         (4, ["--tp", "2", "--pp", "2", "--batch-size", "4"]),
                         (4, ["--pp", "2", "--batch-size", "1"]),
                         (1, ["--batch-size", "3", "--max-step-tokens", "5"]),
                         (4, ["--tp", "2", "--pp", "2", "--batch-size", "4", "--max-step-tokens", "2"])]:
        got = generate(args, os.path.join(tmp, "n.jsonl"), ranks, *extra)
        for i, (g, b) in enumerate(zip(got, base)):
            assert g["prompt"] == b["prompt"] and g["response"] == b["response"], (i, extra, g, b)
            assert g["finish_reason"] == b["finish_reason"], (i, extra)
            assert all(abs(x - y) <= 1e-5 for x, y in zip(g["logprobs"], b["logprobs"])), (i, extra)
        print("%d ranks %s: %d responses identical" % (ranks, " ".join(extra), len(got)))
    # A mixture's experts spread over the TP ranks (--ep 2: each rank two of tiny-mixtral's four): one rank's
    # responses, with continuous batching and chunked prefill.
    mixtral = os.path.join(args.models, "tiny-mixtral")
    one = generate(args, os.path.join(tmp, "mixtral-one.jsonl"), 1, "--batch-size", "3", model=mixtral)
    got = generate(args, os.path.join(tmp, "mixtral-ep.jsonl"), 4, "--tp", "2", "--ep", "2", "--pp", "2", "--batch-size",
                   "3", "--max-step-tokens", "4", model=mixtral)
    for i, (g, b) in enumerate(zip(got, one)):
        assert g["response"] == b["response"] and g["finish_reason"] == b["finish_reason"], (i, g, b)
        assert all(abs(x - y) <= 1e-5 for x, y in zip(g["logprobs"], b["logprobs"])), i
    print("tiny-mixtral at TP 2 x PP 2 with ep 2: %d responses as one rank's" % len(got))
    # The model as a spin checkpoint (imported at TP 2 x PP 2, read whole on one rank): the same
    # responses and log-probabilities, bitwise.
    checkpoint = os.path.join(tmp, "checkpoint")
    run_ok(args.mpiexec, [args.spin, "ckpt", "import-hf", os.path.join(args.models, "tiny-llama"), checkpoint, "--tp", "2",
                          "--pp", "2"], 4)
    assert generate(args, os.path.join(tmp, "c.jsonl"), 1, "--batch-size", "3", model=checkpoint) == base
    print("from a spin checkpoint of TP 2 x PP 2: the same responses and log-probabilities, bitwise")
    # --profile at PP 2: on both stages one "generate" range holding every model call; each call
    # advances each of its sequences by one token, so the calls' sequences add up to the tokens
    # generated, and the last stage samples them.
    out = os.path.join(tmp, "profiled.jsonl")
    got = generate(args, out, 2, "--pp", "2", "--batch-size", "3", "--profile")
    tokens = sum(len(r["response"]) for r in got)
    for stage in (0, 1):
        events = [e for e in json.load(open(out + ".profile/rank%d.json" % stage))["traceEvents"] if e["ph"] == "X"]
        outer = [e for e in events if e["name"] == "generate"]
        assert len(outer) == 1 and outer[0]["args"]["prompts"] == len(got), outer
        calls = [e for e in events if e["name"] == "model call"]
        assert all(outer[0]["ts"] <= e["ts"] and e["ts"] + e["dur"] <= outer[0]["ts"] + outer[0]["dur"] + 1e-3 for e in calls)
        assert sum(e["args"]["sequences"] for e in calls) == tokens, (stage, tokens)
        sampled = sum(e["args"]["sequences"] for e in events if e["name"] == "sampling")
        assert sampled == (tokens if stage == 1 else 0), (stage, sampled, tokens)
    summary = json.loads(subprocess.run([sys.executable, os.path.join(ROOT, "jobs", "profile_summary.py"),
                                         out + ".profile", "--json"], check=True, capture_output=True, text=True).stdout)
    for rank, f in summary.items():
        assert f["model_calls"] > 0 and abs(f["sequences_per_call"] * f["model_calls"] - tokens) < 1e-6, (rank, f)
        assert 0 < f["model_share"] + f["sampling_share"] <= 1.001, (rank, f)
    print("--profile at PP 2: the model calls' sequences add up to the %d tokens generated" % tokens)

    # A sliding-window model (tiny-mistral: 2 layers of 8-key windows, kv width 32): its KV cache
    # a ring of the window and the tokens a call feeds a sequence (at most the window, or the
    # budget), not every one of the 20 + 10 positions -- the figure spin generate prints.
    windowed = os.path.join(tmp, "windowed.jsonl")
    with open(windowed, "w") as f:
        for n in (5, 20, 12, 3):
            f.write(json.dumps({"prompt": list(range(10, 10 + n))}) + "\n")
    for extra, rows in (([], 8 + 8 - 1), (["--max-step-tokens", "4"], 8 + 4 - 1)):
        r = run_ok(args.mpiexec, [args.spin, "generate", "--model", os.path.join(args.models, "tiny-mistral"), "--input",
                                  windowed, "--output", os.path.join(tmp, "w.jsonl"), "--max-new-tokens", "10",
                                  "--batch-size", "2"] + extra, 1)
        want = "KV cache of %.1f KiB" % (2 * 2 * 2 * rows * 32 * 4 / 1024)  # keys and values, layers, slots
        assert want in r.stdout, (extra, want, r.stdout)
        print("tiny-mistral %s: %s (%d rows a slot of 30 positions)" % (" ".join(extra) or "no budget", want, rows))


def case_scores(args, tmp):
    gen = generate(args, os.path.join(tmp, "gen.jsonl"), 2, "--tp", "2")
    pairs = os.path.join(tmp, "pairs.jsonl")
    with open(pairs, "w") as f:
        for r in gen:
            f.write(json.dumps({"prompt": r["prompt"], "response": r["response"]}) + "\n")
    scores = os.path.join(tmp, "scores.jsonl")
    run_ok(args.mpiexec, [args.spin, "score", "--model", os.path.join(args.models, "tiny-llama"),
                          "--input", pairs, "--output", scores], 1)
    worst = 0.0
    for r, s in zip(gen, (json.loads(l) for l in open(scores))):
        response_scores = s["token_logprobs"][len(r["prompt"]) - 1:]
        assert len(response_scores) == len(r["logprobs"]), (r, s)
        for a, b in zip(response_scores, r["logprobs"]):
            worst = max(worst, abs(a - b))
        assert abs(sum(r["logprobs"]) - s["logprob_sum"]) < 1e-4
    assert worst < 2e-5, worst
    print("generation log-probabilities match spin score (max |diff| %.2g)" % worst)


def case_bad_input(args, tmp):
    model = os.path.join(args.models, "tiny-llama")
    out = os.path.join(tmp, "out.jsonl")

    def write(name, text):
        p = os.path.join(tmp, name)
        open(p, "w").write(text)
        return p

    long_prompt = write("long.jsonl", '{"prompt": [1, 2]}\n' + json.dumps({"prompt": [1] * 500}) + "\n")
    empty = write("empty.jsonl", '{"prompt": [1]}\n{"prompt": []}\n')

    def cmd(inp, *extra):
        return [args.spin, "generate", "--model", model, "--input", inp, "--output", out] + list(extra)

    e = lambda name, c, pattern: expect_error(args.mpiexec, name, c, pattern, 2, out)
    e("prompt-too-long", cmd(long_prompt, "--max-new-tokens", "20"),
      r"long\.jsonl:2: the prompt has 500 tokens; with --max-new-tokens 20 it needs 520 positions but the model allows 512")
    e("empty-prompt", cmd(empty), r"empty\.jsonl:2: the prompt is empty")
    # A comma-separated list: the error names the file and its own line.
    short = write("short.jsonl", '{"prompt": [1, 2]}\n' * 3)
    e("prompt-too-long-in-a-list", cmd(short + "," + long_prompt, "--max-new-tokens", "20"),
      r"long\.jsonl:2: the prompt has 500 tokens")
    pairs = write("pairs.jsonl", '{"prompt": [1, 2], "response": [3]}\n' * 3)
    long_pair = write("long_pair.jsonl", '{"prompt": [1], "response": [3]}\n' +
                      json.dumps({"prompt": [1] * 500, "response": [3]}) + "\n")
    e("spin-data-prompt-too-long-in-a-list", cmd(pairs + "," + long_pair, "--spin-data", "--max-new-tokens", "20"),
      r"long_pair\.jsonl:2: the prompt has 500 tokens")
    e("top-p-zero", cmd(args.prompts, "--top-p", "0"), r"top_p must be in \(0, 1\], got 0")
    e("min-p-above-one", cmd(args.prompts, "--min-p", "2"), r"min_p must be in \[0, 1\] \(0 disables it\), got 2")
    e("negative-temperature", cmd(args.prompts, "--temperature", "-1"), r"temperature must be > 0, got -1")
    # Read into an unsigned integer, "-1" was 2^64 - 1 without a word.
    e("negative-seed", cmd(args.prompts, "--seed", "-1"), r"spin generate: --seed must not be negative, got -1")
    # Divided by zero (SIGFPE) checking --max-step-tokens before the layout was.
    e("zero-pipeline-stages", cmd(args.prompts, "--pp", "0"), r"invalid parallel layout: tp 1, pp 0, dp 0")
    e("eos-outside-vocab", cmd(args.prompts, "--eos-ids", "2,999"), r"EOS id 999 is outside the vocabulary")
    e("min-above-max", cmd(args.prompts, "--min-new-tokens", "50", "--max-new-tokens", "10"),
      r"min_new_tokens must be in \[0, max_new_tokens = 10\], got 50")
    e("bad-end-sequence", cmd(args.prompts, "--end-sequence", "1,x"), r"--end-sequence \"1,x\" is not a comma-separated list")
    e("end-string-without-tokenizer", cmd(args.prompts, "--end-string", "###"),
      r"--end-string needs the model's tokenizer \(.*tiny-llama has none\)")
    e("step-tokens-below-batch", cmd(args.prompts, "--batch-size", "8", "--pp", "2", "--max-step-tokens", "3"),
      r"--max-step-tokens = 3 cannot feed the 4 sequences one model call holds \(8 in flight over 2 pipeline stages\)")
    # The traces go beside --output: beside a pipe (or /dev/null) they would make a directory there.
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    expect_error(args.mpiexec, "profile-beside-a-pipe",
                 [args.spin, "generate", "--model", model, "--input", args.prompts, "--output", fifo, "--profile"],
                 r"spin generate: --profile writes its traces beside --output \(\S*fifo\.profile\), and \S*fifo is "
                 r"not a regular file", 2, None)
    assert not os.path.exists(fifo + ".profile")


def case_text(args, tmp):
    model = hf_tokenizer_model(os.path.join(tmp, "model"), eos=(1,))  # <|eot_id|> from the template only
    text = os.path.join(tmp, "text.jsonl")
    with open(text, "w") as f:
        f.write(json.dumps({"prompt": "What is 2+2?"}) + "\n")
        f.write(json.dumps({"messages": [{"role": "system", "content": "Be terse."},
                                         {"role": "user", "content": "naïve 日本 🙂"}]}) + "\n")
    common = ["--model", model, "--max-new-tokens", "12", "--seed", "5"]  # --template auto: llama3 here
    out = os.path.join(tmp, "out.jsonl")
    run_ok(args.mpiexec, [args.spin, "generate", "--input", text, "--output", out] + common, 2)
    got = [json.loads(l) for l in open(out)]
    # The first prompt is chat_cases.json's first: what transformers' apply_chat_template gives.
    chat = json.load(open(os.path.join(HF_BPE, "chat_cases.json")))
    assert got[0]["prompt"] == chat[0]["prompt_ids"], (got[0]["prompt"], chat[0]["prompt_ids"])
    for g in got:
        assert g["prompt"][:2] == [0, 3], g["prompt"]  # BOS, <|start_header_id|>
        assert g["prompt"][-2] == 4, g["prompt"]  # the assistant header's <|end_header_id|>, then "\n\n"
        assert isinstance(g["response_text"], str), g
    # The same prompts as ids: the same responses (a response depends on the seed and the line).
    ids = os.path.join(tmp, "ids.jsonl")
    with open(ids, "w") as f:
        for g in got:
            f.write(json.dumps({"prompt": g["prompt"]}) + "\n")
    again = os.path.join(tmp, "again.jsonl")
    run_ok(args.mpiexec, [args.spin, "generate", "--input", ids, "--output", again] + common, 1)
    for g, h in zip(got, (json.loads(l) for l in open(again))):
        assert g["response"] == h["response"] and g["response_text"] == h["response_text"], (g, h)
    # Generation stops at <|eot_id|> (id 2), the llama3 template's end of a response, too.
    assert all(2 not in g["response"][:-1] for g in got), got
    print("text prompts: %d responses, e.g. %r" % (len(got), got[0]["response_text"][:40]))
    # --end-string: three printable ASCII characters from the middle of the first response's text
    # end it at the token that completes them, the tokens before kept as they were.
    full = got[0]["response_text"]
    at = next(k for k in range(len(full) // 3, len(full) - 3)
              if full.find(full[k:k + 3]) == k and all(32 < ord(ch) < 127 for ch in full[k:k + 3]))
    ending = full[at:at + 3]
    cut = os.path.join(tmp, "cut.jsonl")
    run_ok(args.mpiexec, [args.spin, "generate", "--input", text, "--output", cut, "--end-string", ending,
                          "--end-string", "\u2603never"] + common, 2)
    c = json.loads(open(cut).readline())
    assert c["finish_reason"] == "end_string" and got[0]["response"][:len(c["response"])] == c["response"], (c, got[0])
    assert ending in c["response_text"] and c["response_text"] == full[:len(c["response_text"])], (c, full)
    assert len(c["response"]) < len(got[0]["response"]) and ending not in full[:at + 2], (c, full)
    print("--end-string %r: the first response ends at the token completing it (%d of %d tokens)" %
          (ending, len(c["response"]), len(got[0]["response"])))
    # generation_config.json's eos_token_id stops generation too, as transformers' generate() stops:
    # named there, a token the first response holds before its end ends every response at its first
    # occurrence -- each the same up to it (a response depends on the seed and the line only).
    first = got[0]["response"]
    stop = first[0] if len(first) > 1 else None
    assert stop is not None and stop not in (1, 2), first
    with open(os.path.join(model, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 0, "eos_token_id": [1, stop]}, f)
    stopped = os.path.join(tmp, "stopped.jsonl")
    run_ok(args.mpiexec, [args.spin, "generate", "--input", text, "--output", stopped] + common, 1)
    for g, h in zip(got, (json.loads(l) for l in open(stopped))):
        want = g["response"][:g["response"].index(stop) + 1] if stop in g["response"] else g["response"]
        assert h["response"] == want, (g["response"], h["response"], stop)
    with open(os.path.join(model, "generation_config.json"), "w") as f:
        f.write("{")
    r = run(args.mpiexec, [args.spin, "generate", "--input", text, "--output", stopped] + common, 1)
    assert r.returncode != 0 and "generation_config.json: not valid JSON" in r.stderr, r.stderr
    print("generation_config.json's eos_token_id %d: responses end at it; a malformed one is one error" % stop)


def case_resume(args, tmp):
    base = ["--max-new-tokens", "16", "--top-p", "0.9", "--temperature", "1.1", "--eos-ids", "7", "--seed", "11"]

    def cmd(out, *extra):
        return [args.spin, "generate", "--model", os.path.join(args.models, "tiny-llama"), "--input", args.prompts,
                "--output", out] + base + list(extra)

    def same_records(got, want):  # the same responses; log-probabilities to 1e-5 (other batches)
        assert len(got) == len(want), (len(got), len(want))
        for g, w in zip(map(json.loads, got), map(json.loads, want)):
            assert g["prompt"] == w["prompt"] and g["response"] == w["response"], (g, w)
            assert g["finish_reason"] == w["finish_reason"], (g, w)
            assert all(abs(x - y) <= 1e-5 for x, y in zip(g["logprobs"], w["logprobs"])), (g, w)

    whole = os.path.join(tmp, "whole.jsonl")
    run_ok(args.mpiexec, cmd(whole), 2)
    want = open(whole).read().splitlines(keepends=True)
    rounds = os.path.join(tmp, "rounds.jsonl")
    run_ok(args.mpiexec, cmd(rounds, "--save-every", "3", "--batch-size", "2"), 2)
    same_records(open(rounds).read().splitlines(keepends=True), want)
    assert not os.path.exists(rounds + ".partial") and not os.path.exists(rounds + ".partial.run")
    print("--save-every 3 over 2 replicas: the records of one round")

    out = os.path.join(tmp, "out.jsonl")
    r = run(args.mpiexec, cmd(out, "--save-every", "3"), 2, fault="signal-after-round@2")  # SIGUSR1, last rank
    assert r.returncode == REQUEUE, (r.returncode, r.stdout, r.stderr)
    assert "stopped by a signal on another rank after 6 of 10 prompts" in r.stdout, r.stdout
    assert not os.path.exists(out)
    partial = open(out + ".partial").read().splitlines(keepends=True)
    assert open(out + ".partial.run").read().startswith('{"spin_generate_partial": 1, "fingerprint": ')
    same_records(partial, want[:6])
    # A crash while the next round was written: half a line more. Other settings are refused by
    # name and leave the file as it is; the same settings, on one rank, go on after line 6.
    with open(out + ".partial", "a") as f:
        f.write(want[6][:20])
    torn = open(out + ".partial", "rb").read()
    expect_error(args.mpiexec, "other-settings", cmd(out, "--save-every", "3", "--top-k", "5"),
                 r"out\.jsonl\.partial: a partial output of another run \(other inputs or settings", 2, out)
    assert open(out + ".partial", "rb").read() == torn
    r = run_ok(args.mpiexec, cmd(out, "--save-every", "4"), 1)
    assert "holds 6 of the 10 lines" in r.stdout and "4 prompts (after 6 written before)" in r.stdout, r.stdout
    got = open(out).read().splitlines(keepends=True)
    assert got[:6] == partial, "the lines written before stay as they were"
    same_records(got, want)
    assert not os.path.exists(out + ".partial") and not os.path.exists(out + ".partial.run")
    print("SIGUSR1 after round 2: exit 75, 6 lines kept; resumed after a torn line on 1 rank: the uninterrupted records")
    # A time limit (of ~0 here) stops at every round's end -- after one round in each run, so a
    # requeued job always moves on -- and the runs together write the uninterrupted records.
    timed = os.path.join(tmp, "timed.jsonl")
    runs = run_requeued(args.mpiexec, cmd(timed, "--save-every", "4", "--exit-duration-mins", "1e-9"), 2,
                        lambda k: "stopped by the time limit (spin generate: --exit-duration-mins = 1e-09 min) after "
                                  "%d of 10" % (4 * k), 3)
    assert runs == 3, runs
    same_records(open(timed).read().splitlines(keepends=True), want)
    expect_error(args.mpiexec, "time-limit-without-rounds", cmd(out, "--exit-duration-mins", "5"),
                 r"--exit-duration-mins stops at a round's end: it needs --save-every", 1, None)
    print("--exit-duration-mins ~0 with rounds of 4: exit 75 after rounds 1 and 2, then done: the uninterrupted records")
    # --num-samples 3 (in rounds of 4 prompts): three lines per prompt, "sample" 0, 1, 2; sample 0
    # is the prompt's response without the option, the others have noise of their own.
    many = os.path.join(tmp, "many.jsonl")
    run_ok(args.mpiexec, cmd(many, "--num-samples", "3", "--save-every", "4"), 2)
    lines = [json.loads(l) for l in open(many)]
    assert len(lines) == 3 * len(want) and [l["sample"] for l in lines] == [0, 1, 2] * len(want), lines
    same_records([json.dumps({k: v for k, v in l.items() if k != "sample"}) for l in lines[::3]], want)
    first = [json.loads(w) for w in want]
    assert all(l["prompt"] == first[i // 3]["prompt"] for i, l in enumerate(lines))
    assert sum(l["response"] != first[i // 3]["response"] for i, l in enumerate(lines) if i % 3) >= len(want), lines
    print("--num-samples 3: sample 0 = the single response, samples 1 and 2 their own")
    # A partial output without one complete line holds no work: whatever run left it, a new
    # output replaces it.
    stale = os.path.join(tmp, "stale.jsonl")
    open(stale + ".partial", "w").write('{"prompt": [1')
    open(stale + ".partial.run", "w").write('{"spin_generate_partial": 1, "fingerprint": "0", "lines": 3}\n')
    run_ok(args.mpiexec, cmd(stale), 2)
    same_records(open(stale).read().splitlines(keepends=True), want)
    print("a partial output of another run without a complete line: replaced")


def prepare(args, tmp):
    args.prompts = os.path.join(tmp, "prompts.jsonl")
    prompts_file(args.prompts)


def main():
    run_case(__doc__, {"layouts": case_layouts, "scores": case_scores, "bad-input": case_bad_input,
                       "text": case_text, "resume": case_resume}, "spin_generate_", prepare=prepare)


if __name__ == "__main__":
    main()

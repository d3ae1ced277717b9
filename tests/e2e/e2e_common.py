"""Helpers shared by the end-to-end tests: running `spin` under mpirun with a timeout, checking
that bad input gives exactly one error line, reading safetensors files (standard library
only), a tiny model with the Llama-3-style test tokenizer, and the command line every case
script takes."""
import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

TIMEOUT = 120


REQUEUE = 75  # spin's exit status after a stop signal: "run me again to go on" (EX_TEMPFAIL)


def run(mpiexec, cmd, ranks, fault=None):
    """Runs cmd on `ranks` MPI ranks; a hang fails the test instead of blocking it. `fault`:
    a SPIN_FAULT test hook for the run (signal-after-step@N, async-save-fail, ...)."""
    full = [mpiexec, "-n", str(ranks), "--oversubscribe"] + cmd
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OPENBLAS_NUM_THREADS="1")
    if fault is not None:
        env["SPIN_FAULT"] = fault
    try:
        return subprocess.run(full, capture_output=True, text=True, errors="replace", timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        sys.exit("FAIL: timed out after %d s (a hang): %s" % (TIMEOUT, " ".join(full)))


def run_ok(mpiexec, cmd, ranks, fault=None):
    r = run(mpiexec, cmd, ranks, fault)
    if r.returncode != 0:
        sys.exit("FAIL: %s (%d ranks) exited %d:\n%s%s" % (" ".join(cmd), ranks, r.returncode, r.stdout, r.stderr))
    return r


def run_requeued(mpiexec, cmd, ranks, stop_message, most):
    """Runs cmd as a requeued job runs it: again while it exits REQUEUE (at most `most` runs),
    each stop's stdout holding stop_message(k) for its k-th run; the last run must succeed.
    Returns the number of runs."""
    for k in range(1, most + 1):
        r = run(mpiexec, cmd, ranks)
        if r.returncode != REQUEUE:
            assert r.returncode == 0, (k, r.returncode, r.stdout, r.stderr)
            return k
        assert stop_message(k) in r.stdout, (k, stop_message(k), r.stdout)
    sys.exit("FAIL: still requeued after %d runs" % most)


def expect_error(mpiexec, name, cmd, pattern, ranks, output):
    """cmd must exit non-zero with exactly one 'spin: error:' line matching `pattern`, and must
    not have created `output`."""
    r = run(mpiexec, cmd, ranks)
    errors = [l for l in r.stderr.splitlines() if l.startswith("spin: error:")]
    problems = []
    if r.returncode == 0:
        problems.append("exit status 0")
    if len(errors) != 1:
        problems.append("%d 'spin: error' lines, expected 1" % len(errors))
    elif not re.search(pattern, errors[0]):
        problems.append("error line does not match %r" % pattern)
    if output and os.path.exists(output):
        problems.append("an output was written")
    if problems:
        sys.exit("FAIL: %s: %s\nstdout:\n%s\nstderr:\n%s" % (name, "; ".join(problems), r.stdout, r.stderr))
    print("%-24s -> %s" % (name, errors[0]))


def tree_state(path):
    """{file under `path`: (size, modification time in ns)}: compared before and after a refused run,
    whether it wrote, removed or touched anything there."""
    state = {}
    for root, _, files in os.walk(path):
        for f in files:
            st = os.stat(os.path.join(root, f))
            state[os.path.relpath(os.path.join(root, f), path)] = (st.st_size, st.st_mtime_ns)
    return state


def read_safetensors(path):
    """{name: list of floats} for F32 tensors."""
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        assert entry["dtype"] == "F32", entry
        begin, end = entry["data_offsets"]
        out[name] = struct.unpack("<%df" % ((end - begin) // 4), data[begin:end])
    return out


def read_hf_dir(path):
    """read_safetensors of a Hugging Face directory: its model.safetensors, or the files its index names (each
    tensor checked to be in the file the index says)."""
    index = os.path.join(path, "model.safetensors.index.json")
    if not os.path.exists(index):
        return read_safetensors(os.path.join(path, "model.safetensors"))
    weight_map = json.load(open(index))["weight_map"]
    out = {}
    for f in sorted(set(weight_map.values())):
        for name, v in read_safetensors(os.path.join(path, f)).items():
            assert weight_map[name] == f and name not in out, (name, f)
            out[name] = v
    assert sorted(out) == sorted(weight_map), sorted(set(weight_map) ^ set(out))
    return out


def safetensors_tensors(path):
    """[(name, shape, list of floats)] of an F32 safetensors file, in its header's order."""
    blob = open(path, "rb").read()
    header = json.loads(blob[8:8 + struct.unpack("<Q", blob[:8])[0]])
    return [(name, header[name]["shape"], list(v)) for name, v in read_safetensors(path).items()]


def write_safetensors(path, tensors):
    """An F32 safetensors file of [(name, shape, list of floats)] (make_tiny_model's writer)."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "data"))
    import make_tiny_model
    make_tiny_model.write_safetensors(path, tensors, "F32")


def matrix_rank(rows, tolerance):
    """The numerical rank of a matrix (a list of rows), by Gaussian elimination with pivoting."""
    m = [list(r) for r in rows]
    rank, cols = 0, len(m[0])
    for c in range(cols):
        pivot = max(range(rank, len(m)), key=lambda i: abs(m[i][c]), default=None)
        if pivot is None or abs(m[pivot][c]) <= tolerance:
            continue
        m[rank], m[pivot] = m[pivot], m[rank]
        for i in range(rank + 1, len(m)):
            f = m[i][c] / m[rank][c]
            m[i] = [a - f * b for a, b in zip(m[i], m[rank])]
        rank += 1
    return rank


ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
HF_BPE = os.path.join(ROOT, "tests", "data", "hf_bpe", "llama3")
# open-instruct's Tulu chat template (Tulu 3's; OLMo 2 Instruct's with "{{ bos_token }}" in front), its
# newlines written as the files write them, "\\n" escapes inside the Jinja strings.
TULU = ("{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + "
        "'\\n' }}{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '\\n' }}{% elif "
        "message['role'] == 'assistant' %}{% if not loop.last %}{{ '<|assistant|>\\n'  + message['content'] + "
        "eos_token + '\\n' }}{% else %}{{ '<|assistant|>\\n'  + message['content'] + eos_token }}{% endif %}"
        "{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}{% endfor %}")


def hf_tokenizer_model(path, eos=(1, 2), kind="llama3"):
    """A tiny random Llama with tests/data/hf_bpe/llama3's tokenizer.json (vocabulary 1200):
    BOS <|begin_of_text|> (0), EOS ids `eos` (1 <|end_of_text|>, 2 <|eot_id|>). With `kind`
    qwen2, a tiny Qwen2 (q/k/v biases, tied embeddings) with tests/data/hf_bpe/qwen2's tokenizer
    instead, its config.json as Qwen2.5-Instruct's: bos_token_id <|endoftext|> (0; the tokenizer
    has no BOS), eos_token_id <|im_end|> (2); qwen3: a tiny Qwen3 (head norms) with
    hf_bpe/qwen3's tokenizer (<think> </think> too), the same ids; gemma: a tiny Gemma (GeGLU,
    1 + w norms, scaled and tied embeddings) with tests/data/gemma_spm's SentencePiece model
    (vocabulary 400; Gemma's ids: <eos> 1, <bos> 2, <start_of_turn> 4, <end_of_turn> 5); gemma2:
    a tiny Gemma 2 (besides, four norms a layer, its score scale, capped scores and logits) with
    the same tokenizer; gemma3: a tiny Gemma 3 (Gemma 2's parts without caps, head norms, local
    and global layers) with tests/data/gemma3_spm's (<start_of_image> 6 besides); llama_spm / mistral_v3_spm /
    mistral_v7_spm: a tiny Llama with that folder's SentencePiece model in Llama 2's / Mistral v0.3's /
    Mistral Large 2411's layout (tokenizer.model.v7; vocabulary 400, <s> 1, </s> 2, a dummy prefix);
    phi4: a tiny Phi-3 (fused q/k/v and gate/up, LongRoPE over 96 of 192 positions) with
    hf_bpe/phi4's tokenizer (Phi-4's <|endoftext|> 0, <|im_start|> 1, <|im_end|> 2, <|im_sep|> 3);
    tekken: a tiny Mistral (a sliding window) with tests/data/tekken's tekken.json (Mistral NeMo's
    Tekken cut to 5000 ids: <s> 1, </s> 2, [INST] 3, [/INST] 4); o200k: a tiny Phi-4-mini (Phi-3's
    parts, half of each head rotating, tied embeddings) with hf_bpe/o200k's tokenizer
    (<|endoftext|> 0 as BOS and EOS, as Phi-4-mini's; <|end|> 4 ends a response); granite: a tiny
    Granite (its four multipliers, tied embeddings) with hf_bpe/granite's tokenizer (StarCoder's digit
    splitting, Granite's role tokens, Granite 3.1-3.3's chat template; <|end_of_text|> 0 as BOS and
    EOS, as Granite's); olmo2: a tiny OLMo 2 (output norms alone, q and k normed across their heads) with
    llama3's tokenizer under OLMo 2 Instruct's chat template (the Tulu format, BOS first); olmo: a tiny
    OLMo (LayerNorms without parameters) with llama3's tokenizer and template; stablelm: a tiny StableLM
    (LayerNorms with weights and biases, q/k/v biases, a quarter of each head rotating) with llama3's;
    cohere: a tiny Cohere (LayerNorms with weights alone, attention and MLP side by side, interleaved
    RoPE, logit_scale, tied) with hf_bpe/cohere's tokenizer (<BOS_TOKEN> 0, <|END_OF_TURN_TOKEN|> 3,
    Aya 23's chat template); gpt_neox: a tiny GPT-NeoX (GPT-NeoX's names, query_key_value per head,
    biases everywhere, a plain GELU MLP, a norm per half side by side) with llama3's; phi: a tiny Phi-2
    (biases everywhere and on the LM head, one norm for both halves) with llama3's; mixtral: a tiny Mixtral (four
    experts, two a token) with llama3's; qwen3_moe: a tiny Qwen3-MoE (Qwen3's head norms, four experts, two a
    token, not renormalised) with qwen3's; olmoe: a tiny OLMoE (q and k normed across their heads, four experts)
    with llama3's; qwen2_moe: a tiny Qwen2-MoE (q, k, v biases, four experts beside a shared expert) with
    qwen2's; granitemoe: a tiny GraniteMoE (Granite's multipliers, four experts in 3-D tensors) with llama3's;
    granite4: a tiny Granite 4.0 of attention layers (the MLP as shared_mlp) with llama3's; deepseek_v3: a tiny
    DeepSeek-V3 (latent attention, its mixture after a dense layer) with hf_bpe/deepseek_v3's tokenizer (DeepSeek-V3's
    three Splits; <｜end▁of▁sentence｜> 0, <｜begin▁of▁sentence｜> 1, its markers and think tokens 1200-1203; V3's chat
    template); deepseek_v31: the same with hf_bpe/deepseek_v31's (V3's tokenizer, V3.1's chat template); deepseek_r1: a tiny Qwen2 with hf_bpe/deepseek_r1's (DeepSeek-R1-Distill-Qwen's: Qwen2's tokenization,
    the same ids, R1's chat template); kimi: a tiny DeepSeek-V3 with tests/data/kimi's tiktoken.model in Moonlight's
    layout (1457 ranks, then [BOS] 1457, [EOS] 1458, <|im_end|> 1459, ...; Moonlight's chat template) and a
    stand-in tokenization_moonshot.py (remote code an export carries)."""
    deepseek = kind in ("deepseek_v3", "deepseek_v31", "deepseek_r1")  # vocabulary 1204: EOS 0, BOS 1
    qwen = kind in ("qwen2", "qwen3", "qwen3_moe", "qwen2_moe", "phi4")  # their token ids: BOS 0, EOS 2
    bos_is_eos = kind in ("o200k", "granite")  # BOS and EOS the one id 0
    gemma = kind in ("gemma", "gemma2", "gemma3")
    spm = gemma or kind in ("llama_spm", "mistral_v3_spm", "mistral_v7_spm")
    tekken = kind == "tekken"
    kimi = kind == "kimi"  # vocabulary 1713: 1457 ranks, 256 special ids
    extra = {"llama3": [], "qwen2": ["--qwen2", "--tie"], "qwen3": ["--qwen3"], "gemma": ["--gemma"],
             "gemma2": ["--gemma2"], "gemma3": ["--gemma3"], "llama_spm": [], "mistral_v3_spm": [], "mistral_v7_spm": [],
             "phi4": ["--phi3", "--max-positions", "192", "--original-max-positions", "96"], "tekken": ["--mistral"],
             "o200k": ["--phi3", "--partial-rotary", "0.5", "--tie", "--max-positions", "192",
                       "--original-max-positions", "96"], "granite": ["--granite", "--tie", "--max-positions", "256"],
             "olmo": ["--olmo"], "olmo2": ["--olmo2"], "stablelm": ["--stablelm"], "cohere": ["--cohere"],
             "gpt_neox": ["--gpt-neox"], "phi": ["--phi2"], "mixtral": ["--mixtral"],
             "qwen3_moe": ["--qwen3-moe"], "olmoe": ["--olmoe"], "qwen2_moe": ["--qwen2-moe"],
             "granitemoe": ["--granitemoe", "--tie"], "granite4": ["--granite-hybrid", "rope", "--tie"],
             "deepseek_v3": ["--deepseek-v3"], "deepseek_v31": ["--deepseek-v3"], "deepseek_r1": ["--qwen2", "--tie"],
             "kimi": ["--deepseek-v3"]}[kind]
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "data", "make_tiny_model.py"), path, "--vocab",
                    "400" if spm else "5000" if tekken else "1204" if deepseek else "1713" if kimi else "1200", "--hidden", "32", "--intermediate", "64", "--layers", "2",
                    "--heads", "4", "--kv-heads", "2", "--max-positions", "96"] + extra, check=True, capture_output=True)
    spm_dir = {"gemma": "gemma_spm", "gemma2": "gemma_spm", "gemma3": "gemma3_spm"}.get(kind, kind)
    spm_file = "tokenizer.model.v7" if kind == "mistral_v7_spm" else "tokenizer.model"
    tokenizer_files = ([os.path.join(ROOT, "tests", "data", spm_dir, spm_file)] if spm else
                       [os.path.join(ROOT, "tests", "data", "tekken", "tekken.json")] if tekken else
                       [os.path.join(ROOT, "tests", "data", "kimi", f) for f in ("tiktoken.model", "tokenizer_config.json")]
                       if kimi else
                       [os.path.join(os.path.dirname(HF_BPE), {"olmo": "llama3", "olmo2": "llama3", "stablelm": "llama3",
                                                                   "gpt_neox": "llama3", "phi": "llama3",
                                                                   "mixtral": "llama3", "qwen3_moe": "qwen3",
                                                                   "olmoe": "llama3", "qwen2_moe": "qwen2",
                                                                   "granitemoe": "llama3", "granite4": "llama3"}.get(kind, kind), f)
                        for f in ("tokenizer.json", "tokenizer_config.json")])
    for f in tokenizer_files:
        shutil.copy(f, path)
    if kimi:
        with open(os.path.join(path, "tokenization_moonshot.py"), "w") as f:
            f.write("# stand-in for Moonlight's remote tokenizer code\n")
    if kind == "olmo2":
        tokenizer_config = json.load(open(os.path.join(path, "tokenizer_config.json")))
        tokenizer_config["chat_template"] = "{{ bos_token }}" + TULU
        json.dump(tokenizer_config, open(os.path.join(path, "tokenizer_config.json"), "w"))
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config["bos_token_id"], config["eos_token_id"] = ((2, 1) if gemma else (1, 2) if spm or tekken else
                                                      (1, 0) if deepseek else (1457, 1458) if kimi else
                                                      (0, 0) if bos_is_eos else (0, 3) if kind == "cohere" else
                                                      (0, 2 if qwen else list(eos)))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


# The multimodal checkpoints whose language model spin runs: their model_type, architecture, vision
# tower's model_type and two of its and the projector's tensor names.
MULTIMODAL = {
    "gemma3": ("Gemma3ForConditionalGeneration", "siglip_vision_model",
               ["vision_tower.vision_model.embeddings.patch_embedding.weight",
                "multi_modal_projector.mm_input_projection_weight"]),
    "mistral3": ("Mistral3ForConditionalGeneration", "pixtral",
                 ["vision_tower.patch_conv.weight", "multi_modal_projector.linear_1.weight"]),
    "llava": ("LlavaForConditionalGeneration", "clip_vision_model",
              ["vision_tower.vision_model.embeddings.patch_embedding.weight", "multi_modal_projector.linear_1.weight"]),
    "qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration", "qwen2_5_vl",
                   ["visual.patch_embed.proj.weight", "visual.merger.mlp.0.weight"]),
}


def multimodal_checkpoint(text_dir, out, kind="gemma3"):
    """`text_dir`'s text model as the language model of a multimodal checkpoint: a Gemma 3 one
    (Gemma3ForConditionalGeneration, model_type gemma3: its config under text_config, beside the
    token ids at the top level, as google/gemma-3-4b-it's) or a Mistral Small 3.1 one
    (Mistral3ForConditionalGeneration, mistral3: the token ids in text_config, as
    Mistral-Small-3.1-24B-Instruct-2503's) or a LLaVA one (LlavaForConditionalGeneration, llava:
    likewise) -- its tensors under "language_model." --, or a Qwen2.5-VL one (a Qwen2 text model:
    Qwen2_5_VLForConditionalGeneration, qwen2_5_vl, its config at the top level with M-RoPE's
    rope_scaling, its tensors under their own names, as Qwen2.5-VL-7B-Instruct's); two stand-ins
    for the vision tower's and projector's tensors, which spin does not read, and the text model's
    tokenizer files."""
    architecture, vision, stand_ins = MULTIMODAL[kind]
    config = json.load(open(os.path.join(text_dir, "config.json")))
    config.pop("architectures")
    os.makedirs(out)
    prefix = "language_model."
    if kind == "qwen2_5_vl":
        prefix = ""
        half = config["hidden_size"] // config["num_attention_heads"] // 2
        config.update({"architectures": [architecture], "model_type": kind, "vision_config": {"model_type": vision},
                       "rope_scaling": {"type": "mrope", "mrope_section": [half - 2 * (half // 4), half // 4, half // 4]}})
        json.dump(config, open(os.path.join(out, "config.json"), "w"))
    else:
        top = {k: config.pop(k) for k in ("torch_dtype",) + (("eos_token_id", "bos_token_id") if kind == "gemma3" else ())}
        json.dump(dict({"architectures": [architecture], "model_type": kind, "text_config": config,
                        "vision_config": {"model_type": vision}}, **top),
                  open(os.path.join(out, "config.json"), "w"))
    text_tensors = safetensors_tensors(os.path.join(text_dir, "model.safetensors"))
    tensors = [(prefix + name, shape, v) for name, shape, v in text_tensors]
    tensors += [(stand_ins[0], [4, 3], [0.5] * 12), (stand_ins[1], [3, 4], [0.25] * 12)]
    write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    for f in ("tokenizer.model", "tekken.json", "tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(text_dir, f)):
            shutil.copy(os.path.join(text_dir, f), out)
    return out


def run_case(doc, cases, prefix, extra_args=(), prepare=None):
    """The case scripts' command line -- CASE --spin SPIN --mpiexec MPIEXEC --models DIR, plus
    `extra_args` ((flag, argparse keywords) pairs) -- and the chosen case, cases[CASE](args, tmp),
    run in a temporary folder removed afterwards (after `prepare(args, tmp)`, when given)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("case", choices=list(cases))
    p.add_argument("--spin", required=True)
    p.add_argument("--mpiexec", required=True)
    p.add_argument("--models", required=True, help="folder holding the generated tiny models")
    for flag, kwargs in extra_args:
        p.add_argument(flag, **kwargs)
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        if prepare:
            prepare(args, tmp)
        cases[args.case](args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASS")

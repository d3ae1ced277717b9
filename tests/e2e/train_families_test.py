#!/usr/bin/env python3
"""End-to-end checks of `spin train` on every model family with its own tokenizer, one case per CTest test:

  tokenizers  a model with a byte-level BPE tokenizer.json and the llama3 template trains, and
              its exported iteration carries the tokenizer files
  expert_parallel  a mixture's experts over the TP ranks (parallel.ep): ep 1's run, resumable across ep,
              spin score alike, bad sizes refused
"""
import json
import math
import os
import shutil
import subprocess
import sys

from e2e_common import (expect_error, hf_tokenizer_model, matrix_rank, multimodal_checkpoint, read_safetensors, run_case,
                        run_ok, safetensors_tensors)
from train_common import ROOT, metrics, setup, untimed


def train_family(args, config, tmp, kind, trained, template=None):
    """A tiny model of `kind` with its tokenizer (hf_tokenizer_model) trained 6 SPIN steps at TP 2
    in bf16 with data.template auto: `template` (by default the one named after it) is chosen,
    responses are generated, the first loss is log 2 (policy = reference), every loss finite, the
    tensors `trained` (a name or a list) move and the exported model has the original's tensors and
    model_type. Returns the exported tensors and the run's folder."""
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
    original = json.load(open(os.path.join(tmp, "model", "config.json")))
    model_type = original["model_type"]
    mtp = "model.layers.%d." % original["num_hidden_layers"]  # DeepSeek-V3's MTP layer: not exported
    assert sorted(k for k in before if not (model_type == "deepseek_v3" and k.startswith(mtp))) == sorted(after), \
        sorted(after)
    for name in [trained] if isinstance(trained, str) else trained:
        assert before[name] != after[name], name
    assert json.load(open(os.path.join(out, "iteration_1", "config.json")))["model_type"] == model_type
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
    # DeepSeek-R1-Distill-Qwen's tokenizer (Qwen2's tokenization, DeepSeek's BOS / EOS and markers) on a Qwen2:
    # auto picks deepseek-r1 by its chat template; the prompts end with R1's open think block, generation stops
    # at <｜end▁of▁sentence｜>.
    train_family(args, config, tmp, "deepseek_r1", "model.layers.0.self_attn.k_proj.bias", "deepseek-r1")
    print("DeepSeek-R1-Distill-Qwen's tokenizer + deepseek-r1 template at TP 2 in bf16: 6 steps, first loss log 2, "
          "exported")
    # Moonlight's tokenizer (tiktoken.model, Kimi's expression, its special tokens after the ranks) on a
    # DeepSeek-V3: auto picks kimi by its tokens and chat template; the prompts open with the template's default
    # system turn, generation stops at <|im_end|>; the export carries tiktoken.model and the remote code.
    _, out = train_family(args, config, tmp, "kimi", "model.layers.1.self_attn.kv_b_proj.weight")
    for f in ("tiktoken.model", "tokenizer_config.json", "tokenization_moonshot.py"):
        assert os.path.exists(os.path.join(out, "iteration_1", f)), f
    print("DeepSeek-V3 + Moonlight's tiktoken.model + kimi template at TP 2 in bf16: 6 steps, first loss log 2, "
          "exported with tiktoken.model and tokenization_moonshot.py")
    # Gemma (GeGLU, 1 + w norms, scaled tied embeddings) with a SentencePiece model in Gemma's
    # layout: auto picks gemma; generation stops at <end_of_turn> (5), which ends the ground truth
    # too; the norms train; exported tied, as a gemma.
    after, out = train_family(args, config, tmp, "gemma", "model.layers.0.input_layernorm.weight")
    assert "lm_head.weight" not in after, sorted(after)
    print("Gemma + gemma template at TP 2 in bf16: 6 steps, first loss log 2, norms trained, exported tied")
    # Gemma 2 (besides, sandwich norms, its score scale, capped scores and logits -- in generation,
    # scoring and training alike): the gemma template; the norm of the MLP's output trains.
    train_family(args, config, tmp, "gemma2", "model.layers.1.post_feedforward_layernorm.weight", "gemma")
    print("Gemma 2 + gemma template at TP 2 in bf16: 6 steps, first loss log 2, output norms trained, exported")
    # Gemma 3 (Gemma 2's parts without caps, head norms of 1 + w, an 8-key window with its own
    # RoPE base in layer 0 of every 2): auto picks gemma3 by <start_of_image>; the head norms train.
    after, out = train_family(args, config, tmp, "gemma3", "model.layers.0.self_attn.k_norm.weight")
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
    train_family(args, config, tmp, "phi4", "model.layers.0.mlp.gate_up_proj.weight")
    print("Phi-3 + phi4 template at TP 2 in bf16: 6 steps, first loss log 2, fused tensors trained, exported fused")
    # Phi-4-mini (half of each head rotating, tied embeddings) with an o200k tokenizer whose chat
    # tokens strip the whitespace beside them: auto picks phi4-mini; generation stops at <|end|>.
    after, out = train_family(args, config, tmp, "o200k", "model.layers.0.self_attn.qkv_proj.weight", "phi4-mini")
    assert "lm_head.weight" not in after, sorted(after)
    print("Phi-4-mini + phi4-mini template at TP 2 in bf16: 6 steps, first loss log 2, exported tied")
    # Mistral with Mistral NeMo's Tekken (tekken.json, version v3): auto picks mistral-v3 by [INST]
    # and [/INST]; the exported model carries tekken.json.
    _, out = train_family(args, config, tmp, "tekken", "model.layers.0.self_attn.q_proj.weight", "mistral-v3")
    assert os.path.exists(os.path.join(out, "iteration_1", "tekken.json"))
    print("Mistral + Tekken + mistral-v3 template at TP 2 in bf16: 6 steps, first loss log 2, exported with tekken.json")
    # Granite (its multipliers in generation, scoring and training; tied embeddings) with a Granite 3
    # tokenizer (StarCoder's digit splitting) and Granite 3.1-3.3's chat template: auto picks
    # granite3.1; exported tied, as a granite whose multipliers are the original's.
    after, out = train_family(args, config, tmp, "granite", "model.layers.1.mlp.down_proj.weight", "granite3.1")
    exported = json.load(open(os.path.join(out, "iteration_1", "config.json")))
    assert exported["model_type"] == "granite" and exported["residual_multiplier"] == 0.3, exported
    assert "lm_head.weight" not in after, sorted(after)
    print("Granite + granite3.1 template at TP 2 in bf16: 6 steps, first loss log 2, exported tied as a granite")
    # OLMo 2 (no input norms; q and k normed across the heads of both TP ranks) with OLMo 2
    # Instruct's chat template over llama3's tokens: auto picks tulu; q_norm trained, exported as an
    # olmo2 without input norms.
    after, out = train_family(args, config, tmp, "olmo2", "model.layers.0.self_attn.q_norm.weight", "tulu")
    assert "model.layers.0.input_layernorm.weight" not in after, sorted(after)
    print("OLMo 2 + tulu template at TP 2 in bf16: 6 steps, first loss log 2, q_norm trained, exported as an olmo2")
    # The first OLMo (LayerNorms without parameters) with llama3's tokenizer: exported as an olmo
    # without a norm tensor.
    after, out = train_family(args, config, tmp, "olmo", "model.layers.0.self_attn.q_proj.weight", "llama3")
    assert not [name for name in after if "norm" in name], sorted(after)
    print("OLMo + llama3 template at TP 2 in bf16: 6 steps, first loss log 2, exported as an olmo without norms")
    # StableLM (LayerNorms with weights and biases, q/k/v biases, partial rotary) with llama3's
    # tokenizer: the norms' biases train (their gradients all-reduced over TP under sequence
    # parallelism elsewhere: tp_invariance), exported as a stablelm with them.
    after, out = train_family(args, config, tmp, "stablelm", "model.layers.0.input_layernorm.bias", "llama3")
    assert "model.norm.bias" in after, sorted(after)
    print("StableLM + llama3 template at TP 2 in bf16: 6 steps, first loss log 2, norm biases trained, exported")
    # Cohere (attention and MLP side by side, interleaved RoPE, logit_scale, tied) with Cohere's chat
    # tokens: auto picks cohere, generation stops at <|END_OF_TURN_TOKEN|>; exported tied, as a cohere.
    after, out = train_family(args, config, tmp, "cohere", "model.layers.0.input_layernorm.weight")
    exported = json.load(open(os.path.join(out, "iteration_1", "config.json")))
    assert exported["model_type"] == "cohere" and exported["logit_scale"] == 0.25, exported
    assert "lm_head.weight" not in after, sorted(after)
    print("Cohere + cohere template at TP 2 in bf16: 6 steps, first loss log 2, exported tied as a cohere")
    # GPT-NeoX (Pythia's layout: q, k and v fused per head in its files, split over TP 2 by head; the
    # row-parallel biases added once after the reduction) with llama3's tokenizer: attention.dense's
    # bias trains, the export is a gpt_neox under GPT-NeoX's names.
    after, out = train_family(args, config, tmp, "gpt_neox", "gpt_neox.layers.0.attention.dense.bias", "llama3")
    assert "gpt_neox.layers.1.attention.query_key_value.weight" in after, sorted(after)
    print("GPT-NeoX + llama3 template at TP 2 in bf16: 6 steps, first loss log 2, dense bias trained, exported")
    # Phi-2 (the LM head's bias split over TP 2 with its rows) with llama3's tokenizer: that bias trains, the
    # export is a phi under Phi's names.
    after, out = train_family(args, config, tmp, "phi", "lm_head.bias", "llama3")
    assert "model.layers.1.mlp.fc2.bias" in after, sorted(after)
    print("Phi-2 + llama3 template at TP 2 in bf16: 6 steps, first loss log 2, LM head bias trained, exported")
    # Mixtral (each expert split over TP 2, the router whole on both ranks) with llama3's tokenizer: an
    # expert and the router train, the export is a mixtral under Mixtral's names.
    _, out = train_family(args, config, tmp, "mixtral", ["model.layers.0.block_sparse_moe.experts.1.w2.weight",
                                                         "model.layers.1.block_sparse_moe.gate.weight"], "llama3")
    # The router's load balance in the metrics: the busiest expert at most every row (4 experts, 2 a
    # token: twice the mean), the idlest at most the mean.
    loads = [(x["expert_load_min"], x["expert_load_max"]) for x in metrics(os.path.join(out, "metrics.jsonl"))
             if x["kind"] == "train"]
    assert len(loads) == 6 and all(0.0 <= lo <= 1.0 <= hi <= 2.0 for lo, hi in loads), loads
    # Its load-balancing loss (not trained: output_router_logits false): 2 for a uniform router, at
    # most experts x k.
    balance = [x["router_balance_loss"] for x in metrics(os.path.join(out, "metrics.jsonl")) if x["kind"] == "train"]
    assert all(1.0 < b < 8.0 for b in balance), balance
    z = [x["router_z_loss"] for x in metrics(os.path.join(out, "metrics.jsonl")) if x["kind"] == "train"]
    assert all(v > 0.0 for v in z), z
    print("Mixtral + llama3 template at TP 2 in bf16: 6 steps, first loss log 2, experts and router trained, exported; "
          "expert load %.2f-%.2fx the mean in step 1" % loads[0])
    # The router losses trained (model.router_aux_loss_coef and router_z_loss_coef, Megatron's
    # --moe-aux-loss-coeff and --moe-z-loss-coeff): the same first step (the SPIN loss alone is reported,
    # the router losses of the same forward), the router's load and the balance in the log line.
    r = run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir",
                              os.path.join(tmp, "mixtral-aux"), "--data.template", "auto", "--spin.max_iterations", "1",
                              "--parallel.tp", "2", "--model.precision", "bf16", "--model.router_aux_loss_coef", "0.5",
                              "--model.router_z_loss_coef", "0.001"], 2)
    aux = [x for x in metrics(os.path.join(tmp, "mixtral-aux", "metrics.jsonl")) if x["kind"] == "train"]
    assert len(aux) == 6 and abs(aux[0]["loss"] - math.log(2)) < 1e-6, aux[0]
    assert abs(aux[0]["router_balance_loss"] - balance[0]) < 1e-6, (aux[0], balance[0])
    assert abs(aux[0]["router_z_loss"] - z[0]) < 1e-6 * z[0], (aux[0], z[0])
    assert " balance " in r.stdout, r.stdout[-2000:]
    # LoRA of the mixture (lora.rank 4 on every projection: the attention's and each expert's w1 / w3 / w2, each
    # split over TP 2 with its matrix; the router never): an iteration from log 2, its merged model differs from the
    # base in those matrices alone -- router and norms untouched -- and an expert's by a change of rank <= 4.
    lora_out = os.path.join(tmp, "mixtral-lora")
    run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", lora_out, "--data.template",
                          "auto", "--spin.max_iterations", "1", "--parallel.tp", "2", "--model.precision", "bf16",
                          "--lora.rank", "4", "--lora.alpha", "8", "--optim.lr", "1e-2"], 2)
    adapted = [x for x in metrics(os.path.join(lora_out, "metrics.jsonl")) if x["kind"] == "train"]
    assert len(adapted) == 6 and abs(adapted[0]["loss"] - math.log(2)) < 1e-6, adapted[0]
    base = read_safetensors(os.path.join(tmp, "model", "model.safetensors"))
    merged = read_safetensors(os.path.join(lora_out, "iteration_1", "model.safetensors"))
    changed = [n for n in merged if merged[n] != base[n]]
    adaptable = (".self_attn.q_proj.", ".self_attn.k_proj.", ".self_attn.v_proj.", ".self_attn.o_proj.", ".w1.", ".w2.",
                 ".w3.")
    assert changed and all(any(p in n for p in adaptable) for n in changed), sorted(changed)
    assert "model.layers.1.block_sparse_moe.experts.3.w1.weight" in changed, sorted(changed)
    name = "model.layers.0.block_sparse_moe.experts.2.w2.weight"  # [hidden, intermediate]
    cols = json.load(open(os.path.join(tmp, "model", "config.json")))["intermediate_size"]
    diff = [x - y for x, y in zip(merged[name], base[name])]
    largest = max(abs(d) for d in diff)
    rank = matrix_rank([diff[i:i + cols] for i in range(0, len(diff), cols)], 1e-4 * largest)
    assert largest > 1e-5 and 1 <= rank <= 4, (largest, rank)
    print("Mixtral with LoRA rank 4 on every projection and expert at TP 2 in bf16: first loss log 2; the merged model "
          "moves in %d matrices (the router and norms not), an expert's by rank %d" % (len(changed), rank))
    # Qwen3-MoE (Qwen3's head norms and a mixture under spin's own names) with a Qwen3-style tokenizer:
    # auto picks qwen3; an expert trains, the export is a qwen3_moe.
    train_family(args, config, tmp, "qwen3_moe", "model.layers.1.mlp.experts.2.gate_proj.weight", "qwen3")
    print("Qwen3-MoE + qwen3 template at TP 2 in bf16: 6 steps, first loss log 2, an expert trained, exported")
    # OLMoE (OLMo 2's norms across the heads of both TP ranks, with pre-norms and a mixture) with
    # llama3's tokenizer: q_norm trains, the export is an olmoe.
    train_family(args, config, tmp, "olmoe", "model.layers.0.self_attn.q_norm.weight", "llama3")
    print("OLMoE + llama3 template at TP 2 in bf16: 6 steps, first loss log 2, q_norm trained, exported")
    # Qwen2-MoE (a shared expert split over TP 2 beside the routed ones, its gate whole on both ranks)
    # with qwen2's tokenizer: auto picks chatml; the shared expert and its gate train, the export is a qwen2_moe.
    train_family(args, config, tmp, "qwen2_moe", ["model.layers.1.mlp.shared_expert.down_proj.weight",
                                                  "model.layers.0.mlp.shared_expert_gate.weight"], "chatml")
    print("Qwen2-MoE + chatml at TP 2 in bf16: 6 steps, first loss log 2, shared expert and gate trained, "
          "exported")
    # GraniteMoE (Granite's multipliers over a mixture whose files stack every expert of a layer in two 3-D
    # tensors: each TP rank reads its rows of every gate and up, its columns of every down) with llama3's
    # tokenizer: the experts and the router train, the export stacks them back in the files' shapes.
    after, out = train_family(args, config, tmp, "granitemoe", ["model.layers.0.block_sparse_moe.output_linear.weight",
                                                                "model.layers.1.block_sparse_moe.router.layer.weight"],
                              "llama3")
    assert shapes(os.path.join(out, "iteration_1")) == shapes(os.path.join(tmp, "model"))
    print("GraniteMoE + llama3 template at TP 2 in bf16: 6 steps, first loss log 2, experts and router trained, "
          "exported in the files' 3-D shapes")
    # Granite 4.0 Micro's layout (granitemoehybrid of attention layers: the MLP as shared_mlp, gate and up fused in
    # input_linear, split over TP 2 as they are read) with llama3's tokenizer: the fused MLP trains, exported fused.
    train_family(args, config, tmp, "granite4", "model.layers.1.shared_mlp.input_linear.weight", "llama3")
    assert shapes(os.path.join(tmp, "granite4", "iteration_1")) == shapes(os.path.join(tmp, "model"))
    print("Granite 4.0 (attention layers) + llama3 template at TP 2 in bf16: 6 steps, first loss log 2, shared_mlp "
          "trained, exported fused")

    # Families whose chat formats are not spin's and whose tokenizers are not in reach here, with the
    # byte tokenizer and the plain template at TP 2 in bf16: their own tensors train and export as
    # they were read. GLM-4: q, k, v biases, interleaved RoPE over half of each head, gate_up_proj
    # (fused again on export), the norms of each half's output. EXAONE 4.0: OLMo 2's output norms,
    # the q and k head norms, a window and RoPE in layer 0, layer 1 global without RoPE. Seed-OSS: q, k, v
    # biases, head_dim twice hidden / heads. GLM-4.5: layer 0's dense MLP, layer 1's experts behind the sigmoid
    # router, whose correction bias stays as read (a buffer), and its ungated shared experts; its MTP layer
    # (model.layers.2) is not part of the export. DeepSeek-V3: its latent attention's projections and norms
    # (q's and the keys' and values' latents split from the heads' products over TP) with GLM-4.5's mixture.
    for flag, model_type, trained in [
            ("--glm4", "glm4", ["model.layers.0.self_attn.q_proj.bias", "model.layers.1.post_mlp_layernorm.weight",
                                "model.layers.1.post_self_attn_layernorm.weight"]),
            ("--exaone4", "exaone4", ["model.layers.0.self_attn.k_norm.weight",
                                      "model.layers.1.post_feedforward_layernorm.weight"]),
            ("--seed-oss", "seed_oss", ["model.layers.1.self_attn.v_proj.bias"]),
            ("--glm4-moe", "glm4_moe", ["model.layers.0.mlp.gate_proj.weight", "model.layers.1.mlp.gate.weight",
                                        "model.layers.1.mlp.shared_experts.down_proj.weight",
                                        "model.layers.1.self_attn.q_norm.weight"]),
            ("--deepseek-v3", "deepseek_v3", ["model.layers.0.self_attn.q_a_proj.weight",
                                              "model.layers.0.self_attn.q_a_layernorm.weight",
                                              "model.layers.1.self_attn.q_b_proj.weight",
                                              "model.layers.1.self_attn.kv_a_proj_with_mqa.weight",
                                              "model.layers.1.self_attn.kv_a_layernorm.weight",
                                              "model.layers.1.self_attn.kv_b_proj.weight",
                                              "model.layers.1.self_attn.o_proj.weight",
                                              "model.layers.1.mlp.experts.0.down_proj.weight"])]:
        shutil.rmtree(os.path.join(tmp, "model"))
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "data", "make_tiny_model.py"),
                        os.path.join(tmp, "model"), flag, "--vocab", "259", "--hidden", "32", "--intermediate", "64",
                        "--layers", "2", "--heads", "4", "--kv-heads", "2", "--max-positions", "48",
                        "--byte-tokenizer"], check=True, capture_output=True)
        out = os.path.join(tmp, model_type)
        # GLM-4.5 balances its router by the bias (model.router_bias_update_rate): refused with LoRA, whose
        # frozen model holds the biases the reference shares.
        balance = (["--model.router_bias_update_rate", "0.01", "--checkpoint.save_interval", "3"]
                   if model_type == "glm4_moe" else [])
        if balance:
            expect_error(args.mpiexec, "glm4_moe bias + LoRA",
                         [args.spin, "train", "--config", config, "--checkpoint.save_dir", out + "-lora",
                          "--data.template", "plain", "--lora.rank", "4"] + balance,
                         r"model\.router_bias_update_rate = 0\.01 with LoRA \(rank 4\): the correction biases "
                         r"sit in the frozen model", 1, out + "-lora")
        run_ok(args.mpiexec, [args.spin, "train", "--config", config, "--checkpoint.save_dir", out, "--data.template",
                              "plain", "--spin.max_iterations", "1", "--parallel.tp", "2", "--model.precision",
                              "bf16"] + balance, 2)
        m = [x for x in metrics(os.path.join(out, "metrics.jsonl")) if x["kind"] == "train"]
        assert len(m) == 6 and abs(m[0]["loss"] - math.log(2)) < 1e-6 and all(math.isfinite(x["loss"]) for x in m), m
        before = {k: v for k, v in read_safetensors(os.path.join(tmp, "model", "model.safetensors")).items()
                  if not (model_type in ("glm4_moe", "deepseek_v3") and k.startswith("model.layers.2."))}
        after = read_safetensors(os.path.join(out, "iteration_1", "model.safetensors"))
        assert sorted(before) == sorted(after), sorted(after)
        for name in trained:
            assert before[name] != after[name], name
        if model_type == "glm4_moe":  # each step moved each bias by 0.01 up or down (or left it, at the mean load)
            bias = "model.layers.1.mlp.gate.e_score_correction_bias"
            run_ok(args.mpiexec, [args.spin, "ckpt", "export-hf", os.path.join(out, "step_00000003"),
                                  os.path.join(out, "step3"), "--which", "policy"], 1)
            step3 = read_safetensors(os.path.join(out, "step3", "model.safetensors"))
            for got in (step3[bias], after[bias]):
                moved = [abs(a - b) for a, b in zip(got, before[bias])]
                assert max(moved) <= 0.0601 and all(abs(m / 0.01 - round(m / 0.01)) < 1e-3 for m in moved), moved
            assert max(abs(a - b) for a, b in zip(step3[bias], before[bias])) > 0.005, step3[bias]
        assert json.load(open(os.path.join(out, "iteration_1", "config.json")))["model_type"] == model_type
        print("%s + plain template at TP 2 in bf16: 6 steps, first loss log 2, its own tensors trained and exported"
              % model_type)


def close_metrics(got, want, rtol, what, extra=()):
    """Two runs' metrics (untimed) agree: the same records and keys (`got` has the keys `extra` besides),
    numbers to rtol (relative, 1e-6 absolute)."""
    assert len(got) == len(want), (what, len(got), len(want))
    for g, w in zip(got, want):
        assert sorted(k for k in g if k not in extra) == sorted(w), (what, sorted(g), sorted(w))
        for k, v in w.items():
            if isinstance(v, float):
                assert abs(g[k] - v) <= 1e-6 + rtol * abs(v), (what, w["step"], k, g[k], v)
            else:
                assert g[k] == v, (what, w.get("step"), k, g[k], v)


def case_expert_parallel(args, tmp):
    """Expert parallelism within the TP group (parallel.ep 2 at TP 2: each rank holds two of the tiny
    Mixtral's four experts, whole): spin train's metrics and export agree with the same run at ep 1 (float32,
    summation order apart), the export holds the original's tensors as ep 1's does; a checkpoint saved at ep 2
    resumes at ep 1 to the uninterrupted run's end; spin score reads the exported model at ep 2 to ep 1's
    scores; an ep that does not divide tp, or a dense model at ep 2, is refused by name on every rank."""
    config = setup(tmp)
    shutil.rmtree(os.path.join(tmp, "model"))
    hf_tokenizer_model(os.path.join(tmp, "model"), kind="mixtral")
    common = [args.spin, "train", "--config", config, "--data.template", "auto", "--spin.max_iterations", "1",
              "--parallel.tp", "2"]
    runs = {}
    for ep in (1, 2):
        out = os.path.join(tmp, "ep%d" % ep)
        r = run_ok(args.mpiexec, common + ["--checkpoint.save_dir", out, "--parallel.ep", str(ep)], 2)
        runs[ep] = untimed(os.path.join(out, "metrics.jsonl"))
    assert "layout tp 2 x pp 1 x dp 1, experts over ep 2 (2 a rank)" in r.stdout, r.stdout[:3000]
    close_metrics(runs[2], runs[1], 1e-4, "ep 2 vs ep 1", extra=("expert_rank_load_max",))
    train = [m for m in runs[2] if m["kind"] == "train"]
    assert len(train) == 6 and abs(train[0]["loss"] - math.log(2)) < 1e-12, train[0]
    # The busiest rank's experts over the two ranks' mean: at least 1, at most 2 (every row on one rank).
    assert all(1.0 <= m["expert_rank_load_max"] <= 2.0 for m in train), [m["expert_rank_load_max"] for m in train]
    assert "(ranks " in r.stdout, r.stdout[-2000:]
    one = read_safetensors(os.path.join(tmp, "ep1", "iteration_1", "model.safetensors"))
    two = read_safetensors(os.path.join(tmp, "ep2", "iteration_1", "model.safetensors"))
    def listed(path):  # names and shapes, in the header's order
        return [(name, shape) for name, shape, _ in safetensors_tensors(path)]
    original = listed(os.path.join(tmp, "model", "model.safetensors"))
    exported = listed(os.path.join(tmp, "ep2", "iteration_1", "model.safetensors"))
    assert exported == listed(os.path.join(tmp, "ep1", "iteration_1", "model.safetensors"))
    assert sorted(exported) == sorted(original), (exported, original)
    worst = 0.0
    for name, values in one.items():
        scale = max(abs(v) for v in values)
        diff = max(abs(a - b) for a, b in zip(two[name], values))
        assert diff <= 1e-4 * scale, (name, diff, scale)
        worst = max(worst, diff / scale)
    print("ep 2 at TP 2: %d steps, metrics and export as ep 1's (export to %.1e of each tensor's largest)"
          % (len(train), worst))
    # Saved at ep 2 (each expert by name, from whichever rank held it), resumed at ep 1.
    part = os.path.join(tmp, "part")
    run_ok(args.mpiexec, common + ["--checkpoint.save_dir", part, "--parallel.ep", "2", "--spin.max_steps", "3"], 2)
    run_ok(args.mpiexec, common + ["--checkpoint.save_dir", part, "--checkpoint.resume", "true"], 2)
    resumed = untimed(os.path.join(part, "metrics.jsonl"))
    # (Its first 3 steps at ep 2 report the ranks' balance, the resumed ones at ep 1 not.)
    close_metrics(resumed, [{k: v for k, v in m.items() if k != "expert_rank_load_max" or m["step"] <= 3}
                            for m in runs[2]], 1e-4, "resumed at ep 1")
    print("saved at step 3 under ep 2, resumed under ep 1: the uninterrupted run's metrics")
    # spin score of the exported model, its experts read by the ranks that hold them.
    scores = {}
    for ep in (1, 2):
        out = os.path.join(tmp, "scores%d.jsonl" % ep)
        run_ok(args.mpiexec, [args.spin, "score", "--model", os.path.join(tmp, "ep2", "iteration_1"), "--input",
                              os.path.join(tmp, "data", "validation.jsonl"), "--output", out, "--tp", "2", "--ep",
                              str(ep)], 2)
        scores[ep] = [json.loads(line) for line in open(out)]
    assert len(scores[2]) == len(scores[1]) > 0
    for a, b in zip(scores[2], scores[1]):
        assert abs(a["logprob_sum"] - b["logprob_sum"]) <= 1e-4 * abs(b["logprob_sum"]) + 1e-5, (a, b)
    print("spin score at ep 2: ep 1's scores (%d examples)" % len(scores[1]))
    expect_error(args.mpiexec, "ep-not-dividing-tp", common + ["--checkpoint.save_dir", os.path.join(tmp, "bad"),
                                                               "--parallel.ep", "3"],
                 r"expert-parallel size 3 does not divide tp 2", 2, os.path.join(tmp, "bad"))
    shutil.rmtree(os.path.join(tmp, "model"))
    hf_tokenizer_model(os.path.join(tmp, "model"), kind="llama3")
    expect_error(args.mpiexec, "ep-dense-model", common + ["--checkpoint.save_dir", os.path.join(tmp, "bad"),
                                                           "--parallel.ep", "2"],
                 r"expert-parallel size 2: the model has no experts", 2, os.path.join(tmp, "bad"))


def shapes(model_dir):
    """{tensor name: shape} of model_dir/model.safetensors, from its header."""
    blob = open(os.path.join(model_dir, "model.safetensors"), "rb").read(1 << 20)
    header = json.loads(blob[8:8 + int.from_bytes(blob[:8], "little")])
    return {name: e["shape"] for name, e in header.items() if name != "__metadata__"}


def main():
    run_case(__doc__, {"tokenizers": case_hf_tokenizer, "expert_parallel": case_expert_parallel},
             "spin_train_families_")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes a small random Llama-family model in Hugging Face layout (config.json +
model.safetensors, or shards + model.safetensors.index.json). Standard library only.

Weights are drawn from a seeded generator and rounded to bfloat16-representable values, so the
F32, BF16 and F16 (for values in its range) files of one seed hold the same numbers.

    python3 make_tiny_model.py OUT_DIR [--dtype bf16] [--shards 2] [--tie] ...
"""
import argparse
import json
import os
import random
import struct


def bf16_round(x):
    """Round a float to the nearest bfloat16 (ties to even), returned as a Python float."""
    (u,) = struct.unpack("<I", struct.pack("<f", x))
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return struct.unpack("<f", struct.pack("<I", u))[0]


def encode(values, dtype):
    if dtype == "F32":
        return struct.pack("<%df" % len(values), *values)
    if dtype == "BF16":
        out = bytearray()
        for v in values:  # already bf16-representable: the top half of the f32 bits is exact
            out += struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:]
        return bytes(out)
    if dtype == "F16":
        return struct.pack("<%de" % len(values), *values)
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, shape, values in tensors:
        blob = encode(values, dtype)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for blob in blobs:
            f.write(blob)


def gpt_neox_tensors(a, matrix, norm, vector):
    """GPTNeoXForCausalLM's tensors: query_key_value's rows per head [q_h; k_h; v_h], biases on every
    projection, LayerNorms with weight and bias, embed_in / embed_out."""
    h, inter = a.hidden, a.intermediate
    tensors = [("gpt_neox.embed_in.weight", [a.vocab, h], matrix(a.vocab, h))]
    for l in range(a.layers):
        pre = "gpt_neox.layers.%d." % l
        tensors += [
            (pre + "input_layernorm.weight", [h], norm(h)), (pre + "input_layernorm.bias", [h], vector(h, 0.2)),
            (pre + "post_attention_layernorm.weight", [h], norm(h)),
            (pre + "post_attention_layernorm.bias", [h], vector(h, 0.2)),
            (pre + "attention.query_key_value.weight", [3 * h, h], matrix(3 * h, h)),
            (pre + "attention.query_key_value.bias", [3 * h], vector(3 * h)),
            (pre + "attention.dense.weight", [h, h], matrix(h, h)), (pre + "attention.dense.bias", [h], vector(h)),
            (pre + "mlp.dense_h_to_4h.weight", [inter, h], matrix(inter, h)),
            (pre + "mlp.dense_h_to_4h.bias", [inter], vector(inter)),
            (pre + "mlp.dense_4h_to_h.weight", [h, inter], matrix(h, inter)),
            (pre + "mlp.dense_4h_to_h.bias", [h], vector(h)),
        ]
    tensors += [("gpt_neox.final_layer_norm.weight", [h], norm(h)),
                ("gpt_neox.final_layer_norm.bias", [h], vector(h, 0.2)),
                ("embed_out.weight", [a.vocab, h], matrix(a.vocab, h))]
    return tensors


def phi_tensors(a, matrix, norm, vector):
    """PhiForCausalLM's tensors: q, k, v, dense, fc1, fc2 and lm_head with biases, one LayerNorm of
    weight and bias a layer, model.final_layernorm."""
    h, inter, hd = a.hidden, a.intermediate, a.hidden // a.heads
    q, kv = a.heads * hd, a.kv_heads * hd
    tensors = [("model.embed_tokens.weight", [a.vocab, h], matrix(a.vocab, h))]
    for l in range(a.layers):
        pre = "model.layers.%d." % l
        tensors += [
            (pre + "input_layernorm.weight", [h], norm(h)), (pre + "input_layernorm.bias", [h], vector(h, 0.2)),
            (pre + "self_attn.q_proj.weight", [q, h], matrix(q, h)), (pre + "self_attn.q_proj.bias", [q], vector(q)),
            (pre + "self_attn.k_proj.weight", [kv, h], matrix(kv, h)), (pre + "self_attn.k_proj.bias", [kv], vector(kv)),
            (pre + "self_attn.v_proj.weight", [kv, h], matrix(kv, h)), (pre + "self_attn.v_proj.bias", [kv], vector(kv)),
            (pre + "self_attn.dense.weight", [h, q], matrix(h, q)), (pre + "self_attn.dense.bias", [h], vector(h)),
            (pre + "mlp.fc1.weight", [inter, h], matrix(inter, h)), (pre + "mlp.fc1.bias", [inter], vector(inter)),
            (pre + "mlp.fc2.weight", [h, inter], matrix(h, inter)), (pre + "mlp.fc2.bias", [h], vector(h)),
        ]
    tensors += [("model.final_layernorm.weight", [h], norm(h)), ("model.final_layernorm.bias", [h], vector(h, 0.2)),
                ("lm_head.weight", [a.vocab, h], matrix(a.vocab, h)), ("lm_head.bias", [a.vocab], vector(a.vocab))]
    return tensors


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--intermediate", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--max-positions", type=int, default=512)
    p.add_argument("--rope-theta", type=float, default=10000.0)
    p.add_argument("--std", type=float, default=0.08, help="standard deviation of the matrices")
    p.add_argument("--tie", action="store_true", help="tie_word_embeddings")
    p.add_argument("--qwen2", action="store_true",
                   help="a Qwen2ForCausalLM: biases on q/k/v (std 0.3), use_sliding_window false")
    p.add_argument("--qwen3", action="store_true",
                   help="a Qwen3ForCausalLM: RMSNorm weights of the query and key heads, head_dim explicit")
    p.add_argument("--gemma", action="store_true",
                   help="a GemmaForCausalLM: GeGLU, norm weights around 0 (scales 1 + w), tied embeddings, "
                        "head_dim twice hidden / heads")
    p.add_argument("--gemma2", action="store_true",
                   help="a Gemma2ForCausalLM: --gemma's parts, four norms a layer, query_pre_attn_scalar 24 "
                        "(head_dim 32), caps small enough to bend this model's scores (1) and logits (2), "
                        "--sliding-window in the even layers")
    p.add_argument("--gemma3", action="store_true",
                   help="a Gemma3ForCausalLM (model_type gemma3_text): --gemma2's parts without the caps, head "
                        "norms (1 + w), --sliding-window in layer 0 of every 2 (sliding_window_pattern 2) with "
                        "its own RoPE base (100, the global layers' 10000)")
    p.add_argument("--mistral", action="store_true", help="a MistralForCausalLM: --sliding-window in every layer")
    p.add_argument("--phi3", action="store_true",
                   help="a Phi3ForCausalLM: q/k/v fused as qkv_proj, gate/up as gate_up_proj, LongRoPE with "
                        "short factors in [1, 4) and --original-max-positions (attention factor "
                        "sqrt(1 + ln 8 / ln 64) at the default 512 and 64)")
    p.add_argument("--smollm3", action="store_true",
                   help="a SmolLM3ForCausalLM: RoPE in the layers no_rope_layers marks 1 (here every other one, "
                        "from layer 0), none (NoPE) in the others")
    p.add_argument("--granite", action="store_true",
                   help="a GraniteForCausalLM: Llama's tensors with its four multipliers away from 1 (and "
                        "attention_dropout 0.1, as granite-3.x's configs have it)")
    p.add_argument("--olmo", action="store_true",
                   help="an OlmoForCausalLM (the first OLMo): Llama's tensors without any norm weight (its LayerNorms "
                        "have none), q, k and v clamped at --clip-qkv")
    p.add_argument("--clip-qkv", type=float, default=1.0,
                   help="--olmo's clip_qkv (OLMo 1.7's 8; 1 clamps about a tenth of this model's values); 0: null")
    p.add_argument("--olmo2", action="store_true",
                   help="an Olmo2ForCausalLM: no input norms, each half's output normed (post_attention_layernorm, "
                        "post_feedforward_layernorm), q_norm and k_norm across all heads (heads x head_dim)")
    p.add_argument("--olmo3", action="store_true",
                   help="an Olmo3ForCausalLM: --olmo2's tensors, --sliding-window in layer 0 of every 2 (layer_types), "
                        "--yarn's scaling where given (the full-attention layers')")
    p.add_argument("--stablelm", action="store_true",
                   help="a StableLmForCausalLM: LayerNorms with weights and biases (input_layernorm, "
                        "post_attention_layernorm, norm), biases on q/k/v (use_qkv_bias, as stablelm-2-1_6b), "
                        "RoPE over --partial-rotary of each head (StableLmConfig's 0.25 by default)")
    p.add_argument("--gpt-neox", action="store_true",
                   help="a GPTNeoXForCausalLM (Pythia): LayerNorms with weight and bias, q/k/v fused per head in "
                        "query_key_value, biases on every projection, a plain MLP with the exact GELU, the "
                        "parallel residual with a norm per half, RoPE over --partial-rotary of each head, "
                        "GPT-NeoX's tensor names")
    p.add_argument("--phi2", action="store_true",
                   help="a PhiForCausalLM (Phi-1.5, Phi-2): LayerNorms with weight and bias, biases on every "
                        "projection and the LM head, a plain MLP (fc1, fc2) with the tanh GELU, attention and MLP "
                        "side by side from one norm, RoPE over --partial-rotary of each head (0.5), Phi's names")
    p.add_argument("--mixtral", action="store_true",
                   help="a MixtralForCausalLM: the MLP a sparse mixture of --experts SwiGLU experts, "
                        "--experts-per-token a token")
    p.add_argument("--granitemoe", action="store_true",
                   help="a GraniteMoeForCausalLM: --granite's multipliers with --mixtral's mixture, each layer's "
                        "experts in two 3-D tensors (block_sparse_moe.input_linear [experts, 2 x intermediate, "
                        "hidden]: each expert's gate then up rows; output_linear [experts, hidden, intermediate]) "
                        "and the router as block_sparse_moe.router.layer")
    p.add_argument("--granite-hybrid", choices=["rope", "nope"],
                   help="a GraniteMoeHybridForCausalLM of attention layers alone (Granite 4.0 Micro's layout): "
                        "--granite's multipliers, the MLP as shared_mlp (input_linear = [gate; up], output_linear), "
                        "this position_embedding_type")
    p.add_argument("--qwen3-moe", action="store_true",
                   help="a Qwen3MoeForCausalLM: Qwen3's attention, the MLP a sparse mixture of --experts SwiGLU "
                        "experts of --intermediate, their weights not renormalised (norm_topk_prob false)")
    p.add_argument("--olmoe", action="store_true",
                   help="an OlmoeForCausalLM: Llama's pre-norms, q and k normed across all their heads (OLMo 2's), the "
                        "MLP a sparse mixture of --experts SwiGLU experts, their weights not renormalised")
    p.add_argument("--qwen2-moe", action="store_true",
                   help="a Qwen2MoeForCausalLM: Qwen2's attention (q, k, v biases), the MLP a sparse mixture of "
                        "--experts SwiGLU experts of --intermediate beside a shared expert of --shared-intermediate "
                        "behind its sigmoid gate, their weights not renormalised")
    p.add_argument("--shared-intermediate", type=int, default=0, help="--qwen2-moe's shared expert (0: 2 x intermediate)")
    p.add_argument("--attention-bias", action="store_true",
                   help="LlamaForCausalLM's attention_bias: biases on q, k, v and o_proj")
    p.add_argument("--mlp-bias", action="store_true",
                   help="LlamaForCausalLM's mlp_bias: biases on gate_proj, up_proj and down_proj")
    p.add_argument("--glm", action="store_true",
                   help="a GlmForCausalLM (GLM-4-9B-Chat-hf): biases on q, k and v, RoPE in interleaved pairs over "
                        "--partial-rotary of each head (0.5), gate and up fused as gate_up_proj")
    p.add_argument("--glm4", action="store_true",
                   help="a Glm4ForCausalLM (GLM-4-0414): --glm's parts and a norm of each half's output "
                        "(post_self_attn_layernorm, post_mlp_layernorm)")
    p.add_argument("--exaone4", action="store_true",
                   help="an Exaone4ForCausalLM (EXAONE 4.0): OLMo 2's output norms alone, an RMSNorm of each q and k "
                        "head, --sliding-window in layer 0 of every 2 (layer_types) and RoPE in those layers alone")
    p.add_argument("--seed-oss", action="store_true",
                   help="a SeedOssForCausalLM (Seed-OSS-36B): biases on q, k and v, head_dim twice hidden / heads")
    p.add_argument("--glm4-moe", action="store_true",
                   help="a Glm4MoeForCausalLM (GLM-4.5-Air): biases on q, k and v, an RMSNorm of each q and k head "
                        "(use_qk_norm), RoPE over half of each head (rotate_half), layer 0 a dense MLP of --intermediate, "
                        "the others --experts experts of --intermediate / 2 in 2 groups behind the sigmoid router "
                        "(e_score_correction_bias, topk_group 1, routed_scaling_factor 2.5) with 2 shared experts as "
                        "one ungated MLP (mlp.shared_experts), and a multi-token-prediction layer after the decoder's")
    p.add_argument("--dots1", action="store_true",
                   help="a Dots1ForCausalLM (dots.llm1): Qwen3's attention (head norms, no biases), layer 0 a dense MLP "
                        "of --intermediate, the others --glm4-moe's experts behind the sigmoid router in one group "
                        "(routed_scaling_factor 2.5) with 2 shared experts; no MTP layer")
    p.add_argument("--deepseek-v3", action="store_true",
                   help="a DeepseekV3ForCausalLM: multi-head latent attention -- q through a rank-24 latent "
                        "(q_a_proj, q_a_layernorm, q_b_proj), keys and values through a rank-16 one "
                        "(kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj), each head 12 content and 8 rotated "
                        "dimensions (interleaved pairs) of query and key and a value of 10 --, YaRN (factor 4 over "
                        "--original-max-positions, mscale 1, mscale_all_dim 0.8: cos / sin and the scores scaled), "
                        "and --glm4-moe's mixture with its multi-token-prediction layer")
    p.add_argument("--deepseek-v2", action="store_true",
                   help="a DeepseekV2ForCausalLM: --deepseek-v3's latent attention with q straight from the input "
                        "(q_lora_rank null) and YaRN's mscale 0.707 (DeepSeek-V2-Lite's), the router DeepSeek-V2's "
                        "softmax (group_limited_greedy: 3 experts from 2 of 4 groups, scaled by 2, not renormalised) "
                        "over 8 experts")
    p.add_argument("--experts", type=int, default=4)
    p.add_argument("--experts-per-token", type=int, default=2)
    p.add_argument("--cohere", action="store_true",
                   help="a CohereForCausalLM: LayerNorms with a weight and no bias, attention and MLP side by side "
                        "from input_layernorm (no post_attention_layernorm), RoPE in interleaved pairs, the logits "
                        "times logit_scale 0.25, tied embeddings")
    p.add_argument("--qk-norm", action="store_true",
                   help="with --cohere: Command R+'s use_qk_norm, a LayerNorm of each q and k head with its own "
                        "weight (q_norm [heads, head_dim], k_norm [kv heads, head_dim]); with --stablelm: StableLM 2 "
                        "12B's qk_layernorm, the same a module a head (q_layernorm.norms.<h>.weight [head_dim])")
    p.add_argument("--cohere2", action="store_true",
                   help="a Cohere2ForCausalLM (Command R7B): --cohere's parts, --sliding-window and RoPE in layer 0 of "
                        "every 2 (sliding_window_pattern 2), the other layers global without RoPE")
    p.add_argument("--parallel-residual", action="store_true",
                   help="--stablelm's use_parallel_residual: attention and MLP both read input_layernorm's output "
                        "(no post_attention_layernorm)")
    p.add_argument("--partial-rotary", type=float, metavar="FACTOR",
                   help="--phi3's and --stablelm's partial_rotary_factor (Phi-4-mini's 0.75): RoPE rotates that "
                        "share of each head")
    p.add_argument("--yarn", type=float, metavar="FACTOR",
                   help="rope_scaling of type yarn with this factor over --original-max-positions (as Qwen2.5 "
                        "and Qwen3 document it)")
    p.add_argument("--dynamic", type=float, metavar="FACTOR",
                   help="rope_scaling of type dynamic (dynamic NTK) with this factor")
    p.add_argument("--original-max-positions", type=int, default=64,
                   help="--phi3's and --yarn's original_max_position_embeddings (LongRoPE's long factors past it)")
    p.add_argument("--sliding-window", type=int, default=8,
                   help="the window of --mistral and --gemma2 (keys; shorter than the test sequences)")
    p.add_argument("--dtype", choices=["f32", "bf16", "f16"], default="f32")
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--byte-tokenizer", action="store_true",
                   help="write spin's byte_tokenizer.json (ids = bytes + 3; BOS 1, EOS 2); needs --vocab 259")
    a = p.parse_args()

    rng = random.Random(a.seed)
    a.mixtral = a.mixtral or a.granitemoe
    a.granite = a.granite or a.granitemoe or bool(a.granite_hybrid)
    a.olmo2 = a.olmo2 or a.olmo3
    a.cohere = a.cohere or a.cohere2
    a.glm = a.glm or a.glm4
    a.parallel_residual = a.parallel_residual or a.cohere
    if a.cohere:
        a.tie = True
    a.qwen3 = a.qwen3 or a.qwen3_moe
    if a.deepseek_v2:
        a.deepseek_v3, a.experts, a.experts_per_token = True, 8, 3  # its attention (but q_proj), layout, router
    a.deepseek_moe = a.glm4_moe or a.dots1 or a.deepseek_v3  # DeepSeek-V3's mixture after a dense layer 0
    q_rank, kv_rank, nope, rope, v_dim = 24, 16, 12, 8, 10  # --deepseek-v3's latent attention
    a.qwen2 = a.qwen2 or a.qwen2_moe
    shared = a.shared_intermediate or 2 * a.intermediate
    a.gemma2 = a.gemma2 or a.gemma3
    a.gemma = a.gemma or a.gemma2
    head_dim = a.hidden // a.heads * (2 if a.gemma or a.seed_oss else 1)
    if a.gemma:
        a.tie = True

    def matrix(rows, cols):
        return [bf16_round(rng.gauss(0.0, a.std)) for _ in range(rows * cols)]

    def norm(n):  # scales around 1, not exactly 1, so that tests see the norm weights at work
        return [bf16_round((0.0 if a.gemma else 1.0) + rng.gauss(0.0, 0.1)) for _ in range(n)]

    def biases(name, n):  # large enough to move the scores visibly
        return ([(name, [n], [bf16_round(rng.gauss(0.0, 0.3)) for _ in range(n)])]
                if a.qwen2 or a.stablelm or a.attention_bias or a.glm or a.seed_oss or a.glm4_moe else [])

    def norm_bias(name, n):  # StableLM's LayerNorms: a shift of every normed value
        return [(name, [n], [bf16_round(rng.gauss(0.0, 0.2)) for _ in range(n)])] if a.stablelm else []

    def vector(n, std=0.3):  # biases (GPT-NeoX's, Phi's) large enough to move the scores visibly
        return [bf16_round(rng.gauss(0.0, std)) for _ in range(n)]

    def moe_experts(pre):  # the router and experts: MixtralSparseMoeBlock's (w1 gate, w3 up, w2 down), or Qwen's
        moe = pre + ("block_sparse_moe." if a.mixtral else "mlp.")
        gate, up, down = ("w1", "w3", "w2") if a.mixtral else ("gate_proj", "up_proj", "down_proj")
        out = [(moe + "gate.weight", [a.experts, a.hidden], matrix(a.experts, a.hidden))]
        if a.deepseek_moe and not a.deepseek_v2:  # DeepseekV3TopkRouter's buffer: small, to move the choice
            out.append((moe + "gate.e_score_correction_bias", [a.experts], vector(a.experts, 0.05)))
        inter = a.intermediate // 2 if a.deepseek_moe else a.intermediate
        for e in range(a.experts):
            x = moe + "experts.%d." % e
            out += [(x + gate + ".weight", [inter, a.hidden], matrix(inter, a.hidden)),
                    (x + down + ".weight", [a.hidden, inter], matrix(a.hidden, inter)),
                    (x + up + ".weight", [inter, a.hidden], matrix(inter, a.hidden))]
        if a.deepseek_moe:  # DeepseekV3MoE's shared_experts: n_shared_experts (2) experts' width, no gate
            x, width = moe + "shared_experts.", 2 * inter
            out += [(x + "gate_proj.weight", [width, a.hidden], matrix(width, a.hidden)),
                    (x + "up_proj.weight", [width, a.hidden], matrix(width, a.hidden)),
                    (x + "down_proj.weight", [a.hidden, width], matrix(a.hidden, width))]
        if a.qwen2_moe:  # Qwen2MoeSparseMoeBlock's shared expert and its gate
            x = moe + "shared_expert."
            out += [(x + "gate_proj.weight", [shared, a.hidden], matrix(shared, a.hidden)),
                    (x + "up_proj.weight", [shared, a.hidden], matrix(shared, a.hidden)),
                    (x + "down_proj.weight", [a.hidden, shared], matrix(a.hidden, shared)),
                    (moe + "shared_expert_gate.weight", [1, a.hidden], matrix(1, a.hidden))]
        return out

    if a.gpt_neox:
        tensors = gpt_neox_tensors(a, matrix, norm, vector)
    elif a.phi2:
        tensors = phi_tensors(a, matrix, norm, vector)
    else:
        tensors = [("model.embed_tokens.weight", [a.vocab, a.hidden], matrix(a.vocab, a.hidden))]
    def latent_attention(pre):  # DeepseekV3Attention's projections
        s = pre + "self_attn."
        q = ([(s + "q_proj.weight", [a.heads * (nope + rope), a.hidden], matrix(a.heads * (nope + rope), a.hidden))]
             if a.deepseek_v2 else
             [(s + "q_a_proj.weight", [q_rank, a.hidden], matrix(q_rank, a.hidden)),
              (s + "q_a_layernorm.weight", [q_rank], norm(q_rank)),
              (s + "q_b_proj.weight", [a.heads * (nope + rope), q_rank], matrix(a.heads * (nope + rope), q_rank))])
        return q + [
                (s + "kv_a_proj_with_mqa.weight", [kv_rank + rope, a.hidden], matrix(kv_rank + rope, a.hidden)),
                (s + "kv_a_layernorm.weight", [kv_rank], norm(kv_rank)),
                (s + "kv_b_proj.weight", [a.heads * (nope + v_dim), kv_rank], matrix(a.heads * (nope + v_dim), kv_rank)),
                (s + "o_proj.weight", [a.hidden, a.heads * v_dim], matrix(a.hidden, a.heads * v_dim))]

    for l in range(0 if a.gpt_neox or a.phi2 else a.layers):
        pre = "model.layers.%d." % l
        if a.deepseek_v3:
            tensors += [(pre + "input_layernorm.weight", [a.hidden], norm(a.hidden)), *latent_attention(pre),
                        (pre + "post_attention_layernorm.weight", [a.hidden], norm(a.hidden)),
                        *(moe_experts(pre) if l > 0 else [
                            (pre + "mlp.gate_proj.weight", [a.intermediate, a.hidden], matrix(a.intermediate, a.hidden)),
                            (pre + "mlp.up_proj.weight", [a.intermediate, a.hidden], matrix(a.intermediate, a.hidden)),
                            (pre + "mlp.down_proj.weight", [a.hidden, a.intermediate],
                             matrix(a.hidden, a.intermediate))])]
            continue
        tensors += [
            *([] if a.olmo2 or a.olmo or a.exaone4 else [(pre + "input_layernorm.weight", [a.hidden], norm(a.hidden))]),
            *norm_bias(pre + "input_layernorm.bias", a.hidden),
            (pre + "self_attn.q_proj.weight", [a.heads * head_dim, a.hidden], matrix(a.heads * head_dim, a.hidden)),
            *biases(pre + "self_attn.q_proj.bias", a.heads * head_dim),
            (pre + "self_attn.k_proj.weight", [a.kv_heads * head_dim, a.hidden], matrix(a.kv_heads * head_dim, a.hidden)),
            *biases(pre + "self_attn.k_proj.bias", a.kv_heads * head_dim),
            (pre + "self_attn.v_proj.weight", [a.kv_heads * head_dim, a.hidden], matrix(a.kv_heads * head_dim, a.hidden)),
            *biases(pre + "self_attn.v_proj.bias", a.kv_heads * head_dim),
            (pre + "self_attn.o_proj.weight", [a.hidden, a.heads * head_dim], matrix(a.hidden, a.heads * head_dim)),
            *([(pre + "self_attn.o_proj.bias", [a.hidden], vector(a.hidden))] if a.attention_bias else []),
            *([(pre + "post_self_attn_layernorm.weight", [a.hidden], norm(a.hidden))] if a.glm4 else []),
            *([(pre + "self_attn.q_norm.weight", [head_dim], norm(head_dim)),
               (pre + "self_attn.k_norm.weight", [head_dim], norm(head_dim))]
              if a.qwen3 or a.gemma3 or a.exaone4 or a.deepseek_moe else []),
            *([(pre + "self_attn.q_norm.weight", [a.heads * head_dim], norm(a.heads * head_dim)),
               (pre + "self_attn.k_norm.weight", [a.kv_heads * head_dim], norm(a.kv_heads * head_dim))]
              if a.olmo2 or a.olmoe else []),
            *([(pre + "self_attn.q_norm.weight", [a.heads, head_dim], norm(a.heads * head_dim)),
               (pre + "self_attn.k_norm.weight", [a.kv_heads, head_dim], norm(a.kv_heads * head_dim))]
              if a.qk_norm and not a.stablelm else []),
            *([(pre + "self_attn.%s_layernorm.norms.%d.weight" % (p, h), [head_dim], norm(head_dim))
               for p, count in (("q", a.heads), ("k", a.kv_heads)) for h in range(count)]
              if a.qk_norm and a.stablelm else []),
            *([] if a.olmo or a.parallel_residual else
              [(pre + "post_attention_layernorm.weight", [a.hidden], norm(a.hidden)),
               *norm_bias(pre + "post_attention_layernorm.bias", a.hidden)]),
            *([(pre + "pre_feedforward_layernorm.weight", [a.hidden], norm(a.hidden))] if a.gemma2 else []),
            *(moe_experts(pre) if a.mixtral or a.qwen3_moe or a.olmoe or a.qwen2_moe or (a.deepseek_moe and l > 0) else [
                (pre + "mlp.gate_proj.weight", [a.intermediate, a.hidden], matrix(a.intermediate, a.hidden)),
                (pre + "mlp.up_proj.weight", [a.intermediate, a.hidden], matrix(a.intermediate, a.hidden)),
                (pre + "mlp.down_proj.weight", [a.hidden, a.intermediate], matrix(a.hidden, a.intermediate)),
                *([(pre + "mlp.%s_proj.bias" % p, [n], vector(n))
                   for p, n in (("gate", a.intermediate), ("up", a.intermediate), ("down", a.hidden))]
                  if a.mlp_bias else [])]),
            *([(pre + "post_feedforward_layernorm.weight", [a.hidden], norm(a.hidden))]
              if a.gemma2 or a.olmo2 or a.exaone4 else []),
            *([(pre + "post_mlp_layernorm.weight", [a.hidden], norm(a.hidden))] if a.glm4 else []),
        ]
    if a.glm4_moe or (a.deepseek_v3 and not a.deepseek_v2):  # an MTP layer (a part of it), which transformers does not read
        mtp = "model.layers.%d." % a.layers
        tensors += [(mtp + "eh_proj.weight", [a.hidden, 2 * a.hidden], matrix(a.hidden, 2 * a.hidden)),
                    (mtp + "enorm.weight", [a.hidden], norm(a.hidden)), (mtp + "hnorm.weight", [a.hidden], norm(a.hidden)),
                    (mtp + "shared_head.norm.weight", [a.hidden], norm(a.hidden))]
    if not a.olmo and not a.gpt_neox and not a.phi2:
        tensors.append(("model.norm.weight", [a.hidden], norm(a.hidden)))
        tensors += norm_bias("model.norm.bias", a.hidden)
    if not a.tie and not a.gpt_neox and not a.phi2:
        tensors.append(("lm_head.weight", [a.vocab, a.hidden], matrix(a.vocab, a.hidden)))
    if a.phi3:  # Phi3Attention's and Phi3MLP's fused tensors: rows [q; k; v] and [gate; up]
        by_name = {name: (shape, values) for name, shape, values in tensors}
        fused = []
        for name, shape, values in tensors:
            for parts, into in ((("q_proj", "k_proj", "v_proj"), "qkv_proj"), (("gate_proj", "up_proj"), "gate_up_proj")):
                if any(name.endswith("." + part + ".weight") for part in parts[1:]):
                    break  # held by the fused tensor
                if name.endswith("." + parts[0] + ".weight"):
                    prefix = name[:-len(parts[0] + ".weight")]
                    blocks = [by_name[prefix + part + ".weight"] for part in parts]
                    fused.append((prefix + into + ".weight", [sum(s[0] for s, _ in blocks), shape[1]],
                                  [x for _, v in blocks for x in v]))
                    break
            else:
                fused.append((name, shape, values))
        tensors = fused

    if a.granite_hybrid or a.glm:  # GraniteMoeHybridMLP's shared_mlp.input_linear, GlmMLP's gate_up_proj: [gate; up]
        fused_mlp = "shared_mlp.input_linear" if a.granite_hybrid else "mlp.gate_up_proj"
        by_name = {name: (shape, values) for name, shape, values in tensors}
        fused = []
        for name, shape, values in tensors:
            if name.endswith(".mlp.gate_proj.weight"):
                pre = name[:-len("mlp.gate_proj.weight")]
                up = by_name[pre + "mlp.up_proj.weight"][1]
                fused.append((pre + fused_mlp + ".weight", [2 * shape[0], shape[1]], values + up))
            elif name.endswith(".mlp.down_proj.weight") and a.granite_hybrid:
                fused.append((name.replace(".mlp.down_proj.", ".shared_mlp.output_linear."), shape, values))
            elif not name.endswith(".mlp.up_proj.weight"):
                fused.append((name, shape, values))
        tensors = fused
    if a.granitemoe:  # GraniteMoeParallelExperts: each layer's experts stacked in one tensor
        by_name = {name: (shape, values) for name, shape, values in tensors}
        fused = []
        for name, shape, values in tensors:
            moe = name[:name.find("block_sparse_moe.") + len("block_sparse_moe.")] if "block_sparse_moe." in name else ""
            if name == moe + "gate.weight":
                fused.append((moe + "router.layer.weight", shape, values))
                experts = [moe + "experts.%d." % e for e in range(a.experts)]
                fused.append((moe + "input_linear.weight", [a.experts, 2 * a.intermediate, a.hidden],
                              [x for e in experts for w in ("w1", "w3") for x in by_name[e + w + ".weight"][1]]))
                fused.append((moe + "output_linear.weight", [a.experts, a.hidden, a.intermediate],
                              [x for e in experts for x in by_name[e + "w2.weight"][1]]))
            elif not moe:
                fused.append((name, shape, values))
        tensors = fused

    os.makedirs(a.out_dir, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": a.vocab,
        "hidden_size": a.hidden,
        "intermediate_size": a.intermediate,
        "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads,
        "num_key_value_heads": a.kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": a.max_positions,
        "rms_norm_eps": 1e-5,
        "rope_theta": a.rope_theta,
        "tie_word_embeddings": a.tie,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}[a.dtype],
    }
    if a.attention_bias:
        config["attention_bias"] = True
    if a.mlp_bias:
        config["mlp_bias"] = True
    if a.qwen3:  # Qwen3's own keys, as the published models have them
        config.update({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "head_dim": head_dim,
                       "attention_bias": False, "use_sliding_window": False, "sliding_window": None,
                       "max_window_layers": a.layers})
    if a.gemma:  # Gemma's own keys, hidden_act as the first published configs have it (ignored)
        config.update({"architectures": ["GemmaForCausalLM"], "model_type": "gemma", "head_dim": head_dim,
                       "hidden_act": "gelu", "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6,
                       "attention_bias": False})
        del config["tie_word_embeddings"]  # GemmaConfig's default: tied
    if a.gemma2:  # Gemma 2's own keys
        config.update({"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2",
                       "hidden_act": "gelu_pytorch_tanh", "query_pre_attn_scalar": 24, "attn_logit_softcapping": 1.0,
                       "final_logit_softcapping": 2.0, "sliding_window": a.sliding_window,
                       "cache_implementation": "hybrid"})
    if a.gemma3:  # Gemma 3's (text) own keys, as gemma-3-1b-it's config.json has them
        config.update({"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
                       "attn_logit_softcapping": None, "final_logit_softcapping": None, "sliding_window_pattern": 2,
                       "rope_local_base_freq": 100.0, "eos_token_id": [1, 2]})
    if a.mistral:
        config.update({"architectures": ["MistralForCausalLM"], "model_type": "mistral",
                       "sliding_window": a.sliding_window})
    if a.phi3:  # Phi-3's own keys, as Phi-3-mini-128k-instruct's config.json has them (no window here)
        half = int(head_dim * (a.partial_rotary or 1.0)) // 2  # LongRoPE's factors: one a rotated pair
        config.update({"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "original_max_position_embeddings": a.original_max_positions,
                       "sliding_window": None, "attention_bias": False, "pad_token_id": 0, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
                       "attention_dropout": 0.0, "rope_scaling": {
                           "type": "longrope",
                           "short_factor": [round(1.0 + 3.0 * rng.random(), 4) for _ in range(half)],
                           "long_factor": [round(1.0 + 30.0 * rng.random(), 4) for _ in range(half)]}})
        if a.partial_rotary:
            config["partial_rotary_factor"] = a.partial_rotary
    if a.smollm3:  # SmolLM3's own keys, as SmolLM3-3B's config.json has them
        config.update({"architectures": ["SmolLM3ForCausalLM"], "model_type": "smollm3", "attention_bias": False,
                       "mlp_bias": False, "use_sliding_window": False, "sliding_window": None,
                       "no_rope_layer_interval": 2, "no_rope_layers": [int(i % 2 == 0) for i in range(a.layers)]})
    if a.dynamic:
        config["rope_scaling"] = {"type": "dynamic", "factor": a.dynamic}
    if a.granite:  # Granite's own keys; multipliers that each move the log-probabilities visibly
        config.update({"architectures": ["GraniteForCausalLM"], "model_type": "granite", "attention_bias": False,
                       "mlp_bias": False, "attention_dropout": 0.1, "embedding_multiplier": 6.0,
                       "attention_multiplier": 0.09, "residual_multiplier": 0.3, "logits_scaling": 3.0})
    if a.olmo:  # OLMo's own keys, as OLMo-1B-hf's config.json has them (no rms_norm_eps: its LayerNorm's is fixed)
        config.update({"architectures": ["OlmoForCausalLM"], "model_type": "olmo", "attention_bias": False,
                       "attention_dropout": 0.0, "clip_qkv": a.clip_qkv or None, "pad_token_id": 0})
        del config["rms_norm_eps"]
    if a.olmo2:  # OLMo 2's own keys, as OLMo-2-1124-7B's config.json has them
        config.update({"architectures": ["Olmo2ForCausalLM"], "model_type": "olmo2", "attention_bias": False,
                       "attention_dropout": 0.0, "rms_norm_eps": 1e-6, "pad_token_id": 0})
    if a.olmo3:
        config.update({"architectures": ["Olmo3ForCausalLM"], "model_type": "olmo3", "sliding_window": a.sliding_window,
                       "layer_types": ["sliding_attention" if l % 2 == 0 else "full_attention"
                                       for l in range(a.layers)]})
    if a.cohere:  # Cohere's own keys, as aya-23-8B's config.json has them (a larger logit_scale: visible here)
        config.update({"architectures": ["CohereForCausalLM"], "model_type": "cohere", "layer_norm_eps": 1e-5,
                       "logit_scale": 0.25, "use_qk_norm": a.qk_norm, "attention_bias": False,
                       "attention_dropout": 0.0, "pad_token_id": 0})
        del config["rms_norm_eps"]
    if a.cohere2:  # Command R7B's own keys (a window in three layers of four there; one of two here)
        config.update({"architectures": ["Cohere2ForCausalLM"], "model_type": "cohere2",
                       "sliding_window": a.sliding_window, "sliding_window_pattern": 2,
                       "position_embedding_type": "rope_gptj", "cache_implementation": "hybrid"})
    if a.stablelm:  # StableLM's own keys, as stablelm-2-1_6b's config.json has them
        config.update({"architectures": ["StableLmForCausalLM"], "model_type": "stablelm", "layer_norm_eps": 1e-5,
                       "use_qkv_bias": True, "qk_layernorm": a.qk_norm, "use_parallel_residual": a.parallel_residual,
                       "partial_rotary_factor": a.partial_rotary or 0.25, "hidden_dropout": 0.0,
                       "attention_dropout": 0.0})
        del config["rms_norm_eps"]
    if a.gpt_neox:  # GPT-NeoX's own keys, as pythia-1b's config.json has them
        config = {"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox", "vocab_size": a.vocab,
                  "hidden_size": a.hidden, "intermediate_size": a.intermediate, "num_hidden_layers": a.layers,
                  "num_attention_heads": a.heads, "hidden_act": "gelu", "rotary_pct": a.partial_rotary or 0.25,
                  "rotary_emb_base": a.rope_theta, "layer_norm_eps": 1e-5, "use_parallel_residual": True,
                  "max_position_embeddings": a.max_positions, "tie_word_embeddings": False, "bos_token_id": 1,
                  "eos_token_id": 2, "initializer_range": 0.02, "use_cache": True, "attention_dropout": 0.0,
                  "hidden_dropout": 0.0, "torch_dtype": config["torch_dtype"]}
    if a.phi2:  # Phi's own keys, as phi-2's config.json has them
        config = {"architectures": ["PhiForCausalLM"], "model_type": "phi", "vocab_size": a.vocab,
                  "hidden_size": a.hidden, "intermediate_size": a.intermediate, "num_hidden_layers": a.layers,
                  "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads, "hidden_act": "gelu_new",
                  "partial_rotary_factor": a.partial_rotary or 0.5, "rope_theta": a.rope_theta,
                  "layer_norm_eps": 1e-5, "qk_layernorm": False, "max_position_embeddings": a.max_positions,
                  "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, "resid_pdrop": 0.0,
                  "embd_pdrop": 0.0, "attention_dropout": 0.0, "torch_dtype": config["torch_dtype"]}
    if a.granite_hybrid:  # GraniteMoeHybrid's own keys, as granite-4.0-micro's config.json has them (the
        # Mamba-2 keys unused by attention layers; intermediate_size too: the shared MLP's width is its own)
        config.update({"architectures": ["GraniteMoeHybridForCausalLM"], "model_type": "granitemoehybrid",
                       "layer_types": ["attention"] * a.layers, "shared_intermediate_size": a.intermediate,
                       "intermediate_size": 3 * a.intermediate, "num_local_experts": 0, "num_experts_per_tok": 0,
                       "position_embedding_type": a.granite_hybrid, "normalization_function": "rmsnorm",
                       "mamba_chunk_size": 256, "mamba_conv_bias": True, "mamba_d_conv": 4, "mamba_d_head": 8,
                       "mamba_d_state": 16, "mamba_expand": 2, "mamba_n_groups": 1, "mamba_n_heads": 8,
                       "mamba_proj_bias": False, "output_router_logits": False, "router_aux_loss_coef": 0.01})
        del config["mlp_bias"]
    if a.granitemoe:  # GraniteMoE's own keys, as granite-3.0-1b-a400m-instruct's config.json has them
        config.update({"architectures": ["GraniteMoeForCausalLM"], "model_type": "granitemoe",
                       "num_local_experts": a.experts, "num_experts_per_tok": a.experts_per_token,
                       "output_router_logits": False, "router_aux_loss_coef": 0.001})
    elif a.mixtral:  # Mixtral's own keys, as Mixtral-8x7B-v0.1's config.json has them
        config.update({"architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
                       "num_local_experts": a.experts, "num_experts_per_tok": a.experts_per_token,
                       "output_router_logits": False, "router_aux_loss_coef": 0.02, "sliding_window": None,
                       "attention_dropout": 0.0})
    if a.qwen3_moe:  # Qwen3-MoE's own keys, as Qwen3-30B-A3B's config.json has them (but norm_topk_prob)
        config.update({"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "num_experts": a.experts,
                       "num_experts_per_tok": a.experts_per_token, "moe_intermediate_size": a.intermediate,
                       "intermediate_size": 3 * a.intermediate, "norm_topk_prob": False, "decoder_sparse_step": 1,
                       "mlp_only_layers": [], "output_router_logits": False, "router_aux_loss_coef": 0.001})
    if a.olmoe:  # OLMoE's own keys, as OLMoE-1B-7B-0924's config.json has them
        config.update({"architectures": ["OlmoeForCausalLM"], "model_type": "olmoe", "num_experts": a.experts,
                       "num_experts_per_tok": a.experts_per_token, "norm_topk_prob": False, "clip_qkv": None,
                       "output_router_logits": False, "router_aux_loss_coef": 0.01, "attention_bias": False,
                       "attention_dropout": 0.0, "pad_token_id": 1})
    if a.seed_oss:  # Seed-OSS's own keys, as Seed-OSS-36B-Instruct's config.json has them
        config.update({"architectures": ["SeedOssForCausalLM"], "model_type": "seed_oss", "head_dim": head_dim,
                       "attention_bias": True, "attention_out_bias": False, "mlp_bias": False,
                       "attention_dropout": 0.1, "residual_dropout": 0.1, "pretraining_tp": 1, "pad_token_id": 1})
    if a.exaone4:  # EXAONE 4.0's own keys, as EXAONE-4.0-32B's config.json has them (a window in layer 0 of 2 here)
        config.update({"architectures": ["Exaone4ForCausalLM"], "model_type": "exaone4", "head_dim": head_dim,
                       "sliding_window": a.sliding_window, "sliding_window_pattern": "LG",
                       "layer_types": ["sliding_attention" if l % 2 == 0 else "full_attention" for l in range(a.layers)],
                       "attention_dropout": 0.0, "pad_token_id": 0, "initializer_range": 0.02, "use_cache": True})
    if a.glm:  # GLM's own keys, as GLM-4-9B-0414's config.json has them (but the shapes and token ids)
        config.update({"architectures": ["Glm4ForCausalLM" if a.glm4 else "GlmForCausalLM"],
                       "model_type": "glm4" if a.glm4 else "glm", "head_dim": head_dim,
                       "partial_rotary_factor": a.partial_rotary or 0.5, "attention_bias": True,
                       "attention_dropout": 0.0, "pad_token_id": 0, "initializer_range": 0.02, "use_cache": True})
    if a.glm4_moe:  # GLM-4.5's own keys, as GLM-4.5-Air's config.json has them (but the shapes and token ids)
        config.update({"architectures": ["Glm4MoeForCausalLM"], "model_type": "glm4_moe", "head_dim": head_dim,
                       "partial_rotary_factor": 0.5, "attention_bias": True, "attention_dropout": 0.0,
                       "use_qk_norm": True, "n_routed_experts": a.experts, "num_experts_per_tok": a.experts_per_token,
                       "moe_intermediate_size": a.intermediate // 2, "n_shared_experts": 2, "n_group": 2,
                       "topk_group": 1, "norm_topk_prob": True, "routed_scaling_factor": 2.5,
                       "first_k_dense_replace": 1, "num_nextn_predict_layers": 1, "pad_token_id": 0,
                       "initializer_range": 0.02, "use_cache": True})
    if a.dots1:  # dots.llm1's own keys, as dots.llm1.inst's config.json has them (but the shapes and token ids)
        config.update({"architectures": ["Dots1ForCausalLM"], "model_type": "dots1", "attention_bias": False,
                       "attention_dropout": 0.0, "n_routed_experts": a.experts, "num_experts_per_tok": a.experts_per_token,
                       "moe_intermediate_size": a.intermediate // 2, "n_shared_experts": 2, "norm_topk_prob": True,
                       "routed_scaling_factor": 2.5, "first_k_dense_replace": 1, "max_window_layers": a.layers,
                       "sliding_window": None, "use_cache": True})
    if a.deepseek_v3:  # DeepSeek-V3's own keys, as its config.json has them (but the shapes and token ids)
        config.update({"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
                       "num_key_value_heads": a.heads, "q_lora_rank": q_rank, "kv_lora_rank": kv_rank,
                       "qk_nope_head_dim": nope, "qk_rope_head_dim": rope, "v_head_dim": v_dim,
                       "attention_bias": False, "attention_dropout": 0.0, "n_routed_experts": a.experts,
                       "num_experts_per_tok": a.experts_per_token, "moe_intermediate_size": a.intermediate // 2,
                       "n_shared_experts": 2, "n_group": 2, "topk_group": 1, "norm_topk_prob": True,
                       "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "topk_method": "noaux_tc",
                       "first_k_dense_replace": 1, "num_nextn_predict_layers": 1, "moe_layer_freq": 1,
                       "ep_size": 1, "rope_scaling": {"type": "yarn", "factor": 4.0, "beta_fast": 32, "beta_slow": 1,
                                                      "mscale": 1.0, "mscale_all_dim": 0.8,
                                                      "original_max_position_embeddings": a.original_max_positions},
                       "initializer_range": 0.02, "use_cache": True})
    if a.deepseek_v2:  # DeepSeek-V2-Lite's own keys (but the shapes and token ids)
        config.update({"architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "q_lora_rank": None,
                       "scoring_func": "softmax", "topk_method": "group_limited_greedy", "n_group": 4,
                       "topk_group": 2, "norm_topk_prob": False, "routed_scaling_factor": 2.0, "aux_loss_alpha": 0.001,
                       "seq_aux": True, "rope_scaling": {"type": "yarn", "factor": 4.0, "beta_fast": 32,
                                                         "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707,
                                                         "original_max_position_embeddings": a.original_max_positions}})
        for key in ("num_nextn_predict_layers", "ep_size"):
            config.pop(key, None)
    if a.yarn:
        config["rope_scaling"] = {"rope_type": "yarn", "factor": a.yarn,
                                  "original_max_position_embeddings": a.original_max_positions}
    if a.qwen2:  # Qwen2's own keys, the window off as in the published models
        config.update({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "use_sliding_window": False,
                       "sliding_window": a.max_positions // 2, "max_window_layers": a.layers})
    if a.qwen2_moe:  # Qwen2-MoE's own keys, as Qwen1.5-MoE-A2.7B's config.json has them
        config.update({"architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe", "num_experts": a.experts,
                       "num_experts_per_tok": a.experts_per_token, "moe_intermediate_size": a.intermediate,
                       "shared_expert_intermediate_size": shared, "intermediate_size": shared,
                       "norm_topk_prob": False, "decoder_sparse_step": 1, "output_router_logits": False,
                       "router_aux_loss_coef": 0.001})
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")

    if a.byte_tokenizer:
        if a.vocab != 259:
            p.error("--byte-tokenizer needs --vocab 259")
        with open(os.path.join(a.out_dir, "byte_tokenizer.json"), "w") as f:
            json.dump({"type": "byte", "offset": 3, "bos_id": 1, "eos_id": 2}, f, indent=2)
            f.write("\n")

    dtype = a.dtype.upper()
    for stale in os.listdir(a.out_dir):
        if stale.endswith(".safetensors") or stale.endswith(".safetensors.index.json"):
            os.remove(os.path.join(a.out_dir, stale))
    if a.shards == 1:
        write_safetensors(os.path.join(a.out_dir, "model.safetensors"), tensors, dtype)
        return
    weight_map = {}
    per_shard = (len(tensors) + a.shards - 1) // a.shards
    for s in range(a.shards):
        name = "model-%05d-of-%05d.safetensors" % (s + 1, a.shards)
        part = tensors[s * per_shard:(s + 1) * per_shard]
        write_safetensors(os.path.join(a.out_dir, name), part, dtype)
        weight_map.update({t[0]: name for t in part})
    with open(os.path.join(a.out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)


if __name__ == "__main__":
    main()

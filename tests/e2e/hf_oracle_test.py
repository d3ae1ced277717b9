#!/usr/bin/env python3
"""`spin score` against Hugging Face transformers' LlamaForCausalLM, Qwen2ForCausalLM and
GemmaForCausalLM (float32, CPU) on the tiny models: per-token log-probabilities and masked sums
agree to 2e-5 absolute. This is the independent check that spin computes what the checkpoints
mean (RoPE layout, GQA head grouping, RMSNorm, SwiGLU, tied embeddings, Qwen2's q/k/v biases,
Gemma's GeGLU, 1 + w norms, scaled embeddings and head_dim apart from hidden / heads). Qwen3 is newer than the
transformers this oracle runs on (4.40, beside Debian's torch 1.13): its reference is
LlamaForCausalLM with Qwen3's head norms put on the q and k projections' outputs by forward hooks,
computed as transformers' Qwen3RMSNorm computes them. Gemma 2 is newer too: its reference is
Gemma2ForCausalLM's forward (transformers 4.42's modeling_gemma2, eager attention) written out in
torch in float64 -- sandwich norms, query_pre_attn_scalar, the score and logit caps, the sliding
window of every other layer; Gemma 3 (gemma3_text) likewise from transformers 4.50's
modeling_gemma3 -- its head norms, no caps, the window in one layer of two here
(sliding_window_pattern 2) with its own RoPE base (100 against 10000): using the global base
everywhere, dropping the head norms or windowing the other layer each fail it (checked once by
hand). Mistral's sliding window (8 keys against sequences of 16-32 tokens):
MistralForCausalLM with eager attention, its window shifted by one (mistral_reference says why).
Phi-3 (fused qkv_proj / gate_up_proj, LongRoPE's short factors and attention factor):
Phi3ForCausalLM, or on 4.40 LlamaForCausalLM made into it (phi3_reference). YaRN (a Llama with
rope_scaling of type yarn, factor 8 over an original context of 64): LlamaForCausalLM with YaRN's
frequencies and attention factor (yarn_as_llama). Dynamic NTK (tiny-llama-dynamic: factor 4, a
context of 64 the sequences stay within): LlamaForCausalLM itself, whose dynamic rotary embedding
raises the base only past the context -- spin's plain RoPE tables there. Phi-4-mini's partial rotary factor (tiny-phi4-mini:
half of each head rotates): the same LlamaForCausalLM with Phi3's partial apply_rotary_pos_emb.
SmolLM3 (tiny-smollm3: layer 1 without RoPE): SmolLM3ForCausalLM, or on 4.40 LlamaForCausalLM with
that layer's rotation made the identity (smollm3_reference). Granite (tiny-granite: its four
multipliers, attention_dropout 0.1 as granite-3.x's configs have it): GraniteForCausalLM where
transformers has it (4.45 on), else LlamaForCausalLM with forward hooks in modeling_granite's places
(granite_reference). The first OLMo (tiny-olmo: LayerNorms without parameters, OLMo 1.7's clip_qkv at 1,
clamping about a tenth of q, k and v): OlmoForCausalLM itself (transformers 4.40 on). OLMo 2 (tiny-olmo2) and OLMo 3 (tiny-olmo3: a window of 8 in layer 0, YaRN in
the full-attention layer 1 alone): Olmo2ForCausalLM where transformers has it (4.47 on), else -- and
for OLMo 3 always, as transformers versions disagree on its windowed layers' RoPE -- LlamaForCausalLM
rewired as modeling_olmo2 / modeling_olmo3 compute (olmo_reference). StableLM (tiny-stablelm:
LayerNorms with weights and biases, q/k/v biases, a quarter of each head rotating; and
tiny-stablelm-parallel: attention and MLP side by side, use_parallel_residual): StableLmForCausalLM
itself (transformers 4.38 on). Cohere (tiny-cohere: LayerNorms with weights alone, attention and MLP
side by side, RoPE in interleaved pairs, logit_scale 0.25, tied): CohereForCausalLM itself (4.39 on).
Cohere 2 (tiny-cohere2: besides, an 8-key window and RoPE in layer 0 of every 2, the other global
without RoPE): Cohere2ForCausalLM where transformers has it (4.48 on), else CohereForCausalLM rewired
as Cohere2Attention computes (cohere2_reference). GPT-NeoX (tiny-gpt-neox: q, k, v fused per head,
biases on every projection, a plain MLP with the exact GELU, the parallel residual with a norm per
half, a quarter of each head rotating, GPT-NeoX's names): GPTNeoXForCausalLM itself. Phi-2
(tiny-phi2: biases on every projection and on the LM head, a plain MLP with the tanh GELU, attention
and MLP side by side from one norm, half of each head rotating, grouped-query attention): PhiForCausalLM
itself. Mixtral (tiny-mixtral: the MLP a sparse mixture of four SwiGLU experts, two a token, the router's
weights renormalised over them; Mixtral's names): MixtralForCausalLM itself. Qwen3-MoE (tiny-qwen3-moe: Qwen3's
head norms, four experts, two a token, their weights the softmax's probabilities as they are, norm_topk_prob
false): Qwen2MoeForCausalLM with zero q/k/v biases and a zero shared expert, plus Qwen3's head-norm hooks
(moe_reference). OLMoE (tiny-olmoe: q and k normed across all their heads, four experts, two a token,
not renormalised): the same with OLMoE's norms as the hooks. Qwen2-MoE (tiny-qwen2-moe: Qwen2's q, k, v
biases, four experts, two a token, not renormalised, and a shared expert of twice their width behind its
sigmoid gate): Qwen2MoeForCausalLM itself. Command R+'s norms (tiny-cohere-qk-norm: Cohere's parts with a
LayerNorm of each q and k head, a weight of its own each): CohereForCausalLM itself (use_qk_norm). StableLM 2
12B's (tiny-stablelm-qk-norm: the parallel residual with those norms, a module a head in the files):
StableLmForCausalLM itself (qk_layernorm). Llama's attention_bias (tiny-llama-bias: biases on q, k, v and
o_proj; mlp_bias: on gate_proj, up_proj and down_proj): LlamaForCausalLM itself, its MLP's biases
put on the modules where its transformers has no mlp_bias (llama_with_mlp_bias). GraniteMoE (tiny-granitemoe: Granite's multipliers, Mixtral's mixture, each
layer's experts in two 3-D tensors): GraniteMoeForCausalLM where transformers has it, else MixtralForCausalLM on
the experts split out with Granite's hooks (granitemoe_reference). Granite 4.0's attention-only layout
(tiny-granite4, and tiny-granite4-nope without RoPE: granitemoehybrid, the MLP as shared_mlp with gate and up
fused): GraniteMoeHybridForCausalLM where transformers has it, else Llama with the MLP split out and Granite's
hooks (granite4_reference). GLM (tiny-glm: q, k, v biases, half of each head rotating in interleaved pairs,
gate_up_proj) and GLM-4 (tiny-glm4: besides the norms of each half's output): GlmForCausalLM's and
Glm4ForCausalLM's forwards written out in float64 (glm_reference; transformers 4.40 has neither). EXAONE 4.0
(tiny-exaone4: OLMo 2's output norms, q and k head norms, an 8-key window and RoPE in layer 0 of 2, the
global layer 1 without RoPE): Exaone4ForCausalLM's forward written out likewise (exaone4_reference). Seed-OSS
(tiny-seed-oss: q, k, v biases, head_dim twice hidden / heads): SeedOssForCausalLM's likewise (seed_oss_reference;
transformers 4.40's Llama has no head_dim of its own). GLM-4.5 (tiny-glm4-moe: q, k, v biases and head norms,
half of each head rotating, a dense layer 0, then 4 experts in 2 groups behind the sigmoid router with its
correction bias, scaled by 2.5, and ungated shared experts; an MTP layer in the files) and dots.llm1
(tiny-dots1: Qwen3's attention, the same mixture in one group): Glm4MoeForCausalLM's and Dots1ForCausalLM's
likewise (deepseek_moe_reference).
Needs torch and transformers (a test oracle only).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import types

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, LlamaForCausalLM
from transformers.models.llama import modeling_llama


def qwen3_as_llama(model_dir, tmp):
    """Qwen3 as LlamaForCausalLM (its weights without the head norms) plus forward hooks that
    normalize each query and key head of the q_proj / k_proj outputs (Qwen3RMSNorm)."""
    config = json.load(open(os.path.join(model_dir, "config.json")))
    head_dim, eps = config["head_dim"], config["rms_norm_eps"]
    weights = load_file(os.path.join(model_dir, "model.safetensors"))
    norms = {k: v for k, v in weights.items() if k.endswith("_norm.weight") and ".self_attn." in k}
    llama_dir = os.path.join(tmp, "as-llama")
    os.makedirs(llama_dir)
    save_file({k: v for k, v in weights.items() if k not in norms}, os.path.join(llama_dir, "model.safetensors"),
              metadata={"format": "pt"})
    config.update({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    json.dump(config, open(os.path.join(llama_dir, "config.json"), "w"))
    model = LlamaForCausalLM.from_pretrained(llama_dir, torch_dtype=torch.float32).eval()
    return hook_qk_norms(model, norms, head_dim, eps)


def hook_qk_norms(model, norms, width, eps):
    """`model` with forward hooks on every layer's q_proj and k_proj that RMS-normalize their outputs in
    float32 over groups of `width` values (a head: Qwen3RMSNorm; None: the whole row, OLMo 2's and
    OLMoE's norms across the heads) and scale them by `norms`' weights, each taken from it."""
    def rms_norm(weight):
        def hook(module, inputs, output):
            x = output.reshape(*output.shape[:-1], -1, width or output.shape[-1]).to(torch.float32)
            x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
            return (weight * x).reshape(output.shape)
        return hook

    for i, layer in enumerate(model.model.layers):
        for proj in ("q", "k"):
            weight = norms.pop("model.layers.%d.self_attn.%s_norm.weight" % (i, proj))
            getattr(layer.self_attn, proj + "_proj").register_forward_hook(rms_norm(weight))
    assert not norms, norms
    return model


def stablelm_reference(model_dir):
    """StableLmForCausalLM itself with qk_layernorm: its per-head norms are nn.LayerNorm(bias=False),
    which this torch predates -- built here as LayerNorms whose bias is None, F.layer_norm's meaning
    of none (the same module list, names and weights)."""
    from transformers.models.stablelm import modeling_stablelm

    def per_head_init(self, dim, num_heads, eps=1e-5, bias=False):
        torch.nn.Module.__init__(self)
        self.dim, self.num_heads = dim, num_heads
        norms = [torch.nn.LayerNorm(dim, eps=eps) for _ in range(num_heads)]
        for norm in norms:
            if not bias:
                norm.bias = None
        self.norms = torch.nn.ModuleList(norms)

    modeling_stablelm.StableLmLayerNormPerHead.__init__ = per_head_init
    return AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()


def llama_with_mlp_bias(model_dir):
    """LlamaForCausalLM with mlp_bias (transformers 4.41 on): where the oracle's transformers builds
    LlamaMLP without biases, the files' gate_proj, up_proj and down_proj biases are set on its Linear
    modules, which then add them as LlamaMLP's own would."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    from safetensors.torch import load_file
    tensors = load_file(os.path.join(model_dir, "model.safetensors"))
    for l, layer in enumerate(model.model.layers):
        for part in ("gate_proj", "up_proj", "down_proj"):
            module = getattr(layer.mlp, part)
            if module.bias is None:
                module.bias = torch.nn.Parameter(tensors["model.layers.%d.mlp.%s.bias" % (l, part)].float())
    return model


def moe_reference(model_dir, tmp):
    """Qwen3-MoE and OLMoE (newer than the oracle's transformers 4.40) as Qwen2MoeForCausalLM: the same
    sparse block (softmax, top-k, norm_topk_prob) under the same tensor names, its q/k/v biases zero, its
    shared expert zero (its down projection's weights: it adds sigmoid(gate) x 0), plus hooks on the
    q_proj / k_proj outputs: Qwen3's RMSNorm of each head (qwen3_as_llama's), or OLMoE's across all of a
    row's heads (OlmoeRMSNorm over q's, k's whole width)."""
    config = json.load(open(os.path.join(model_dir, "config.json")))
    olmoe = config["model_type"] == "olmoe"
    head_dim = config["hidden_size"] // config["num_attention_heads"] if olmoe else config["head_dim"]
    eps = config["rms_norm_eps"]
    assert head_dim * config["num_attention_heads"] == config["hidden_size"], "Qwen2MoeAttention's head_dim"
    weights = load_file(os.path.join(model_dir, "model.safetensors"))
    norms = {k: v for k, v in weights.items() if k.endswith("_norm.weight") and ".self_attn." in k}
    tensors = {k: v for k, v in weights.items() if k not in norms}
    hidden, shared = config["hidden_size"], 8
    for i in range(config["num_hidden_layers"]):
        pre = "model.layers.%d." % i
        for proj in ("q", "k", "v"):
            w = tensors[pre + "self_attn.%s_proj.weight" % proj]
            tensors[pre + "self_attn.%s_proj.bias" % proj] = torch.zeros(w.shape[0])
        tensors[pre + "mlp.shared_expert.gate_proj.weight"] = torch.ones(shared, hidden)
        tensors[pre + "mlp.shared_expert.up_proj.weight"] = torch.ones(shared, hidden)
        tensors[pre + "mlp.shared_expert.down_proj.weight"] = torch.zeros(hidden, shared)
        tensors[pre + "mlp.shared_expert_gate.weight"] = torch.ones(1, hidden)
    moe_dir = os.path.join(tmp, "as-qwen2-moe")
    os.makedirs(moe_dir)
    save_file(tensors, os.path.join(moe_dir, "model.safetensors"), metadata={"format": "pt"})
    config.update({"architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe",
                   "shared_expert_intermediate_size": shared})
    if olmoe:  # its experts' width
        config["moe_intermediate_size"] = config["intermediate_size"]
    json.dump(config, open(os.path.join(moe_dir, "config.json"), "w"))
    model = AutoModelForCausalLM.from_pretrained(moe_dir, torch_dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    return hook_qk_norms(model, norms, None if olmoe else head_dim, eps)


def phi3_reference(model_dir, tmp):
    """Phi3ForCausalLM where transformers has it (4.41 on); on the oracle's 4.40, LlamaForCausalLM
    on the checkpoint split as Phi3Attention and Phi3MLP slice their fused tensors (qkv_proj's rows
    q, k, v; gate_up_proj's gate, up), its rotary inverse frequencies replaced by LongRoPE's,
    1 / (factor_i base^(2i / d)) in float32, and cos and sin multiplied by the attention factor
    sqrt(1 + ln(max / original) / ln original) -- two of them, the short factors' for a sequence of
    up to original_max_position_embeddings tokens and the long factors' for a longer one, as
    Phi3LongRoPEScaledRotaryEmbedding switches on the length of the sequence it is given. Checked
    once against transformers 4.44.2's Phi3ForCausalLM on tiny-phi3 (2026-12-02, sequences on the
    short factors): the same log-probabilities to 1.0e-6, and spin within 1.2e-6 of
    Phi3ForCausalLM; on 4.40, within 2.4e-5 of this LlamaForCausalLM."""
    import transformers
    config = json.load(open(os.path.join(model_dir, "config.json")))
    if hasattr(transformers, "Phi3ForCausalLM") and config.get("partial_rotary_factor", 1.0) == 1.0:
        return AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    short, long = (phi3_as_llama(model_dir, tmp, factors) for factors in ("short_factor", "long_factor"))
    original = config["original_max_position_embeddings"]

    def by_length(ids):
        return (long if ids.shape[1] > original else short)(ids)

    by_length.__name__ = "LlamaForCausalLM as Phi3ForCausalLM (LongRoPE: long factors past %d tokens)" % original
    return by_length


def phi3_as_llama(model_dir, tmp, factors):
    """phi3_reference's LlamaForCausalLM on LongRoPE's `factors` (short_factor or long_factor)."""
    config = json.load(open(os.path.join(model_dir, "config.json")))
    hd = config["hidden_size"] // config["num_attention_heads"]
    rotary = int(hd * config.pop("partial_rotary_factor", 1.0))
    q_rows, kv_rows = config["num_attention_heads"] * hd, config["num_key_value_heads"] * hd
    weights = {}
    for name, value in load_file(os.path.join(model_dir, "model.safetensors")).items():
        if name.endswith("qkv_proj.weight"):
            base = name[:-len("qkv_proj.weight")]
            weights[base + "q_proj.weight"] = value[:q_rows].clone()
            weights[base + "k_proj.weight"] = value[q_rows:q_rows + kv_rows].clone()
            weights[base + "v_proj.weight"] = value[q_rows + kv_rows:].clone()
        elif name.endswith("gate_up_proj.weight"):
            base = name[:-len("gate_up_proj.weight")]
            gate, up = value.chunk(2, dim=0)
            weights[base + "gate_proj.weight"], weights[base + "up_proj.weight"] = gate.clone(), up.clone()
        else:
            weights[name] = value
    llama_dir = os.path.join(tmp, "as-llama-" + factors)
    os.makedirs(llama_dir)
    save_file(weights, os.path.join(llama_dir, "model.safetensors"), metadata={"format": "pt"})
    scaling = config.pop("rope_scaling")
    original = config["original_max_position_embeddings"]
    config.update({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    json.dump(config, open(os.path.join(llama_dir, "config.json"), "w"))
    model = LlamaForCausalLM.from_pretrained(llama_dir, torch_dtype=torch.float32).eval()
    factor = torch.tensor(scaling[factors], dtype=torch.float32)
    inv_freq = 1.0 / (factor * config["rope_theta"] ** (torch.arange(0, rotary, 2, dtype=torch.int64).float() / rotary))
    scale = config["max_position_embeddings"] / original
    rescale_rope(model, inv_freq, math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1.0 else 1.0)
    model.__name__ = "LlamaForCausalLM as Phi3ForCausalLM (LongRoPE)"
    return model


def rescale_rope(model, inv_freq, attention_factor):
    """Gives a LlamaForCausalLM's rotary embeddings the inverse frequencies `inv_freq` and
    multiplies their cos and sin by `attention_factor`, as transformers' rope types with an
    attention scaling do. Fewer frequencies than head_dim / 2 rotate the first 2 len(inv_freq)
    dimensions of each head only, as Phi3Attention's apply_rotary_pos_emb does for a
    partial_rotary_factor (put in modeling_llama's place: for a whole head it computes what
    Llama's does)."""
    def scaled(module, inputs, output):
        return tuple(x * attention_factor for x in output)

    # Each attention's rotary embedding (4.40), or the model's one (later versions).
    embeddings = ([model.model.rotary_emb] if hasattr(model.model, "rotary_emb")
                  else [layer.self_attn.rotary_emb for layer in model.model.layers])
    for emb in embeddings:
        emb.inv_freq = inv_freq.clone()
        emb.register_forward_hook(scaled)
    modeling_llama.apply_rotary_pos_emb = partial_rotary_pos_emb


def partial_rotary_pos_emb(q, k, cos, sin, position_ids=None, unsqueeze_dim=1):
    """transformers' Phi3 apply_rotary_pos_emb: rotate-half over cos's width, the rest of each
    head passed through."""
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    rotary = cos.shape[-1]

    def rotate(x):
        x_rot, x_pass = x[..., :rotary], x[..., rotary:]
        return torch.cat([x_rot * cos + modeling_llama.rotate_half(x_rot) * sin, x_pass], dim=-1)

    return rotate(q), rotate(k)


def smollm3_reference(model_dir, tmp):
    """SmolLM3ForCausalLM where transformers has it (4.53 on); on the oracle's 4.40,
    LlamaForCausalLM whose NoPE layers' rotary embeddings give cos 1 and sin 0 (no rotation), as
    SmolLM3Attention skips RoPE where no_rope_layers is 0."""
    import transformers
    if hasattr(transformers, "SmolLM3ForCausalLM"):
        return AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    config = json.load(open(os.path.join(model_dir, "config.json")))
    rotates = config["no_rope_layers"]
    as_llama = os.path.join(tmp, "as-llama")
    os.makedirs(as_llama)
    config.update({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    json.dump(config, open(os.path.join(as_llama, "config.json"), "w"))
    os.symlink(os.path.abspath(os.path.join(model_dir, "model.safetensors")), os.path.join(as_llama, "model.safetensors"))
    model = LlamaForCausalLM.from_pretrained(as_llama, torch_dtype=torch.float32).eval()

    def unrotated(module, inputs, output):
        cos, sin = output
        return torch.ones_like(cos), torch.zeros_like(sin)

    for layer, uses_rope in zip(model.model.layers, rotates):
        if not uses_rope:
            layer.self_attn.rotary_emb.register_forward_hook(unrotated)
    model.__name__ = "LlamaForCausalLM without RoPE in SmolLM3's NoPE layers"
    return model


def granite_reference(model_dir, tmp):
    """GraniteForCausalLM where transformers has it (4.45 on); on the oracle's 4.40 LlamaForCausalLM
    with forward hooks where modeling_granite differs from modeling_llama: the embedding's output times
    embedding_multiplier (GraniteModel), scores times attention_multiplier instead of 1 / sqrt(head_dim)
    (GraniteAttention's self.scaling; here q times attention_multiplier sqrt(head_dim), RoPE being
    linear), o_proj's and down_proj's outputs times residual_multiplier before their residual adds
    (GraniteDecoderLayer), the logits divided by logits_scaling (GraniteForCausalLM)."""
    import transformers
    if hasattr(transformers, "GraniteForCausalLM"):
        return AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    config = json.load(open(os.path.join(model_dir, "config.json")))
    as_llama = os.path.join(tmp, "as-llama")
    os.makedirs(as_llama)
    m = {k: config.pop(k) for k in GRANITE_MULTIPLIERS}
    config.update({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    json.dump(config, open(os.path.join(as_llama, "config.json"), "w"))
    os.symlink(os.path.abspath(os.path.join(model_dir, "model.safetensors")), os.path.join(as_llama, "model.safetensors"))
    model = LlamaForCausalLM.from_pretrained(as_llama, torch_dtype=torch.float32).eval()
    hook_granite_multipliers(model, m, config, lambda layer: layer.mlp.down_proj)
    model.__name__ = "LlamaForCausalLM with Granite's multipliers"
    return model


def granite4_reference(model_dir, tmp):
    """GraniteMoeHybridForCausalLM where transformers has it; on the oracle's 4.40 granite_reference's
    LlamaForCausalLM with hooks on the checkpoint's shared_mlp split as GraniteMoeHybridMLP chunks it
    (input_linear's rows [gate; up], output_linear the down projection), and with
    position_embedding_type "nope" every rotation the identity (inverse frequencies 0: cos 1, sin 0)."""
    import transformers
    if hasattr(transformers, "GraniteMoeHybridForCausalLM"):
        return AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    config = json.load(open(os.path.join(model_dir, "config.json")))
    weights = {}
    for name, value in load_file(os.path.join(model_dir, "model.safetensors")).items():
        if name.endswith("shared_mlp.input_linear.weight"):
            pre = name[:-len("shared_mlp.input_linear.weight")]
            gate, up = value.chunk(2, dim=0)
            weights[pre + "mlp.gate_proj.weight"], weights[pre + "mlp.up_proj.weight"] = gate.clone(), up.clone()
        else:
            weights[name.replace("shared_mlp.output_linear.", "mlp.down_proj.")] = value
    as_llama = os.path.join(tmp, "as-llama")
    os.makedirs(as_llama)
    save_file(weights, os.path.join(as_llama, "model.safetensors"), metadata={"format": "pt"})
    m = {k: config.pop(k) for k in GRANITE_MULTIPLIERS}
    nope = config["position_embedding_type"] == "nope"
    config.update({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                   "intermediate_size": config["shared_intermediate_size"]})
    json.dump(config, open(os.path.join(as_llama, "config.json"), "w"))
    model = LlamaForCausalLM.from_pretrained(as_llama, torch_dtype=torch.float32).eval()
    hook_granite_multipliers(model, m, config, lambda layer: layer.mlp.down_proj)
    if nope:
        embeddings = ([model.model.rotary_emb] if hasattr(model.model, "rotary_emb")
                      else [layer.self_attn.rotary_emb for layer in model.model.layers])
        for emb in embeddings:
            emb.inv_freq = torch.zeros_like(emb.inv_freq)
    model.__name__ = "LlamaForCausalLM with Granite 4.0's shared MLP and multipliers%s" % (", no RoPE" if nope else "")
    return model


GRANITE_MULTIPLIERS = ("embedding_multiplier", "attention_multiplier", "residual_multiplier", "logits_scaling")


def hook_granite_multipliers(model, m, config, mlp_output):
    """granite_reference's hooks on a Llama-shaped `model` for the multipliers `m`; `mlp_output(layer)`
    is the module whose output (or its first element) the residual multiplier scales."""
    def times(factor):
        def scale(module, inputs, output):
            return (output[0] * factor,) + tuple(output[1:]) if isinstance(output, tuple) else output * factor
        return scale

    head_dim = config["hidden_size"] // config["num_attention_heads"]
    model.model.embed_tokens.register_forward_hook(times(m["embedding_multiplier"]))
    for layer in model.model.layers:
        layer.self_attn.q_proj.register_forward_hook(times(m["attention_multiplier"] * math.sqrt(head_dim)))
        layer.self_attn.o_proj.register_forward_hook(times(m["residual_multiplier"]))
        mlp_output(layer).register_forward_hook(times(m["residual_multiplier"]))
    model.lm_head.register_forward_hook(times(1.0 / m["logits_scaling"]))


def granitemoe_reference(model_dir, tmp):
    """GraniteMoeForCausalLM where transformers has it (4.45 on); on the oracle's 4.40 MixtralForCausalLM
    on the experts split out of GraniteMoeParallelExperts' tensors (input_linear's expert e: rows [gate; up]
    as w1, w3; output_linear's as w2; the router's layer as the gate) with granite_reference's hooks --
    the residual multiplier on the sparse block's output instead of down_proj's. GraniteMoeTopKGating's
    softmax over the chosen logits is Mixtral's softmax renormalised over them."""
    import transformers
    if hasattr(transformers, "GraniteMoeForCausalLM"):
        return AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    config = json.load(open(os.path.join(model_dir, "config.json")))
    weights = {}
    for name, value in load_file(os.path.join(model_dir, "model.safetensors")).items():
        if name.endswith("block_sparse_moe.input_linear.weight"):
            pre = name[:-len("input_linear.weight")]
            for e, expert in enumerate(value):
                gate, up = expert.chunk(2, dim=0)
                weights[pre + "experts.%d.w1.weight" % e], weights[pre + "experts.%d.w3.weight" % e] = gate.clone(), up.clone()
        elif name.endswith("block_sparse_moe.output_linear.weight"):
            pre = name[:-len("output_linear.weight")]
            for e, expert in enumerate(value):
                weights[pre + "experts.%d.w2.weight" % e] = expert.clone()
        elif name.endswith("block_sparse_moe.router.layer.weight"):
            weights[name.replace("router.layer.", "gate.")] = value
        else:
            weights[name] = value
    as_mixtral = os.path.join(tmp, "as-mixtral")
    os.makedirs(as_mixtral)
    save_file(weights, os.path.join(as_mixtral, "model.safetensors"), metadata={"format": "pt"})
    m = {k: config.pop(k) for k in GRANITE_MULTIPLIERS}
    config.update({"architectures": ["MixtralForCausalLM"], "model_type": "mixtral"})
    json.dump(config, open(os.path.join(as_mixtral, "config.json"), "w"))
    model = AutoModelForCausalLM.from_pretrained(as_mixtral, torch_dtype=torch.float32).eval()
    hook_granite_multipliers(model, m, config, lambda layer: layer.block_sparse_moe)
    model.__name__ = "MixtralForCausalLM with GraniteMoE's experts and Granite's multipliers"
    return model


def windowed(forward, window):
    """An eager attention's forward with keys j <= i - window masked besides (masking_utils' sliding
    window, as spin's)."""
    def run(*args, **kwargs):
        mask = kwargs["attention_mask"]
        assert mask is not None and mask.dim() == 4, "eager attention's 4-D mask expected"
        i = torch.arange(mask.shape[-2])[:, None]
        j = torch.arange(mask.shape[-1])[None, :]
        kwargs["attention_mask"] = mask.masked_fill(i - j >= window, torch.finfo(mask.dtype).min)
        return forward(*args, **kwargs)
    return run


def cohere2_reference(model_dir, tmp):
    """Cohere2ForCausalLM where transformers has it (4.48 on); otherwise CohereForCausalLM (eager
    attention) rewired as Cohere2Attention computes: the windowed layers (all but every
    sliding_window_pattern-th) mask keys j <= i - window and rotate, the global ones attend without
    RoPE (their rotary embedding made the identity: cos 1, sin 0)."""
    import transformers
    if hasattr(transformers, "Cohere2ForCausalLM"):
        return AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    config = json.load(open(os.path.join(model_dir, "config.json")))
    window, pattern = config.pop("sliding_window"), config.pop("sliding_window_pattern")
    as_cohere = os.path.join(tmp, "as-cohere")
    os.makedirs(as_cohere)
    config.update({"architectures": ["CohereForCausalLM"], "model_type": "cohere"})
    json.dump(config, open(os.path.join(as_cohere, "config.json"), "w"))
    os.symlink(os.path.abspath(os.path.join(model_dir, "model.safetensors")), os.path.join(as_cohere, "model.safetensors"))
    model = AutoModelForCausalLM.from_pretrained(as_cohere, torch_dtype=torch.float32, attn_implementation="eager").eval()

    for l, layer in enumerate(model.model.layers):
        attn = layer.self_attn
        if (l + 1) % pattern != 0:
            attn.forward = windowed(attn.forward, window)
        else:  # 4.40: a rotary embedding per attention module, returning (cos, sin)
            attn.rotary_emb.register_forward_hook(
                lambda module, inputs, output: (torch.ones_like(output[0]), torch.zeros_like(output[1])))
    return model


def olmo_reference(model_dir, tmp):
    """Olmo2ForCausalLM where transformers has it; otherwise, and for OLMo 3, LlamaForCausalLM (eager
    attention) rewired as Olmo2DecoderLayer / Olmo3DecoderLayer compute: no input norms (Llama's two
    made the identity), q_proj and k_proj each followed by an RMSNorm over their whole output (every
    head: q_norm, k_norm), o_proj and down_proj each followed by their half's output norm
    (post_attention_layernorm, post_feedforward_layernorm) before the residual add -- Llama's own
    RMSNorm with the file's weights. OLMo 3: the windowed layers' masks hide keys j <= i - window
    (masking_utils' sliding window, as spin), rope_scaling (YaRN) in the full-attention layers
    alone -- their rotary embeddings given YaRN's frequencies and attention factor."""
    import transformers
    config = json.load(open(os.path.join(model_dir, "config.json")))
    if config["model_type"] == "olmo2" and hasattr(transformers, "Olmo2ForCausalLM"):
        return AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    as_llama = os.path.join(tmp, "as-llama")
    os.makedirs(as_llama)
    scaling, window = config.pop("rope_scaling", None), config.pop("sliding_window", None)
    layer_types = config.pop("layer_types", ["full_attention"] * config["num_hidden_layers"])
    architecture = config["architectures"][0]
    config.update({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    json.dump(config, open(os.path.join(as_llama, "config.json"), "w"))
    os.symlink(os.path.abspath(os.path.join(model_dir, "model.safetensors")), os.path.join(as_llama, "model.safetensors"))
    model = LlamaForCausalLM.from_pretrained(as_llama, torch_dtype=torch.float32, attn_implementation="eager").eval()
    state = load_file(os.path.join(model_dir, "model.safetensors"))

    def then_norm(linear, name):
        norm = modeling_llama.LlamaRMSNorm(state[name].numel(), eps=config["rms_norm_eps"])
        norm.weight.data = state[name].clone()
        return torch.nn.Sequential(linear, norm)

    if scaling:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
        from yarn_oracle import yarn
        assert scaling["rope_type"] == "yarn"
        inv_freq, attention_factor, _ = yarn(config["hidden_size"] // config["num_attention_heads"],
                                             config["rope_theta"], scaling["factor"],
                                             scaling["original_max_position_embeddings"])
    for l, layer in enumerate(model.model.layers):
        pre = "model.layers.%d." % l
        layer.input_layernorm = torch.nn.Identity()
        layer.post_attention_layernorm = torch.nn.Identity()  # Llama's MLP input norm
        attn = layer.self_attn
        attn.q_proj = then_norm(attn.q_proj, pre + "self_attn.q_norm.weight")
        attn.k_proj = then_norm(attn.k_proj, pre + "self_attn.k_norm.weight")
        attn.o_proj = then_norm(attn.o_proj, pre + "post_attention_layernorm.weight")
        layer.mlp.down_proj = then_norm(layer.mlp.down_proj, pre + "post_feedforward_layernorm.weight")
        if layer_types[l] == "sliding_attention":
            attn.forward = windowed(attn.forward, window)
        elif scaling:
            attn.rotary_emb.inv_freq = inv_freq.clone()  # 4.40: a rotary embedding per attention
            attn.rotary_emb.register_forward_hook(
                lambda module, inputs, output: tuple(x * attention_factor for x in output))
    model.__name__ = "LlamaForCausalLM rewired as %s" % architecture
    return model


def yarn_as_llama(model_dir, tmp):
    """A Llama with rope_scaling of type yarn (newer than the oracle's transformers 4.40) as
    LlamaForCausalLM without it, its rotary embeddings given YaRN's inverse frequencies and
    attention factor as _compute_yarn_parameters computes them (tests/data/yarn_oracle.py)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
    from yarn_oracle import yarn
    config = json.load(open(os.path.join(model_dir, "config.json")))
    scaling = config.pop("rope_scaling")
    plain = os.path.join(tmp, "without-yarn")
    os.makedirs(plain)
    json.dump(config, open(os.path.join(plain, "config.json"), "w"))
    os.symlink(os.path.abspath(os.path.join(model_dir, "model.safetensors")), os.path.join(plain, "model.safetensors"))
    model = LlamaForCausalLM.from_pretrained(plain, torch_dtype=torch.float32).eval()
    inv_freq, attention_factor, _ = yarn(config["hidden_size"] // config["num_attention_heads"], config["rope_theta"],
                                         scaling["factor"], scaling["original_max_position_embeddings"])
    rescale_rope(model, inv_freq, attention_factor)
    model.__name__ = "LlamaForCausalLM with YaRN's frequencies"
    return model


def rms_norm(x, scale, eps):
    """x / rms(x) * scale over the last dimension (LlamaRMSNorm's; Gemma's scale is 1 + w)."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * scale


def attend(q, k, v, scale, window=None, cap=None):
    """Eager causal attention of q [heads, T, hd] over k, v [kv_heads, T, hd] (query head h reads kv head
    h // (heads / kv_heads)), scores times `scale`, capped as cap tanh(s / cap) where `cap`, each query i
    seeing keys i - window < j <= i where `window`: the output [T, heads x hd]."""
    heads, t = q.shape[0], q.shape[1]
    k, v = k.repeat_interleave(heads // k.shape[0], 0), v.repeat_interleave(heads // v.shape[0], 0)
    s = q @ k.transpose(-1, -2) * scale
    if cap is not None:
        s = torch.tanh(s / cap) * cap
    mask = torch.ones(t, t, dtype=torch.bool).tril()
    if window is not None:  # keys at least `window` back are masked
        mask = mask & ~torch.ones(t, t, dtype=torch.bool).tril(-window)
    return (s.masked_fill(~mask, float("-inf")).softmax(-1) @ v).transpose(0, 1).reshape(t, -1)


def rotate_halves(x, pos, base):
    """RoPE ("rotate half") over every dimension of x [heads, T, hd] at positions `pos`, base `base`."""
    hd = x.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    angles = pos[:, None].double() * inv_freq[None, :]
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    return x * cos + torch.cat([-x[..., hd // 2:], x[..., :hd // 2]], -1) * sin


def written_out(model_dir):
    """A checkpoint read for a forward written out: its config.json and its tensors in float64."""
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    return cfg, {k: v.double() for k, v in load_file(os.path.join(model_dir, "model.safetensors")).items()}


def causal_lm(name, cfg, w, layer, norm, embed_scale=1.0, cap=None):
    """A causal LM's forward written out, named `name`: the embeddings (times `embed_scale`), x = layer(x,
    pre, index, pos) for each decoder layer (pre "model.layers.<index>.", pos the positions), the final
    norm, the LM head (the embeddings where the files hold no lm_head), the logits capped as
    cap tanh(l / cap) where `cap`: a callable from ids [1, T] to an object with .logits [1, T, vocab]."""
    def forward(ids):
        x = w["model.embed_tokens.weight"][ids[0]] * embed_scale
        pos = torch.arange(ids.shape[1])
        for index in range(cfg["num_hidden_layers"]):
            x = layer(x, "model.layers.%d." % index, index, pos)
        logits = norm(x, w["model.norm.weight"]) @ w.get("lm_head.weight", w["model.embed_tokens.weight"]).T
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return types.SimpleNamespace(logits=logits[None])

    forward.__name__ = "%s (written out)" % name
    return forward


def gemma2_reference(model_dir):
    """Gemma2ForCausalLM (transformers 4.42, eager attention) or Gemma3ForCausalLM (4.50, eager) in
    float64 torch, from the checkpoint: a callable from ids [1, T] to an object with .logits
    [1, T, vocab]. Gemma 3 differs by its head norms (Gemma3RMSNorm over head_dim, before RoPE),
    no caps (null), the window in layers i with (i + 1) % sliding_window_pattern != 0, whose RoPE
    base is rope_local_base_freq."""
    cfg, w = written_out(model_dir)
    gemma3 = cfg["model_type"] == "gemma3_text"
    hidden, heads, kv_heads, hd = (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
                                   cfg["head_dim"])
    eps, theta, window = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0), cfg["sliding_window"]
    scaling = cfg["query_pre_attn_scalar"] ** -0.5
    attn_cap, final_cap = cfg["attn_logit_softcapping"], cfg["final_logit_softcapping"]

    def sliding(layer):
        return (layer + 1) % cfg["sliding_window_pattern"] != 0 if gemma3 else layer % 2 == 0

    def norm(x, weight):  # Gemma2RMSNorm / Gemma3RMSNorm: x / rms(x) * (1 + w)
        return rms_norm(x, 1.0 + weight, eps)

    def layer(x, pre, index, pos):
        t = x.shape[0]
        h = norm(x, w[pre + "input_layernorm.weight"])
        q = (h @ w[pre + "self_attn.q_proj.weight"].T).view(t, heads, hd).transpose(0, 1)
        k = (h @ w[pre + "self_attn.k_proj.weight"].T).view(t, kv_heads, hd).transpose(0, 1)
        v = (h @ w[pre + "self_attn.v_proj.weight"].T).view(t, kv_heads, hd).transpose(0, 1)
        if gemma3:
            q, k = norm(q, w[pre + "self_attn.q_norm.weight"]), norm(k, w[pre + "self_attn.k_norm.weight"])
        base = cfg["rope_local_base_freq"] if gemma3 and sliding(index) else theta
        q, k = rotate_halves(q, pos, base), rotate_halves(k, pos, base)
        o = attend(q, k, v, scaling, window if sliding(index) else None, attn_cap)
        o = o @ w[pre + "self_attn.o_proj.weight"].T
        x = x + norm(o, w[pre + "post_attention_layernorm.weight"])
        h = norm(x, w[pre + "pre_feedforward_layernorm.weight"])
        g = torch.nn.functional.gelu(h @ w[pre + "mlp.gate_proj.weight"].T, approximate="tanh")
        m = (g * (h @ w[pre + "mlp.up_proj.weight"].T)) @ w[pre + "mlp.down_proj.weight"].T
        return x + norm(m, w[pre + "post_feedforward_layernorm.weight"])

    return causal_lm("Gemma3ForCausalLM" if gemma3 else "Gemma2ForCausalLM", cfg, w, layer, norm, hidden ** 0.5,
                     final_cap)


def glm_reference(model_dir):
    """GlmForCausalLM / Glm4ForCausalLM (transformers 4.46 / 4.51 on, eager attention) written out in
    float64 torch from modeling_glm and modular_glm4: Llama's layers with q, k, v biases, RoPE of the
    first partial_rotary_factor of each head in interleaved pairs -- cos / sin of the rotated width's
    frequencies repeat_interleave'd by 2, rotate_half over x[..., 0::2] and x[..., 1::2] --, the MLP's
    gate and up the two halves of gate_up_proj's output; GLM-4 besides norms of each half's output
    (post_self_attn_layernorm, post_mlp_layernorm), its post_attention_layernorm the MLP's input norm."""
    cfg, w = written_out(model_dir)
    glm4 = cfg["model_type"] == "glm4"
    heads, kv_heads, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps, theta = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    rotary = int(hd * cfg.get("partial_rotary_factor", 0.5))
    inter = cfg["intermediate_size"]

    def norm(x, weight):  # GlmRMSNorm
        return rms_norm(x, weight, eps)

    def rope(x, pos):  # apply_rotary_pos_emb on [heads, T, hd]
        inv_freq = 1.0 / (theta ** (torch.arange(0, rotary, 2, dtype=torch.float64) / rotary))
        freqs = pos[:, None].double() * inv_freq[None, :]
        emb = torch.cat([freqs, freqs], -1)
        cos = emb.cos()[..., :emb.shape[-1] // 2].repeat_interleave(2, dim=-1)
        sin = emb.sin()[..., :emb.shape[-1] // 2].repeat_interleave(2, dim=-1)
        x_rot, x_pass = x[..., :rotary], x[..., rotary:]
        rotated = torch.stack((-x_rot[..., 1::2], x_rot[..., 0::2]), dim=-1).flatten(-2)
        return torch.cat([x_rot * cos + rotated * sin, x_pass], -1)

    def layer(x, pre, index, pos):
        t = x.shape[0]

        def proj(h, name, n):
            return (h @ w[pre + name + ".weight"].T + w[pre + name + ".bias"]).view(t, n, hd).transpose(0, 1)

        h = norm(x, w[pre + "input_layernorm.weight"])
        q, k, v = proj(h, "self_attn.q_proj", heads), proj(h, "self_attn.k_proj", kv_heads), \
            proj(h, "self_attn.v_proj", kv_heads)
        q, k = rope(q, pos), rope(k, pos)
        o = attend(q, k, v, hd ** -0.5) @ w[pre + "self_attn.o_proj.weight"].T
        x = x + (norm(o, w[pre + "post_self_attn_layernorm.weight"]) if glm4 else o)
        h = norm(x, w[pre + "post_attention_layernorm.weight"])
        gate, up = (h @ w[pre + "mlp.gate_up_proj.weight"].T).split(inter, -1)
        m = (up * torch.nn.functional.silu(gate)) @ w[pre + "mlp.down_proj.weight"].T
        return x + (norm(m, w[pre + "post_mlp_layernorm.weight"]) if glm4 else m)

    return causal_lm("Glm4ForCausalLM" if glm4 else "GlmForCausalLM", cfg, w, layer, norm)


def exaone4_reference(model_dir):
    """Exaone4ForCausalLM (transformers 4.54 on, eager attention) written out in float64 torch from
    modular_exaone4: Olmo2DecoderLayer's norms of each half's output alone, an RMSNorm of each q and
    k head (Exaone4RMSNorm over head_dim) before RoPE, RoPE ("rotate half") in the sliding layers
    alone where the config has a window -- the global layers attend without it -- and in every
    layer where it has none; the sliding layers' keys i - window < j <= i."""
    cfg, w = written_out(model_dir)
    heads, kv_heads, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps, theta, window = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0), cfg["sliding_window"]

    def norm(x, weight):  # Exaone4RMSNorm (LlamaRMSNorm)
        return rms_norm(x, weight, eps)

    def layer(x, pre, index, pos):
        t = x.shape[0]
        sliding = window is not None and cfg["layer_types"][index] == "sliding_attention"
        q = (x @ w[pre + "self_attn.q_proj.weight"].T).view(t, heads, hd).transpose(0, 1)
        k = (x @ w[pre + "self_attn.k_proj.weight"].T).view(t, kv_heads, hd).transpose(0, 1)
        v = (x @ w[pre + "self_attn.v_proj.weight"].T).view(t, kv_heads, hd).transpose(0, 1)
        q, k = norm(q, w[pre + "self_attn.q_norm.weight"]), norm(k, w[pre + "self_attn.k_norm.weight"])
        if window is None or sliding:
            q, k = rotate_halves(q, pos, theta), rotate_halves(k, pos, theta)
        o = attend(q, k, v, hd ** -0.5, window if sliding else None) @ w[pre + "self_attn.o_proj.weight"].T
        x = x + norm(o, w[pre + "post_attention_layernorm.weight"])
        g = torch.nn.functional.silu(x @ w[pre + "mlp.gate_proj.weight"].T)
        m = (g * (x @ w[pre + "mlp.up_proj.weight"].T)) @ w[pre + "mlp.down_proj.weight"].T
        return x + norm(m, w[pre + "post_feedforward_layernorm.weight"])

    return causal_lm("Exaone4ForCausalLM", cfg, w, layer, norm)


def linear(w, x, name):
    """nn.Linear `name` of the weights `w` over x: its weight, and its bias where the files hold one."""
    return x @ w[name + ".weight"].T + (w[name + ".bias"] if name + ".bias" in w else 0.0)


def llama_attention(w, cfg, pre, h, pos, rotary=None, qk_norm=False):
    """LlamaAttention (eager) of layer `pre` over the normed input h [T, hidden] at positions `pos`: q, k, v
    with their biases where the files hold them, an RMSNorm of each q and k head where `qk_norm` (Qwen3's),
    RoPE ("rotate half") over the first `rotary` dimensions of each head (None: all), o_proj."""
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    t, eps, theta = h.shape[0], cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    q = linear(w, h, pre + "self_attn.q_proj").view(t, cfg["num_attention_heads"], hd).transpose(0, 1)
    k = linear(w, h, pre + "self_attn.k_proj").view(t, cfg["num_key_value_heads"], hd).transpose(0, 1)
    v = linear(w, h, pre + "self_attn.v_proj").view(t, cfg["num_key_value_heads"], hd).transpose(0, 1)
    if qk_norm:
        q = rms_norm(q, w[pre + "self_attn.q_norm.weight"], eps)
        k = rms_norm(k, w[pre + "self_attn.k_norm.weight"], eps)
    r = rotary or hd
    q = torch.cat([rotate_halves(q[..., :r], pos, theta), q[..., r:]], -1)
    k = torch.cat([rotate_halves(k[..., :r], pos, theta), k[..., r:]], -1)
    return linear(w, attend(q, k, v, hd ** -0.5), pre + "self_attn.o_proj")


def seed_oss_reference(model_dir):
    """SeedOssForCausalLM (transformers 4.56 on, eager attention, dropout off) written out in float64 torch
    from modular_seed_oss: LlamaDecoderLayer's pre-norm layers, q, k and v with biases (o_proj with one
    where attention_out_bias, the MLP where mlp_bias), head_dim apart from hidden / heads."""
    cfg, w = written_out(model_dir)
    eps = cfg["rms_norm_eps"]

    def norm(x, weight):  # LlamaRMSNorm
        return rms_norm(x, weight, eps)

    def layer(x, pre, index, pos):
        x = x + llama_attention(w, cfg, pre, norm(x, w[pre + "input_layernorm.weight"]), pos)
        h = norm(x, w[pre + "post_attention_layernorm.weight"])
        g = torch.nn.functional.silu(linear(w, h, pre + "mlp.gate_proj"))
        return x + linear(w, g * linear(w, h, pre + "mlp.up_proj"), pre + "mlp.down_proj")

    return causal_lm("SeedOssForCausalLM", cfg, w, layer, norm)


def deepseek_moe_reference(model_dir):
    """Glm4MoeForCausalLM (transformers 4.54 on) or Dots1ForCausalLM (4.53 on), eager attention, written
    out in float64 torch from modeling_glm4_moe / modular_dots1 (DeepseekV3MoE): Llama's pre-norm layers
    with q, k, v biases where the files hold them, an RMSNorm of each q and k head (GLM-4.5's where
    use_qk_norm, dots.llm1's always), RoPE ("rotate half") over the first partial_rotary_factor of each
    head (dots.llm1: all of it); the first first_k_dense_replace layers' MLPs dense, the others
    route_tokens_to_experts' -- sigmoid scores, chosen by score + e_score_correction_bias within the
    topk_group groups whose two best biased scores sum highest (the others' scores masked to 0.0),
    weighted by the chosen scores over their sum (+1e-20) times routed_scaling_factor -- plus
    shared_experts, ungated. GLM-4.5's multi-token-prediction layer after the decoder's is not read.
    DeepseekV3ForCausalLM (transformers 4.51 on) likewise from modular_deepseek_v3, its attention
    latent_attention's; DeepseekV2ForCausalLM from modular_deepseek_v2 (with the mscale_all_dim fix of
    transformers #47435) likewise but its router: softmax probabilities, the top-k (greedy) or the top-k
    within the topk_group groups of the largest best probabilities (group_limited_greedy: the others'
    masked to 0.0), weighted by their probabilities times routed_scaling_factor."""
    cfg, w = written_out(model_dir)
    dots1 = cfg["model_type"] == "dots1"
    v2 = cfg["model_type"] == "deepseek_v2"
    deepseek = v2 or cfg["model_type"] == "deepseek_v3"
    eps = cfg["rms_norm_eps"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    rotary = int(hd * cfg.get("partial_rotary_factor", 1.0))
    experts, k, groups = cfg["n_routed_experts"], cfg["num_experts_per_tok"], cfg.get("n_group", 1)

    def norm(x, weight):  # Glm4MoeRMSNorm / Dots1RMSNorm
        return rms_norm(x, weight, eps)

    def mlp(x, pre):
        return linear(w, torch.nn.functional.silu(linear(w, x, pre + "gate_proj")) * linear(w, x, pre + "up_proj"),
                      pre + "down_proj")

    def moe_v2(x, pre):
        probs = linear(w, x, pre + "gate").softmax(-1)
        choice = probs
        if cfg["topk_method"] == "group_limited_greedy":
            group_scores = probs.view(-1, groups, experts // groups).max(dim=-1).values
            group_mask = torch.zeros_like(group_scores).scatter_(1, group_scores.topk(cfg["topk_group"], dim=-1)[1], 1)
            mask = group_mask.unsqueeze(-1).expand(-1, groups, experts // groups).reshape(-1, experts)
            choice = probs.masked_fill(~mask.bool(), 0.0)
        weights, chosen = choice.topk(k, dim=-1)
        weights = weights * cfg["routed_scaling_factor"]
        out = mlp(x, pre + "shared_experts.")
        for row in range(x.shape[0]):
            for j in range(k):
                out[row] += weights[row, j] * mlp(x[row:row + 1], pre + "experts.%d." % int(chosen[row, j]))[0]
        return out

    def moe(x, pre):
        if v2:
            return moe_v2(x, pre)
        scores = linear(w, x, pre + "gate").sigmoid()
        choice = scores + w[pre + "gate.e_score_correction_bias"]
        group_scores = choice.view(-1, groups, experts // groups).topk(2, dim=-1)[0].sum(-1)
        group_mask = torch.zeros_like(group_scores).scatter_(1, group_scores.topk(cfg.get("topk_group", 1), dim=-1)[1], 1)
        mask = group_mask.unsqueeze(-1).expand(-1, groups, experts // groups).reshape(-1, experts)
        chosen = choice.masked_fill(~mask.bool(), 0.0).topk(k, dim=-1)[1]
        weights = scores.gather(1, chosen)
        if cfg["norm_topk_prob"]:
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
        weights = weights * cfg["routed_scaling_factor"]
        out = mlp(x, pre + "shared_experts.")
        for row in range(x.shape[0]):
            for j in range(k):
                e = int(chosen[row, j])
                out[row] += weights[row, j] * mlp(x[row:row + 1], pre + "experts.%d." % e)[0]
        return out

    def layer(x, pre, index, pos):
        h = norm(x, w[pre + "input_layernorm.weight"])
        x = x + (latent_attention(w, cfg, pre, h, pos) if deepseek else
                 llama_attention(w, cfg, pre, h, pos, rotary, dots1 or cfg["use_qk_norm"]))
        h = norm(x, w[pre + "post_attention_layernorm.weight"])
        return x + (mlp(h, pre + "mlp.") if index < cfg["first_k_dense_replace"] else moe(h, pre + "mlp."))

    name = ("DeepseekV2ForCausalLM" if v2 else "DeepseekV3ForCausalLM" if deepseek else
            "Dots1ForCausalLM" if dots1 else "Glm4MoeForCausalLM")
    return causal_lm(name, cfg, w, layer, norm)


def latent_attention(w, cfg, pre, h, pos):
    """DeepseekV3Attention (eager) of layer `pre` over the normed input h [T, hidden] at positions `pos`:
    q = q_b_proj(q_a_layernorm(q_a_proj(h))) (q_proj(h) where q_lora_rank is null), split per head into
    qk_nope_head_dim by content and qk_rope_head_dim rotated; kv_a_proj_with_mqa(h) split into the latent
    (kv_a_layernorm, then kv_b_proj: each head's key content and value) and one rotated key expanded to every
    head; RoPE over the rotated parts through apply_rotary_pos_emb_interleave (x viewed [d / 2, 2],
    transposed, then rotate_half) where rope_interleave, with YaRN's frequencies and cos / sin factor
    (the rotary embedding's dim qk_rope_head_dim) where rope_scaling says yarn; the scores scaled by
    qk_head_dim^-1/2 times yarn_get_mscale(factor, mscale_all_dim)^2; o_proj over the heads' values. The
    latent norms are DeepseekV3RMSNorm's with its default eps 1e-6."""
    t, heads = h.shape[0], cfg["num_attention_heads"]
    nope, rope, v_dim, kv_rank = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    theta, s = cfg.get("rope_theta", 10000.0), pre + "self_attn."
    scaling, inv_freq, attention_factor = (nope + rope) ** -0.5, None, 1.0
    rs = cfg.get("rope_scaling")
    if rs:
        from yarn_oracle import yarn
        assert rs.get("type", rs.get("rope_type")) == "yarn"
        inv_freq, attention_factor, _ = yarn(rope, theta, rs["factor"], rs["original_max_position_embeddings"],
                                             rs.get("beta_fast", 32), rs.get("beta_slow", 1),
                                             mscale=rs.get("mscale"), mscale_all_dim=rs.get("mscale_all_dim"))
        if rs.get("mscale_all_dim"):
            m = 0.1 * rs["mscale_all_dim"] * math.log(rs["factor"]) + 1.0
            scaling = scaling * m * m
    else:
        inv_freq = 1.0 / (theta ** (torch.arange(0, rope, 2, dtype=torch.int64).float() / rope))

    def rotate(x):  # x [n, T, rope]
        angles = pos[:, None].float() * inv_freq[None, :].float()  # the rotary embedding's float32 angles
        emb = torch.cat([angles, angles], -1).double()
        cos, sin = emb.cos() * attention_factor, emb.sin() * attention_factor
        if cfg.get("rope_interleave", True):
            x = x.reshape(*x.shape[:-1], rope // 2, 2).transpose(-1, -2).reshape(x.shape)
        return x * cos + torch.cat([-x[..., rope // 2:], x[..., :rope // 2]], -1) * sin

    if cfg.get("q_lora_rank"):
        q = linear(w, rms_norm(linear(w, h, s + "q_a_proj"), w[s + "q_a_layernorm.weight"], 1e-6), s + "q_b_proj")
    else:
        q = linear(w, h, s + "q_proj")
    q = q.view(t, heads, nope + rope).transpose(0, 1)
    compressed = linear(w, h, s + "kv_a_proj_with_mqa")
    kv = linear(w, rms_norm(compressed[:, :kv_rank], w[s + "kv_a_layernorm.weight"], 1e-6), s + "kv_b_proj")
    kv = kv.view(t, heads, nope + v_dim).transpose(0, 1)
    k_rot = rotate(compressed[:, kv_rank:].view(1, t, rope)).expand(heads, t, rope)
    q = torch.cat([q[..., :nope], rotate(q[..., nope:])], -1)
    k = torch.cat([kv[..., :nope], k_rot], -1)
    return linear(w, attend(q, k, kv[..., nope:], scaling), s + "o_proj")


def mistral_reference(model_dir, tmp):
    """MistralForCausalLM with eager attention. transformers 4.40's sliding-window mask lets query i
    see keys i - W <= j <= i (W + 1 of them; the masking was later made i - W < j, as current
    transformers, xFormers and vLLM have it, and as spin does): its model gets the config's window
    minus one, which gives the masks spin applies."""
    config = json.load(open(os.path.join(model_dir, "config.json")))
    config["sliding_window"] -= 1
    shifted = os.path.join(tmp, "window-1")
    os.makedirs(shifted)
    json.dump(config, open(os.path.join(shifted, "config.json"), "w"))
    os.symlink(os.path.abspath(os.path.join(model_dir, "model.safetensors")), os.path.join(shifted, "model.safetensors"))
    return AutoModelForCausalLM.from_pretrained(shifted, torch_dtype=torch.float32,
                                                attn_implementation="eager").eval()


def transformers_model(model_dir, ref):
    """The checkpoint as transformers' own class reads it."""
    return AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()


def directory_only(make):
    """A reference maker that needs no scratch folder."""
    return lambda model_dir, ref: make(model_dir)


# Every tiny model (tests/CMakeLists.txt makes them) and its reference, from the model's directory and a
# scratch folder: transformers' own class, or where that class cannot read the checkpoint as written (the
# functions above say why) a converted copy or a model built to match.
REFERENCES = [
    ("tiny-llama", transformers_model), ("tiny-llama-tied", transformers_model), ("tiny-qwen2", transformers_model),
    ("tiny-qwen3", qwen3_as_llama), ("tiny-gemma", transformers_model),
    ("tiny-gemma2", directory_only(gemma2_reference)), ("tiny-gemma3", directory_only(gemma2_reference)),
    ("tiny-mistral", mistral_reference), ("tiny-phi3", phi3_reference), ("tiny-phi4-mini", phi3_reference),
    ("tiny-llama-yarn", yarn_as_llama), ("tiny-smollm3", smollm3_reference), ("tiny-granite", granite_reference),
    ("tiny-llama-dynamic", transformers_model), ("tiny-olmo", transformers_model), ("tiny-olmo2", olmo_reference),
    ("tiny-olmo3", olmo_reference), ("tiny-stablelm", transformers_model),
    ("tiny-stablelm-parallel", transformers_model), ("tiny-cohere", transformers_model),
    ("tiny-cohere2", cohere2_reference), ("tiny-gpt-neox", transformers_model), ("tiny-mixtral", transformers_model),
    ("tiny-qwen3-moe", moe_reference), ("tiny-olmoe", moe_reference), ("tiny-qwen2-moe", transformers_model),
    ("tiny-cohere-qk-norm", transformers_model), ("tiny-stablelm-qk-norm", directory_only(stablelm_reference)),
    ("tiny-llama-bias", directory_only(llama_with_mlp_bias)), ("tiny-granitemoe", granitemoe_reference),
    ("tiny-granite4", granite4_reference), ("tiny-granite4-nope", granite4_reference),
    ("tiny-phi2", transformers_model), ("tiny-glm", directory_only(glm_reference)),
    ("tiny-glm4", directory_only(glm_reference)), ("tiny-exaone4", directory_only(exaone4_reference)),
    ("tiny-seed-oss", directory_only(seed_oss_reference)),
    ("tiny-glm4-moe", directory_only(deepseek_moe_reference)), ("tiny-dots1", directory_only(deepseek_moe_reference)),
    ("tiny-deepseek-v3", directory_only(deepseek_moe_reference)),
    ("tiny-deepseek-v2", directory_only(deepseek_moe_reference))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spin", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--input", required=True)
    args = p.parse_args()
    records = [json.loads(l) for l in open(args.input) if l.strip()]
    for name, reference in REFERENCES:
        model_dir = os.path.join(args.models, name)
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out.jsonl")
            r = subprocess.run([args.spin, "score", "--model", model_dir, "--input", args.input,
                                "--output", out], capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                sys.exit("FAIL: spin score: %s%s" % (r.stdout, r.stderr))
            got = [json.loads(l) for l in open(out)]
        # Converted references are written under `ref`, removed once the model is checked.
        with tempfile.TemporaryDirectory(prefix="spin_ref_") as ref:
            model = reference(model_dir, ref)
            print("%s: %s" % (name, getattr(model, "__name__", type(model).__name__)))
            worst = 0.0
            for i, (rec, g) in enumerate(zip(records, got)):
                if "tokens" in rec:
                    tokens, k = rec["tokens"], rec.get("mask_from", 1)
                else:
                    tokens, k = rec["prompt"] + rec["response"], len(rec["prompt"])
                ids = torch.tensor([tokens])
                with torch.no_grad():
                    logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
                want = logp[torch.arange(len(tokens) - 1), ids[0, 1:]].tolist()
                want_sum = sum(want[k - 1:])
                for a, b in zip(g["token_logprobs"] + [g["logprob_sum"]], want + [want_sum]):
                    worst = max(worst, abs(a - b))
                    if abs(a - b) > 2e-5 + 1e-5 * abs(b):
                        sys.exit("FAIL: %s line %d: spin %r, transformers %r" % (name, i + 1, a, b))
            print("%s: %d sequences agree with transformers (max |diff| %.3g)" % (name, len(records), worst))
    print("PASS")


if __name__ == "__main__":
    main()

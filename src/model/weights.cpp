#include "model/weights.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <span>

#include "core/error.h"
#include "core/philox.h"
#include "core/workspace.h"

namespace spin::model {

namespace {
// FNV-1a: a stable 64-bit stream id per tensor name.
std::uint64_t name_hash(const std::string& name) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001b3ull;
  return h;
}

bool is_norm_weight(const std::string& name) { return name.ends_with("norm.weight"); }

std::string layer_name(std::int64_t layer, const char* suffix) {
  std::string name = "model.layers.";  // appended, not cat(): a model has tens of thousands of names
  name += std::to_string(layer);
  name += '.';
  name += suffix;
  return name;
}

// "mlp.experts.7.": expert e's module prefix within a layer.
std::string expert_prefix(std::int64_t e) { return "mlp.experts." + std::to_string(e) + '.'; }

// A rank's chunks: inside the model, in model order, each one's `local` where the layers before it end.
void check_chunks(const ModelConfig& config, std::span<const StageLayers> chunks) {
  require(!chunks.empty(), "a pipeline stage without layers");
  std::int64_t end = 0, local = 0;
  for (const StageLayers& c : chunks) {
    require(c.begin >= end && c.begin < c.end && c.end <= config.num_layers && c.local == local, "stage layers [",
            c.begin, ", ", c.end, ") (local ", c.local, ") outside a model of ", config.num_layers,
            " layers or not after the rank's other chunks");
    end = c.end;
    local += c.count();
  }
}

}  // namespace

std::vector<std::pair<ShardedTensor, Shape>> parameter_specs(const ModelConfig& c, const TpDims& d,
                                                             std::span<const StageLayers> chunks) {
  require(!chunks.empty(), "a pipeline stage without layers");
  // In model order: only the first chunk may hold the embedding, only the last the head.
  const bool first = chunks.front().first, last = chunks.back().last;
  std::vector<std::pair<ShardedTensor, Shape>> specs;
  const auto replicated = [&](const std::string& name, Shape shape) {
    // Identical on every TP rank; TP rank 0's copy counts.
    specs.push_back({ShardedTensor{name, Tensor(), shape, -1, 0, 0, d.rank == 0}, shape});
  };
  const auto split = [&](const std::string& name, Shape global, int dim, std::int64_t local_len,
                         std::int64_t offset, std::int64_t length, bool primary = true) {
    Shape local = global;
    local[static_cast<std::size_t>(dim)] = local_len;
    specs.push_back({ShardedTensor{name, Tensor(), global, dim, offset, length, primary}, local});
  };
  const auto column = [&](const std::string& name, std::int64_t out_local, std::int64_t in) {
    split(name, {out_local * d.size, in}, 0, out_local, out_local * d.rank, out_local);
  };
  const auto column_vector = [&](const std::string& name, std::int64_t out_local) {  // split as its projection
    split(name, {out_local * d.size}, 0, out_local, out_local * d.rank, out_local);
  };
  const auto column_bias = [&](const std::string& name, std::int64_t out_local) {
    if (c.qkv_bias) column_vector(name, out_local);
  };
  const auto row = [&](const std::string& name, std::int64_t out, std::int64_t in_local) {
    split(name, {out, in_local * d.size}, 1, in_local, in_local * d.rank, in_local);
  };
  const std::int64_t h = d.hidden;
  const auto vocab_parallel = [&](const char* name, bool primary) {
    split(name, {c.vocab_size, h}, 0, d.vocab_rows, d.vocab_start, d.vocab_valid, primary);
  };
  if (first) vocab_parallel("model.embed_tokens.weight", true);
  const bool norm_weights = c.layer_norm_weights() > 0;  // OLMo's LayerNorms have none
  // A norm module's weight, and its bias where the norms have one (StableLM's LayerNorms).
  const auto norm = [&](const std::string& module) {
    replicated(module + ".weight", {h});
    if (c.norm_biases()) replicated(module + ".bias", {h});
  };
  for_each_layer(chunks, [&](std::int64_t l, std::int64_t) {
    if (c.pre_norms && norm_weights) norm(layer_name(l, "input_layernorm"));
    if (c.latent_attention()) {  // DeepSeek-V3's: the latent projections replicated, the heads' split
      if (c.q_lora_rank > 0) {
        replicated(layer_name(l, "self_attn.q_a_proj.weight"), {c.q_lora_rank, h});
        replicated(layer_name(l, "self_attn.q_a_layernorm.weight"), {c.q_lora_rank});
        column(layer_name(l, "self_attn.q_b_proj.weight"), d.q_width(), c.q_lora_rank);
      } else {
        column(layer_name(l, "self_attn.q_proj.weight"), d.q_width(), h);
      }
      replicated(layer_name(l, "self_attn.kv_a_proj_with_mqa.weight"), {c.kv_lora_rank + c.rotary_dim, h});
      replicated(layer_name(l, "self_attn.kv_a_layernorm.weight"), {c.kv_lora_rank});
      column(layer_name(l, "self_attn.kv_b_proj.weight"), d.heads * (c.qk_nope_head_dim + c.v_head_dim),
             c.kv_lora_rank);
    } else {
      column(layer_name(l, "self_attn.q_proj.weight"), d.q_width(), h);
      column_bias(layer_name(l, "self_attn.q_proj.bias"), d.q_width());
      column(layer_name(l, "self_attn.k_proj.weight"), d.kv_width(), h);
      column_bias(layer_name(l, "self_attn.k_proj.bias"), d.kv_width());
      column(layer_name(l, "self_attn.v_proj.weight"), d.kv_width(), h);
      column_bias(layer_name(l, "self_attn.v_proj.bias"), d.kv_width());
    }
    if (c.qk_norm) {
      replicated(layer_name(l, "self_attn.q_norm.weight"), {d.head_dim});
      replicated(layer_name(l, "self_attn.k_norm.weight"), {d.head_dim});
    } else if (c.qk_norm_all_heads) {
      column_vector(layer_name(l, "self_attn.q_norm.weight"), d.q_width());
      column_vector(layer_name(l, "self_attn.k_norm.weight"), d.kv_width());
    } else if (c.qk_head_layernorm) {  // [heads, head_dim], split with the heads
      split(layer_name(l, "self_attn.q_norm.weight"), {c.num_heads, d.head_dim}, 0, d.heads, d.heads * d.rank, d.heads);
      split(layer_name(l, "self_attn.k_norm.weight"), {c.num_kv_heads, d.head_dim}, 0, d.kv_heads, d.kv_heads * d.rank,
            d.kv_heads);
    }
    row(layer_name(l, "self_attn.o_proj.weight"), h, d.o_width());
    // A row-parallel projection's bias is added once, after the reduction: replicated.
    if (c.o_bias) replicated(layer_name(l, "self_attn.o_proj.bias"), {h});
    // Gemma 2's: the attention output's norm.
    if (norm_weights && c.mlp_input_norm()) norm(layer_name(l, "post_attention_layernorm"));
    if (c.sandwich_norms && c.pre_norms) replicated(layer_name(l, "pre_feedforward_layernorm.weight"), {h});
    if (c.moe_layer(l)) {  // the router (and GLM-4.5's correction bias), then each expert as a dense MLP
      replicated(layer_name(l, "mlp.gate.weight"), {c.num_experts, h});
      if (c.router_sigmoid) replicated(layer_name(l, "mlp.gate.e_score_correction_bias"), {c.num_experts});
      // This rank's experts alone, each split over its expert-parallel group's ranks (TpDims).
      const std::int64_t inter = d.intermediate, whole = inter * d.expert_tp, at = inter * d.expert_rank;
      for (std::int64_t e = d.first_expert; e < d.first_expert + d.experts; ++e) {
        const std::string expert = expert_prefix(e);
        split(layer_name(l, (expert + "gate_proj.weight").c_str()), {whole, h}, 0, inter, at, inter);
        split(layer_name(l, (expert + "up_proj.weight").c_str()), {whole, h}, 0, inter, at, inter);
        split(layer_name(l, (expert + "down_proj.weight").c_str()), {h, whole}, 1, inter, at, inter);
      }
      if (c.shared_expert()) {
        column(layer_name(l, "mlp.shared_expert.gate_proj.weight"), d.shared_intermediate, h);
        column(layer_name(l, "mlp.shared_expert.up_proj.weight"), d.shared_intermediate, h);
        row(layer_name(l, "mlp.shared_expert.down_proj.weight"), h, d.shared_intermediate);
        if (c.shared_expert_gated) replicated(layer_name(l, "mlp.shared_expert_gate.weight"), {1, h});
      }
    } else {
      const std::int64_t inter = d.dense_intermediate;
      if (c.gated_mlp) column(layer_name(l, "mlp.gate_proj.weight"), inter, h);
      if (c.gated_mlp && c.mlp_bias) column_vector(layer_name(l, "mlp.gate_proj.bias"), inter);
      column(layer_name(l, "mlp.up_proj.weight"), inter, h);
      if (c.mlp_bias) column_vector(layer_name(l, "mlp.up_proj.bias"), inter);
      row(layer_name(l, "mlp.down_proj.weight"), h, inter);
      if (c.mlp_bias) replicated(layer_name(l, "mlp.down_proj.bias"), {h});
    }
    if (c.sandwich_norms) replicated(layer_name(l, "post_feedforward_layernorm.weight"), {h});
  });
  if (last) {
    if (c.final_norm_weight()) norm("model.norm");
    if (!c.tie_word_embeddings) {
      vocab_parallel("lm_head.weight", true);
    } else if (!first) {
      vocab_parallel("model.embed_tokens.weight", false);  // the last stage's tied copy
    }
    // Phi's: split with the head's rows (its padding rows' entries zero, as theirs); its own
    // parameter whether the head's weight is tied or not.
    if (c.lm_head_bias) split("lm_head.bias", {c.vocab_size}, 0, d.vocab_rows, d.vocab_start, d.vocab_valid);
  }
  return specs;
}

namespace {

// The projections' Hugging Face names by LoraTarget (latent attention's q_b_proj: lora_module's).
constexpr const char* kProjections[kLoraTargets] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
    "mlp.up_proj",      "mlp.down_proj",    "self_attn.q_a_proj", "self_attn.kv_a_proj_with_mqa",
    "self_attn.kv_b_proj"};

// Where an adapter sits in a layer: the projection's own (kDenseProjection), or in a mixture of
// experts expert e's (e < num_experts) or the shared expert's (e = num_experts).
constexpr std::int64_t kDenseProjection = -1;

// Calls f(layer, i, where, target) for every adapter of a stage on this rank -- `layer` global, `i` its
// place in the rank's layers (model::for_each_layer) --, in the order of their
// parameters: per layer the attention's targets, then the MLP's -- in a mixture of experts every
// expert's this rank holds in turn (its targets in order), then the shared expert's.
template <class F>
void for_each_adapter(const ModelConfig& c, const LoraConfig& lora, const TpDims& d,
                      std::span<const StageLayers> chunks, F&& f) {
  for_each_layer(chunks, [&](std::int64_t l, std::int64_t i) {
    for (int ti = 0; ti < kLoraTargets; ++ti) {
      const auto t = static_cast<LoraTarget>(ti);
      if (lora.targets_(t) && !(c.moe_layer(l) && lora_mlp_target(t))) f(l, i, kDenseProjection, t);
    }
    if (!c.moe_layer(l)) return;
    const auto expert = [&](std::int64_t e) {
      for (const LoraTarget t : kLoraMlpTargets) {
        if (lora.targets_(t)) f(l, i, e, t);
      }
    };
    for (std::int64_t e = d.first_expert; e < d.first_expert + d.experts; ++e) expert(e);
    if (c.shared_expert()) expert(c.num_experts);
  });
}

// The adapters of one stage, as parameter_specs: per adapter (for_each_adapter) A then B, split as
// the projection (lora.h): a column-parallel one's B by rows, a row-parallel one's A by columns, the
// other factor whole on every rank (TP rank 0's copy primary); a replicated projection's both whole. An
// expert's adapters are named after its projections ("mlp.experts.3.gate_proj.lora_A.weight"), the
// shared expert's "mlp.shared_expert.gate_proj....", and take their widths and splits -- an expert's over
// its expert-parallel group's ranks alone (TpDims), the shared expert's over the whole TP group.
std::vector<std::pair<ShardedTensor, Shape>> adapter_specs(const ModelConfig& c, const LoraConfig& lora,
                                                           const TpDims& d, std::span<const StageLayers> chunks) {
  std::vector<std::pair<ShardedTensor, Shape>> specs;
  const std::int64_t r = lora.rank;
  for_each_adapter(c, lora, d, chunks, [&](std::int64_t l, std::int64_t, std::int64_t where, LoraTarget t) {
    auto [in, out] = lora_projection_extents(c, d, t);
    std::string module = lora_module(c, t);
    // The ranks the projection is split over, and this rank's place among them.
    const bool expert = where != kDenseProjection && where < c.num_experts;
    const std::int64_t ranks = expert ? d.expert_tp : d.size, rank = expert ? d.expert_rank : d.rank;
    if (where != kDenseProjection) {
      (t == LoraTarget::Down ? in : out) = expert ? d.intermediate : d.shared_intermediate;
      module = (expert ? expert_prefix(where) : std::string("mlp.shared_expert.")) +
               module.substr(std::string("mlp.").size());
    }
    const std::string base = layer_name(l, module.c_str());
    const std::string a = base + ".lora_A.weight", b = base + ".lora_B.weight";
    if (lora_replicated(t)) {
      specs.push_back({ShardedTensor{a, Tensor(), {r, in}, -1, 0, 0, rank == 0}, Shape{r, in}});
      specs.push_back({ShardedTensor{b, Tensor(), {out, r}, -1, 0, 0, rank == 0}, Shape{out, r}});
    } else if (lora_row_parallel(t)) {
      specs.push_back({ShardedTensor{a, Tensor(), {r, in * ranks}, 1, in * rank, in, true}, Shape{r, in}});
      specs.push_back({ShardedTensor{b, Tensor(), {out, r}, -1, 0, 0, rank == 0}, Shape{out, r}});
    } else {
      specs.push_back({ShardedTensor{a, Tensor(), {r, in}, -1, 0, 0, rank == 0}, Shape{r, in}});
      specs.push_back({ShardedTensor{b, Tensor(), {out * ranks, r}, 0, out * rank, out, true}, Shape{out, r}});
    }
  });
  return specs;
}

// Maps local flat indices of a shard to positions in the global tensor (row-major).
struct ShardIndexer {
  std::int64_t inner = 1;      // elements after the split dimension
  std::int64_t local_len = 1;  // local extent of the split dimension (padding included)
  std::int64_t global_len = 1;
  std::int64_t offset = 0;
  std::int64_t length = 1;

  explicit ShardIndexer(const ShardedTensor& p) {
    if (p.replicated()) {
      inner = p.local.numel();
      return;
    }
    const auto dim = static_cast<std::size_t>(p.split_dim);
    for (std::size_t k = dim + 1; k < p.global_shape.size(); ++k) inner *= p.global_shape[k];
    local_len = p.local.shape()[dim];
    global_len = p.global_shape[dim];
    offset = p.offset;
    length = p.length;
  }
  std::int64_t along(std::int64_t i) const { return (i / inner) % local_len; }
  bool is_padding(std::int64_t i) const { return along(i) >= length; }
  std::int64_t global(std::int64_t i) const {
    const std::int64_t outer = i / (local_len * inner);
    return (outer * global_len + offset + along(i)) * inner + i % inner;
  }
};
}  // namespace

bool is_layer_projection(const std::string& name) {
  return name.ends_with("_proj.weight") || name.ends_with("kv_a_proj_with_mqa.weight");
}

bool read_in_float32(const ShardedTensor& p) {
  // The products' matrices (LayerWeights::Bf16's and the LM head) are the rest.
  const std::string& n = p.name;
  return !(is_layer_projection(n) || n.ends_with("mlp.gate.weight") || n.ends_with("shared_expert_gate.weight") ||
           n == "lm_head.weight");
}

ModelWeights::ModelWeights(const ModelConfig& config, const TpDims& dims, std::span<const StageLayers> chunks,
                           std::int64_t pad_multiple, Device device, WeightStorage storage) {
  check_chunks(config, chunks);
  auto specs = parameter_specs(config, dims, chunks);
  std::vector<Shape> shapes;
  for (const auto& spec : specs) shapes.push_back(spec.second);
  frozen_ = storage == WeightStorage::FrozenBf16;
  std::vector<Tensor> locals;
  if (!frozen_) {
    locals = storage_.carve(device, shapes, pad_multiple);
    for (const Tensor& t : locals) layout_offsets_.push_back(offset_of(t));
  } else {
    // The layout in bf16 (the same offsets as a Float32 model's flat buffer), then the float32-read
    // tensors again, compactly, in float32.
    Workspace halves;
    locals = halves.carve(device, shapes, pad_multiple, DType::BF16);
    bf16_ = halves.buffer();
    std::vector<Shape> kept;
    for (const auto& spec : specs) {
      if (read_in_float32(spec.first)) kept.push_back(spec.second);
    }
    const std::vector<Tensor> kept_locals = storage_.carve(device, kept);
    std::size_t j = 0;
    for (std::size_t i = 0; i < specs.size(); ++i) {
      layout_offsets_.push_back(static_cast<const std::uint16_t*>(locals[i].raw()) - bf16_.bf16());
      if (read_in_float32(specs[i].first)) locals[i] = kept_locals[j++];
    }
  }

  std::map<std::string, Tensor> by_name;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    ShardedTensor& param = specs[i].first;
    param.local = locals[i];
    by_name[param.name] = param.local;
    params_.push_back(std::move(param));
  }
  const auto get_if = [&](const std::string& name) {
    const auto it = by_name.find(name);
    return it == by_name.end() ? Tensor() : it->second;
  };
  embed_tokens = chunks.front().first ? by_name.at("model.embed_tokens.weight") : Tensor();
  for_each_layer(chunks, [&](std::int64_t l, std::int64_t) {
    const auto get = [&](const char* suffix) { return by_name.at(layer_name(l, suffix)); };
    LayerWeights& w = layers.emplace_back();
    w.input_layernorm = get_if(layer_name(l, "input_layernorm.weight"));  // none in OLMo 2, OLMo
    // (Latent attention: q_b_proj, or q_proj where there is no q_a_proj; no k_proj or v_proj.)
    w.q_proj = config.q_lora_rank > 0 ? get("self_attn.q_b_proj.weight") : get("self_attn.q_proj.weight");
    w.k_proj = get_if(layer_name(l, "self_attn.k_proj.weight"));
    w.v_proj = get_if(layer_name(l, "self_attn.v_proj.weight"));
    w.q_a_proj = get_if(layer_name(l, "self_attn.q_a_proj.weight"));
    w.q_a_norm = get_if(layer_name(l, "self_attn.q_a_layernorm.weight"));
    w.kv_a_proj = get_if(layer_name(l, "self_attn.kv_a_proj_with_mqa.weight"));
    w.kv_a_norm = get_if(layer_name(l, "self_attn.kv_a_layernorm.weight"));
    w.kv_b_proj = get_if(layer_name(l, "self_attn.kv_b_proj.weight"));
    w.o_proj = get("self_attn.o_proj.weight");
    if (config.sandwich_norms) {
      w.attn_output_norm = get("post_attention_layernorm.weight");
      w.pre_mlp_layernorm = get_if(layer_name(l, "pre_feedforward_layernorm.weight"));  // none in OLMo 2
      w.mlp_output_norm = get("post_feedforward_layernorm.weight");
    } else {
      w.pre_mlp_layernorm = get_if(layer_name(l, "post_attention_layernorm.weight"));  // none in OLMo
      w.pre_mlp_layernorm_bias = get_if(layer_name(l, "post_attention_layernorm.bias"));  // StableLM's
    }
    w.input_layernorm_bias = get_if(layer_name(l, "input_layernorm.bias"));
    w.gate_proj = get_if(layer_name(l, "mlp.gate_proj.weight"));  // none in GPT-NeoX's plain MLP
    w.up_proj = get_if(layer_name(l, "mlp.up_proj.weight"));      // none in a mixture of experts
    w.down_proj = get_if(layer_name(l, "mlp.down_proj.weight"));
    w.router = get_if(layer_name(l, "mlp.gate.weight"));
    w.router_bias = get_if(layer_name(l, "mlp.gate.e_score_correction_bias"));
    // Indexed by expert; those of other expert-parallel groups undefined (TpDims::holds_expert).
    w.experts.resize(config.moe_layer(l) ? static_cast<std::size_t>(config.num_experts) : 0);
    const std::int64_t held = config.moe_layer(l) ? dims.experts : 0;
    for (std::int64_t e = dims.first_expert; e < dims.first_expert + held; ++e) {
      const std::string expert = expert_prefix(e);
      w.experts[static_cast<std::size_t>(e)] = {get((expert + "gate_proj.weight").c_str()),
                                                get((expert + "up_proj.weight").c_str()),
                                                get((expert + "down_proj.weight").c_str())};
    }
    w.shared_expert = {get_if(layer_name(l, "mlp.shared_expert.gate_proj.weight")),
                       get_if(layer_name(l, "mlp.shared_expert.up_proj.weight")),
                       get_if(layer_name(l, "mlp.shared_expert.down_proj.weight"))};
    w.shared_expert_gate = get_if(layer_name(l, "mlp.shared_expert_gate.weight"));
    w.o_bias = get_if(layer_name(l, "self_attn.o_proj.bias"));
    w.gate_bias = get_if(layer_name(l, "mlp.gate_proj.bias"));
    w.up_bias = get_if(layer_name(l, "mlp.up_proj.bias"));
    w.down_bias = get_if(layer_name(l, "mlp.down_proj.bias"));
    w.q_bias = get_if(layer_name(l, "self_attn.q_proj.bias"));
    w.k_bias = get_if(layer_name(l, "self_attn.k_proj.bias"));
    w.v_bias = get_if(layer_name(l, "self_attn.v_proj.bias"));
    w.q_norm = get_if(layer_name(l, "self_attn.q_norm.weight"));
    w.k_norm = get_if(layer_name(l, "self_attn.k_norm.weight"));
  });
  norm = get_if("model.norm.weight");
  norm_bias = get_if("model.norm.bias");
  if (chunks.back().last) {
    lm_head = by_name.at(config.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
    lm_head_bias = get_if("lm_head.bias");
  }
  if (frozen_) wire_bf16_views();
}

ModelWeights ModelWeights::adapters(const ModelConfig& config, const LoraConfig& lora, const TpDims& dims,
                                    std::span<const StageLayers> chunks, std::int64_t pad_multiple, Device device) {
  require(lora.enabled(), "LoRA adapters of rank ", lora.rank);
  for (int t = 0; t < kLoraTargets; ++t) {
    const auto target = static_cast<LoraTarget>(t);
    require(!lora.targets_(target) || lora_target_in_model(config, target), "LoRA targets ",
            lora_target_name(target), ", but the model has no such projection (", lora.targets_text(),
            "; lora_targets_of_model keeps a model's)");
  }
  check_chunks(config, chunks);
  ModelWeights w;
  w.lora_ = lora;
  auto specs = adapter_specs(config, lora, dims, chunks);
  std::vector<Shape> shapes;
  for (const auto& spec : specs) shapes.push_back(spec.second);
  const std::vector<Tensor> locals = w.storage_.carve(device, shapes, pad_multiple);
  for_each_layer(chunks, [&](std::int64_t l, std::int64_t) {
    LayerWeights& lw = w.layers.emplace_back();
    lw.lora_scale = lora.scale();
    if (config.moe_layer(l) && lora.targets_mlp()) {
      lw.experts.resize(static_cast<std::size_t>(config.num_experts));
    }
  });
  std::size_t i = 0;
  for_each_adapter(config, lora, dims, chunks, [&](std::int64_t, std::int64_t li, std::int64_t where, LoraTarget t) {
    LayerWeights& lw = w.layers[static_cast<std::size_t>(li)];
    const LoraFactors f{locals[i], locals[i + 1]};
    i += 2;
    if (where == kDenseProjection) {
      lw.lora[static_cast<std::size_t>(t)] = f;
    } else {
      (where == config.num_experts ? lw.shared_expert : lw.experts[static_cast<std::size_t>(where)])
          .lora[expert_lora(t)] = f;
    }
  });
  for (std::size_t j = 0; j < specs.size(); ++j) {
    specs[j].first.local = locals[j];
    w.params_.push_back(std::move(specs[j].first));
    w.layout_offsets_.push_back(w.offset_of(locals[j]));
  }
  return w;
}

std::vector<ShardedTensor> adapter_layout(const ModelConfig& config, const LoraConfig& lora, const TpDims& dims,
                                          std::span<const StageLayers> chunks) {
  std::vector<ShardedTensor> out;
  for (auto& spec : adapter_specs(config, lora, dims, chunks)) out.push_back(std::move(spec.first));
  return out;
}

void ModelWeights::merge_into(ModelWeights& base, const kernels::Kernels& k) const {
  require(is_adapters() && base.layers.size() == layers.size(), "merging adapters into weights of another shape");
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const LayerWeights& a = layers[l];
    const LayerWeights& w = base.layers[l];
    const Tensor* projections[kLoraTargets] = {&w.q_proj,    &w.k_proj,   &w.v_proj,    &w.o_proj,
                                               &w.gate_proj, &w.up_proj,  &w.down_proj, &w.q_a_proj,
                                               &w.kv_a_proj, &w.kv_b_proj};
    const auto merge = [&](const Tensor& p, const LoraFactors& f) {
      if (!f.a.defined()) return;
      if (p.dtype() != DType::BF16) {
        lora_merge(k, p, f, a.lora_scale, p.shape()[1], p.shape()[0]);
        return;
      }
      // FrozenBf16: the sum in float32, rounded once.
      const Tensor sum = Tensor::zeros(p.shape(), DType::F32, p.device());
      k.from_bf16(sum.f32(), p.bf16(), p.numel());
      lora_merge(k, sum, f, a.lora_scale, p.shape()[1], p.shape()[0]);
      k.to_bf16(p.bf16(), sum.f32(), p.numel());
    };
    for (int t = 0; t < kLoraTargets; ++t) merge(*projections[t], a.lora[static_cast<std::size_t>(t)]);
    // A mixture's experts' (the shared expert's too): each projection its own adapter.
    const auto merge_expert = [&](const LayerWeights::Expert& into, const LayerWeights::Expert& from) {
      const Tensor* matrices[] = {&into.gate_proj, &into.up_proj, &into.down_proj};
      for (const LoraTarget t : kLoraMlpTargets) merge(*matrices[expert_lora(t)], from.lora[expert_lora(t)]);
    };
    for (std::size_t e = 0; e < a.experts.size(); ++e) merge_expert(w.experts[e], a.experts[e]);
    merge_expert(w.shared_expert, a.shared_expert);
  }
  base.refresh_bf16(k);
}

std::vector<ShardedTensor> parameter_layout(const ModelConfig& config, const TpDims& dims,
                                            const StageLayers& stage) {
  std::vector<ShardedTensor> out;
  for (auto& spec : parameter_specs(config, dims, std::span(&stage, 1))) out.push_back(std::move(spec.first));
  return out;
}

std::vector<Shape> parameter_local_shapes(const ModelConfig& config, const TpDims& dims,
                                          std::span<const StageLayers> chunks) {
  std::vector<Shape> out;
  for (auto& spec : parameter_specs(config, dims, chunks)) out.push_back(std::move(spec.second));
  return out;
}

std::pair<std::int64_t, std::int64_t> ModelWeights::layer_span(std::int64_t layer) const {
  const LayerWeights& l = layers.at(static_cast<std::size_t>(layer));
  std::int64_t begin = flat().numel(), end = 0;
  const auto cover = [&](const Tensor& t) {
    if (!t.defined()) return;
    const std::int64_t at = offset_of(t);
    begin = std::min(begin, at);
    end = std::max(end, at + t.numel());
  };
  for (const Tensor* t :
       {&l.input_layernorm, &l.input_layernorm_bias, &l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.pre_mlp_layernorm,
        &l.pre_mlp_layernorm_bias, &l.gate_proj, &l.up_proj, &l.down_proj, &l.q_bias, &l.k_bias, &l.v_bias, &l.q_norm,
        &l.k_norm, &l.attn_output_norm, &l.mlp_output_norm, &l.o_bias, &l.gate_bias, &l.up_bias, &l.down_bias,
        &l.q_a_proj, &l.q_a_norm, &l.kv_a_proj, &l.kv_a_norm, &l.kv_b_proj}) {
    cover(*t);
  }
  for (const LoraFactors& f : l.lora) cover(f.a), cover(f.b);
  cover(l.router);
  cover(l.router_bias);
  const auto cover_expert = [&](const LayerWeights::Expert& e) {
    cover(e.gate_proj), cover(e.up_proj), cover(e.down_proj);
    for (const LoraFactors& f : e.lora) cover(f.a), cover(f.b);
  };
  for (const LayerWeights::Expert& e : l.experts) cover_expert(e);
  cover_expert(l.shared_expert);
  cover(l.shared_expert_gate);
  return {begin, end};
}

void ModelWeights::init_random(std::uint64_t seed, float std) {
  // Drawn on the host, one parameter at a time, then copied to the device at once.
  const Tensor host = Tensor::zeros({layout_numel()});
  for (std::size_t at = 0; at < params_.size(); ++at) {
    const ShardedTensor& p = params_[at];
    const std::span<float> values(host.f32() + layout_offsets_[at], static_cast<std::size_t>(p.local.numel()));
    if (is_norm_weight(p.name)) {
      std::fill(values.begin(), values.end(), 1.0f);
    } else if (p.name.ends_with("lora_B.weight")) {
      // zero: an adapted model starts as its base
    } else if (p.name.ends_with("lora_A.weight")) {
      // PEFT's kaiming_uniform_(a = sqrt(5)): uniform in +-1/sqrt(fan_in).
      const float bound = 1.0f / std::sqrt(static_cast<float>(p.global_shape[1]));
      const std::uint64_t stream = name_hash(p.name);
      const ShardIndexer index_of(p);
      for (std::int64_t i = 0; i < p.local.numel(); ++i) {
        const std::uint32_t bits = philox_bits(seed, stream, static_cast<std::uint64_t>(index_of.global(i)))[0];
        values[static_cast<std::size_t>(i)] = bound * (2.0f * uniform_open(bits) - 1.0f);
      }
    } else {
      const std::uint64_t stream = name_hash(p.name);  // the same tensor on every stage and rank
      const ShardIndexer index_of(p);
      for (std::int64_t i = 0; i < p.local.numel(); ++i) {
        if (index_of.is_padding(i)) continue;  // padding rows stay zero
        values[static_cast<std::size_t>(i)] =
            std * philox_normal(seed, stream, static_cast<std::uint64_t>(index_of.global(i)));
      }
    }
  }
  assign_values(host);
}

HfLayout hf_layout(const ModelConfig& c) {
  HfLayout layout{c.hf_weight_prefix, c.multimodal, {}, {}, {}, {}, c.fp8_block};
  // The MLP's gate and up projections as the two row blocks of file tensor `fused` (Phi-3's, GLM's and
  // Granite 4.0's).
  const auto gate_up = [&](const char* fused) {
    return HfLayout::Fusion{
        fused, {{"mlp.gate_proj.weight", c.dense_mlp_width()}, {"mlp.up_proj.weight", c.dense_mlp_width()}}};
  };
  if (c.hf_names == ModelConfig::HfNames::StableLm) {  // StableLmLayerNormPerHead: a LayerNorm module a head
    layout.row_splits = {{"self_attn.q_norm.weight", "self_attn.q_layernorm.norms.", ".weight"},
                         {"self_attn.k_norm.weight", "self_attn.k_layernorm.norms.", ".weight"}};
    return layout;
  }
  if (c.hf_names == ModelConfig::HfNames::Mixtral) {  // MixtralForCausalLM's: block_sparse_moe, w1 / w3 / w2
    layout.renames = {{"mlp.gate.", "block_sparse_moe.gate."},
                      {"mlp.experts.", "block_sparse_moe.experts."},
                      {"gate_proj.", "w1."},
                      {"up_proj.", "w3."},
                      {"down_proj.", "w2."}};
    return layout;
  }
  if (c.hf_names == ModelConfig::HfNames::GraniteMoe) {  // GraniteMoeParallelExperts: every expert in one tensor
    HfLayout::Fusion in{"block_sparse_moe.input_linear.weight", {}, 1, c.num_experts};
    HfLayout::Fusion out{"block_sparse_moe.output_linear.weight", {}, 1, c.num_experts};
    for (std::int64_t e = 0; e < c.num_experts; ++e) {
      const std::string expert = expert_prefix(e);
      in.parts.push_back({expert + "gate_proj.weight", c.intermediate_size});
      in.parts.push_back({expert + "up_proj.weight", c.intermediate_size});
      out.parts.push_back({expert + "down_proj.weight", c.hidden_size});
    }
    layout.fusions = {in, out};
    layout.renames = {{"mlp.gate.", "block_sparse_moe.router.layer."}};
    return layout;
  }
  if (c.hf_names == ModelConfig::HfNames::DeepseekV3) {  // DeepseekV3MoE's shared_experts
    layout.renames = {{"mlp.shared_expert.", "mlp.shared_experts."}};
    layout.float32 = {"mlp.gate.e_score_correction_bias"};
    return layout;
  }
  if (c.hf_names == ModelConfig::HfNames::GraniteHybrid) {  // GraniteMoeHybridMLP: shared_mlp, gate and up fused
    layout.fusions = {gate_up("shared_mlp.input_linear.weight")};
    layout.renames = {{"mlp.down_proj.", "shared_mlp.output_linear."}};
    return layout;
  }
  if (c.hf_names == ModelConfig::HfNames::Phi) {  // PhiForCausalLM's names
    layout.renames = {{"self_attn.o_proj.", "self_attn.dense."},
                      {"mlp.up_proj.", "mlp.fc1."},
                      {"mlp.down_proj.", "mlp.fc2."},
                      {"model.norm.", "model.final_layernorm."}};
    return layout;
  }
  if (c.hf_names == ModelConfig::HfNames::GptNeox) {  // GPTNeoXForCausalLM's names; q, k and v fused per head
    const auto qkv = [&](const char* what) {
      const std::string w(what);
      return HfLayout::Fusion{"attention.query_key_value." + w,
                              {{"self_attn.q_proj." + w, c.head_dim},
                               {"self_attn.k_proj." + w, c.head_dim},
                               {"self_attn.v_proj." + w, c.head_dim}},
                              c.num_heads};
    };
    layout.fusions = {qkv("weight"), qkv("bias")};
    layout.renames = {{"model.embed_tokens.", "gpt_neox.embed_in."}, {"model.layers.", "gpt_neox.layers."},
                      {"model.norm.", "gpt_neox.final_layer_norm."}, {"lm_head.", "embed_out."},
                      {"self_attn.o_proj.", "attention.dense."},     {"mlp.up_proj.", "mlp.dense_h_to_4h."},
                      {"mlp.down_proj.", "mlp.dense_4h_to_h."}};
    return layout;
  }
  if (c.hf_names == ModelConfig::HfNames::Glm || c.hf_names == ModelConfig::HfNames::Glm4) {  // GlmMLP's gate_up_proj
    layout.fusions = {gate_up("mlp.gate_up_proj.weight")};
    if (c.hf_names == ModelConfig::HfNames::Glm4) {  // Glm4DecoderLayer's norms, in this order (each renames once)
      layout.renames = {{"post_attention_layernorm.", "post_self_attn_layernorm."},
                        {"pre_feedforward_layernorm.", "post_attention_layernorm."},
                        {"post_feedforward_layernorm.", "post_mlp_layernorm."}};
    }
    return layout;
  }
  if (c.fused_projections) {
    const std::int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
    layout.fusions = {
        {"self_attn.qkv_proj.weight",
         {{"self_attn.q_proj.weight", q}, {"self_attn.k_proj.weight", kv}, {"self_attn.v_proj.weight", kv}}},
        gate_up("mlp.gate_up_proj.weight")};
  }
  return layout;
}

std::string lora_module(const ModelConfig& c, LoraTarget t) {
  if (t == LoraTarget::Q && c.latent_attention() && c.q_lora_rank > 0) return "self_attn.q_b_proj";
  return kProjections[static_cast<int>(t)];
}

std::string peft_module(const ModelConfig& c, LoraTarget t) {
  const HfLayout layout = hf_layout(c);
  const std::string part = lora_module(c, t) + ".weight";
  for (const HfLayout::Fusion& f : layout.fusions) {
    for (const auto& [name, rows] : f.parts) {
      if (name == part) return f.fused.substr(0, f.fused.size() - std::string(".weight").size());
    }
  }
  const std::string module = layout.renamed(lora_module(c, t) + ".");  // Phi's dense, fc1, fc2
  return module.substr(0, module.size() - 1);
}

std::vector<LoraModule> lora_modules(const ModelConfig& c, LoraTarget t, std::int64_t layer) {
  if (!(c.moe_layer(layer) && lora_mlp_target(t))) return {{lora_module(c, t), peft_module(c, t)}};
  std::vector<LoraModule> out;
  const std::string projection = lora_module(c, t).substr(std::string("mlp.").size()) + ".";
  const HfLayout layout = hf_layout(c);
  const auto add = [&](const std::string& expert) {
    const std::string spin = expert + projection, peft = layout.renamed(spin);
    out.push_back({spin.substr(0, spin.size() - 1), peft.substr(0, peft.size() - 1)});
  };
  for (std::int64_t e = 0; e < c.num_experts; ++e) add(expert_prefix(e));
  if (c.shared_expert()) add("mlp.shared_expert.");
  return out;
}

HfLayout peft_layout(const ModelConfig& c, const LoraConfig& lora) {
  HfLayout layout;
  layout.prefix = "base_model.model." + c.hf_weight_prefix;
  layout.renames = hf_layout(c).renames;  // Phi's and GPT-NeoX's module names
  // B: the fused B's row blocks, as the weights' (GPT-NeoX's in every head); A: the fused A whole
  // for each part. (A fused bias has no adapter.)
  for (const HfLayout::Fusion& f : hf_layout(c).fusions) {
    if (!f.fused.ends_with(".weight")) continue;
    const std::string module = f.fused.substr(0, f.fused.size() - std::string("weight").size());
    HfLayout::Fusion b{module + "lora_B.weight", {}, f.groups};
    for (const auto& [part, rows] : f.parts) {
      const std::string part_module = part.substr(0, part.size() - std::string("weight").size());
      b.parts.push_back({part_module + "lora_B.weight", rows});
      layout.fusions.push_back({module + "lora_A.weight", {{part_module + "lora_A.weight", lora.rank}}});
    }
    layout.fusions.push_back(b);
  }
  return layout;
}

}  // namespace spin::model

#include "model/weights.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "core/philox.h"

namespace spin::model {

namespace {
std::string layer_name(std::int64_t layer, const char* suffix) {
  return cat("model.layers.", layer, ".", suffix);
}

// The parameters as (name, local shape, global shape, split dim, offset, length), in order.
std::vector<std::pair<ShardedTensor, Shape>> parameter_specs(const ModelConfig& c,
                                                             const TpDims& d) {
  std::vector<std::pair<ShardedTensor, Shape>> specs;
  const auto replicated = [&](const std::string& name, Shape shape) {
    specs.push_back({ShardedTensor{name, Tensor(), shape, -1, 0, 0}, shape});
  };
  const auto split = [&](const std::string& name, Shape global, int dim, std::int64_t local_len,
                         std::int64_t offset, std::int64_t length) {
    Shape local = global;
    local[static_cast<std::size_t>(dim)] = local_len;
    specs.push_back({ShardedTensor{name, Tensor(), global, dim, offset, length}, local});
  };
  const auto column = [&](const std::string& name, std::int64_t out_local, std::int64_t in) {
    split(name, {out_local * d.size, in}, 0, out_local, out_local * d.rank, out_local);
  };
  const auto row = [&](const std::string& name, std::int64_t out, std::int64_t in_local) {
    split(name, {out, in_local * d.size}, 1, in_local, in_local * d.rank, in_local);
  };
  const std::int64_t h = d.hidden;
  split("model.embed_tokens.weight", {c.vocab_size, h}, 0, d.vocab_rows, d.vocab_start,
        d.vocab_valid);
  for (std::int64_t l = 0; l < c.num_layers; ++l) {
    replicated(layer_name(l, "input_layernorm.weight"), {h});
    column(layer_name(l, "self_attn.q_proj.weight"), d.q_width(), h);
    column(layer_name(l, "self_attn.k_proj.weight"), d.kv_width(), h);
    column(layer_name(l, "self_attn.v_proj.weight"), d.kv_width(), h);
    row(layer_name(l, "self_attn.o_proj.weight"), h, d.q_width());
    replicated(layer_name(l, "post_attention_layernorm.weight"), {h});
    column(layer_name(l, "mlp.gate_proj.weight"), d.intermediate, h);
    column(layer_name(l, "mlp.up_proj.weight"), d.intermediate, h);
    row(layer_name(l, "mlp.down_proj.weight"), h, d.intermediate);
  }
  replicated("model.norm.weight", {h});
  if (!c.tie_word_embeddings) {
    split("lm_head.weight", {c.vocab_size, h}, 0, d.vocab_rows, d.vocab_start, d.vocab_valid);
  }
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

ModelWeights::ModelWeights(const ModelConfig& config, const TpDims& dims) {
  auto specs = parameter_specs(config, dims);
  std::vector<Shape> shapes;
  for (const auto& spec : specs) shapes.push_back(spec.second);
  const std::vector<Tensor> locals = storage_.carve(shapes);

  std::map<std::string, Tensor> by_name;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    ShardedTensor& param = specs[i].first;
    param.local = locals[i];
    by_name[param.name] = param.local;
    params_.push_back(std::move(param));
  }
  embed_tokens = by_name.at("model.embed_tokens.weight");
  for (std::int64_t l = 0; l < config.num_layers; ++l) {
    const auto get = [&](const char* suffix) { return by_name.at(layer_name(l, suffix)); };
    layers.push_back(LayerWeights{
        get("input_layernorm.weight"), get("self_attn.q_proj.weight"),
        get("self_attn.k_proj.weight"), get("self_attn.v_proj.weight"),
        get("self_attn.o_proj.weight"), get("post_attention_layernorm.weight"),
        get("mlp.gate_proj.weight"), get("mlp.up_proj.weight"), get("mlp.down_proj.weight")});
  }
  norm = by_name.at("model.norm.weight");
  lm_head = config.tie_word_embeddings ? embed_tokens : by_name.at("lm_head.weight");
}

void ModelWeights::init_random(std::uint64_t seed, float std) {
  zero();
  for (std::size_t index = 0; index < params_.size(); ++index) {
    const ShardedTensor& p = params_[index];
    float* data = p.local.f32();
    if (p.global_shape.size() == 1) {  // norm weights
      std::fill(data, data + p.local.numel(), 1.0f);
      continue;
    }
    const ShardIndexer index_of(p);
    for (std::int64_t i = 0; i < p.local.numel(); ++i) {
      if (index_of.is_padding(i)) continue;  // padding rows stay zero
      data[i] = std * philox_normal(seed, index, static_cast<std::uint64_t>(index_of.global(i)));
    }
  }
}

}  // namespace spin::model

#include "app/model_setup.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include "checkpoint/hf_reader.h"
#include "checkpoint/sharded_checkpoint.h"
#include "core/error.h"
#include "core/json_file.h"
#include "kernels/cpu/cpu_kernels.h"
#include "model/flops.h"
#include "model/stage.h"
#include "train/checkpointing.h"

namespace spin::app {

model::LoraConfig lora_settings(std::int64_t rank, double alpha, bool rslora, double dropout,
                                const std::string& targets, const std::string& prefix,
                                const model::ModelConfig& model) {
  model::LoraConfig lora;
  lora.rank = rank;
  lora.alpha = alpha;
  lora.rslora = rslora;
  lora.dropout = dropout;
  const std::string setting = prefix + "targets";
  // A LoRA update of a rank above the hidden size adds parameters, not expressiveness (a rank of 2^63 - 1 was a
  // "negative dimension" at the first allocation).
  require(rank <= model.hidden_size, prefix, "rank = ", rank, " is above the model's hidden size ", model.hidden_size,
          ": an update B A of a larger rank is no more expressive, only larger");
  lora.targets = model::parse_lora_targets(targets, setting.c_str());
  if (rank > 0) lora.targets = model::lora_targets_of_model(model, lora.targets, targets, setting.c_str());
  lora.validate(prefix.c_str());
  return lora;
}

void require_same_lora(const std::string& saved, const model::LoraConfig& ours, const std::string& checkpoint) {
  const std::string mine = ours.summary();
  require(saved == mine, checkpoint, " was saved by a run ", saved.empty() ? "without LoRA" : "with LoRA " + saved,
          "; this run is ", mine.empty() ? "without LoRA" : "with LoRA " + mine, ": its trained parameters differ");
}

std::string lora_config_json(const model::LoraConfig& lora) {
  nlohmann::json targets = nlohmann::json::array();
  for (int t = 0; t < model::kLoraTargets; ++t) {
    if (lora.targets_(static_cast<model::LoraTarget>(t))) targets.push_back(model::lora_target_name(static_cast<model::LoraTarget>(t)));
  }
  return nlohmann::json{{"rank", lora.rank},
                        {"alpha", lora.alpha},
                        {"rslora", lora.rslora},
                        {"dropout", lora.dropout},
                        {"targets", targets}}
      .dump();
}

namespace {

// Merges a PEFT adapter's pairs of a mixture's gates (PeftAdapter::gates): the router [experts,
// hidden] and the shared expert's gate [1, hidden], replicated over TP, each W += s B A on every
// rank with the rank and alpha PEFT gives its module.
void merge_gate_adapters(const std::string& adapter_dir, const PeftAdapter& adapter, const model::ModelConfig& config,
                         std::span<const model::StageLayers> chunks, model::ModelWeights& weights,
                         const kernels::Kernels& kernels) {
  if (adapter.gates.empty()) return;
  const std::string path = (std::filesystem::path(adapter_dir) / "adapter_config.json").string();
  require(config.moe(), path, ": target_modules names ", adapter.gates.front(),
          ", a mixture of experts' gate, but the model has none");
  const std::int64_t h = config.hidden_size;
  const HfLayout files = model::hf_layout(config);
  for (const std::string& gate : adapter.gates) {
    require(gate == "gate" || config.shared_expert(), path, ": target_modules names ", gate,
            ", but the model's mixture has no shared expert");
    const std::string spin = gate == "gate" ? "mlp.gate" : "mlp.shared_expert_gate";
    const std::int64_t out = gate == "gate" ? config.num_experts : 1;
    model::for_each_layer(chunks, [&](std::int64_t l, std::int64_t local) {
      const std::string module = "model.layers." + std::to_string(l) + "." + spin;
      const auto [rank, alpha] = adapter.module_rank_alpha(files.renamed(config.hf_weight_prefix + module));
      model::LoraConfig lora = adapter.lora;
      lora.rank = rank;
      lora.alpha = alpha;
      const model::LoraFactors f{Tensor::zeros({rank, h}, DType::F32, weights.device()),
                                 Tensor::zeros({out, rank}, DType::F32, weights.device())};
      std::vector<ShardedTensor> pair = {{module + ".lora_A.weight", f.a, {rank, h}, -1, 0, 0, true},
                                         {module + ".lora_B.weight", f.b, {out, rank}, -1, 0, 0, true}};
      ckpt::HfReader(adapter_dir, model::peft_layout(config, lora), "adapter_model").load(pair);
      const model::LayerWeights& w = weights.layers[static_cast<std::size_t>(local)];
      model::lora_merge(kernels, gate == "gate" ? w.router : w.shared_expert_gate, f, lora.scale(), h, out);
    });
  }
  weights.refresh_bf16(kernels);
}

// Merges a PEFT adapter: the adapted modules grouped by the (rank, alpha) PeftAdapter gives them --
// one group without rank_pattern / alpha_pattern --, each group's adapters read and merged as an
// adapter of their own (another group's modules, left unread, have B = 0 there and add nothing).
void merge_adapter(const std::string& adapter_dir, const PeftAdapter& adapter, const model::ModelConfig& config,
                   const model::TpDims& dims, std::span<const model::StageLayers> chunks, model::ModelWeights& weights,
                   const kernels::Kernels& kernels) {
  std::map<std::pair<std::int64_t, double>, std::vector<std::string>> groups;  // -> spin's module names
  const HfLayout files = model::hf_layout(config);
  // PEFT adapts the modules of target_modules that the model has ("all-linear": every projection).
  const auto targets = model::lora_targets_of_model(config, adapter.lora.targets, "all-linear", "target_modules");
  model::for_each_layer(chunks, [&](std::int64_t l, std::int64_t) {
    const std::string layer = "model.layers." + std::to_string(l) + ".";
    for (int t = 0; t < model::kLoraTargets; ++t) {
      const auto target = static_cast<model::LoraTarget>(t);
      if (!targets[static_cast<std::size_t>(t)]) continue;
      for (const model::LoraModule& m : model::lora_modules(config, target, l)) {
        const std::string module = files.renamed(config.hf_weight_prefix + layer + m.peft);
        groups[adapter.module_rank_alpha(module)].push_back(layer + m.spin + ".");
      }
    }
  });
  for (const auto& [rank_alpha, modules] : groups) {
    model::LoraConfig lora = adapter.lora;
    lora.targets = targets;
    std::tie(lora.rank, lora.alpha) = rank_alpha;
    const model::ModelWeights adapters = model::ModelWeights::adapters(config, lora, dims, chunks, 1, weights.device());
    std::vector<ShardedTensor> mine;
    for (const ShardedTensor& s : adapters.sharded_state_dict()) {
      const auto in_group = [&](const std::string& m) { return s.name.starts_with(m); };
      if (std::any_of(modules.begin(), modules.end(), in_group)) mine.push_back(s);
    }
    ckpt::HfReader(adapter_dir, model::peft_layout(config, lora), "adapter_model").load(mine);
    adapters.merge_into(weights, kernels);
  }
  merge_gate_adapters(adapter_dir, adapter, config, chunks, weights, kernels);
}

}  // namespace

void load_hf_weights(const std::string& model_dir, const std::string& adapter_dir, const model::ModelConfig& config,
                     const model::TpDims& dims, std::span<const model::StageLayers> chunks,
                     model::ModelWeights& weights, const kernels::Kernels& kernels) {
  const PeftAdapter adapter = adapter_dir.empty() ? PeftAdapter{} : peft_adapter(adapter_dir);
  ckpt::HfReader(model_dir, model::hf_layout(config)).load(weights.sharded_state_dict());
  if (adapter.lora.enabled()) merge_adapter(adapter_dir, adapter, config, dims, chunks, weights, kernels);
}

PeftAdapter peft_adapter(const std::string& adapter_dir) {
  const std::string path = (std::filesystem::path(adapter_dir) / "adapter_config.json").string();
  const auto j = read_json_file<nlohmann::ordered_json>(path);  // the patterns' order is PEFT's order of matching
  require(j.is_object(), path, ": not a JSON object");
  const auto absent_or = [&](const char* key, const auto& allowed, const char* why) {
    if (!j.contains(key) || j.at(key).is_null() || allowed(j.at(key))) return;
    fail(path, ": ", key, " = ", j.at(key).dump(), ": ", why);
  };
  const auto empty = [](const nlohmann::ordered_json& v) { return (v.is_array() || v.is_object()) && v.empty(); };
  const auto is_false = [](const nlohmann::ordered_json& v) { return v.is_boolean() && !v.get<bool>(); };
  require(j.contains("peft_type") && j.at("peft_type").is_string() && j.at("peft_type") == "LORA", path,
          ": peft_type ", j.contains("peft_type") ? j.at("peft_type").dump() : "missing", ": spin takes LoRA adapters");
  require(j.contains("r") && j.at("r").is_number_integer() && j.at("r").get<std::int64_t>() > 0, path,
          ": r must be a positive integer");
  require(j.contains("lora_alpha") && j.at("lora_alpha").is_number(), path, ": lora_alpha must be a number");
  const auto boolean = [](const nlohmann::ordered_json& v) { return v.is_boolean(); };
  absent_or("use_rslora", boolean, "must be true or false");
  absent_or("use_dora", is_false, "DoRA's magnitude vectors are not LoRA's merge");
  absent_or("fan_in_fan_out", is_false, "the Conv1D orientation of GPT-2's layers, not of the models spin runs");
  const auto none = [](const nlohmann::ordered_json& v) { return v == "none"; };
  absent_or("bias", none, "adapted biases are not supported");
  absent_or("modules_to_save", empty, "fully trained modules beside the adapters are not supported");
  absent_or("layers_to_transform", empty, "adapters of some layers only are not supported");
  absent_or("layer_replication", empty, "replicated layers are not supported");
  const nlohmann::ordered_json& targets =
      j.contains("target_modules") ? j.at("target_modules") : nlohmann::ordered_json();
  std::string names;
  PeftAdapter adapter;
  if (targets.is_array()) {
    for (const auto& t : targets) {
      require(t.is_string(), path, ": target_modules holds ", t.dump(), ", not a module name");
      const std::string name = t.get<std::string>();
      if (name == "gate" || name == "shared_expert_gate") {
        adapter.gates.push_back(name);
      } else {
        names += (names.empty() ? "" : ",") + name;
      }
    }
  } else {
    require(targets == "all-linear", path, ": target_modules = ", targets.dump(),
            ": spin takes a list of module names or \"all-linear\" (a string is a regular expression to PEFT)");
    names = "all-linear";
  }
  model::LoraConfig& lora = adapter.lora;
  lora.rank = j.at("r").get<std::int64_t>();
  lora.alpha = j.at("lora_alpha").get<double>();
  lora.rslora = j.value("use_rslora", nlohmann::ordered_json(false)) == true;
  lora.targets = model::parse_lora_targets(names, (path + ": target_modules").c_str());
  lora.validate((path + ": ").c_str());
  // rank_pattern / alpha_pattern: {key: rank} / {key: alpha}, each key a regular expression.
  const auto pattern = [&](const char* field, const auto& read) {
    if (!j.contains(field) || j.at(field).is_null()) return;
    require(j.at(field).is_object(), path, ": ", field, " = ", j.at(field).dump(), ": must be an object");
    for (const auto& [key, value] : j.at(field).items()) {
      try {
        (void)std::regex(".*\\." + key + "$");
      } catch (const std::regex_error&) {
        fail(path, ": ", field, " key \"", key, "\" is not a regular expression spin reads as Python's re does");
      }
      read(key, value);
    }
  };
  pattern("rank_pattern", [&](const std::string& key, const nlohmann::ordered_json& v) {
    require(v.is_number_integer() && v.get<std::int64_t>() > 0, path, ": rank_pattern[\"", key, "\"] = ", v.dump(),
            ": must be a positive integer");
    adapter.rank_pattern.emplace_back(key, v.get<std::int64_t>());
  });
  pattern("alpha_pattern", [&](const std::string& key, const nlohmann::ordered_json& v) {
    require(v.is_number() && v.get<double>() > 0, path, ": alpha_pattern[\"", key, "\"] = ", v.dump(),
            ": must be a positive number");
    adapter.alpha_pattern.emplace_back(key, v.get<double>());
  });
  return adapter;
}

model::LoraConfig lora_from_peft_config(const std::string& adapter_dir) { return peft_adapter(adapter_dir).lora; }

std::pair<std::int64_t, double> PeftAdapter::module_rank_alpha(const std::string& module) const {
  const auto matches = [&](const std::string& key) {
    return std::regex_search(module, std::regex(".*\\." + key + "$"), std::regex_constants::match_continuous);
  };
  std::optional<std::string> first;
  for (const auto& [key, rank] : rank_pattern) {
    if (!first && matches(key)) first = key;
  }
  for (const auto& [key, alpha] : alpha_pattern) {
    if (!first && matches(key)) first = key;
  }
  std::pair<std::int64_t, double> out{lora.rank, lora.alpha};
  if (!first) return out;
  for (const auto& [key, rank] : rank_pattern) {
    if (key == *first) out.first = rank;
  }
  for (const auto& [key, alpha] : alpha_pattern) {
    if (key == *first) out.second = alpha;
  }
  return out;
}

DType parse_save_dtype(const std::string& name, const char* option) {
  if (name == "f32") return DType::F32;
  if (name == "bf16") return DType::BF16;
  if (name == "f16") return DType::F16;
  fail(option, " \"", name, "\" is not f32, bf16 or f16");
}

std::vector<ckpt::HfTensor> hf_tensors(const model::ModelConfig& config, const ckpt::HfFormat& format) {
  std::vector<ckpt::HfTensor> tensors;
  for (const ShardedTensor& s :
       model::parameter_layout(config, model::tp_dims(config, 0, 1), model::StageLayers::whole(config.num_layers))) {
    tensors.push_back({s.name, s.global_shape, false, format.fp8_for(s.name)});
  }
  return tensors;
}

ckpt::HfFormat hf_format(const std::string& dtype, const char* option, const model::ModelConfig& config,
                         std::uint64_t max_shard_bytes, const std::array<std::int64_t, 2>& fp8_block) {
  ckpt::HfFormat format;
  format.max_shard_bytes = max_shard_bytes;
  if (dtype != "fp8") {
    format.dtype = parse_save_dtype(dtype, option);
    return format;
  }
  format.dtype = DType::BF16;  // what is not FP8
  format.fp8_block = fp8_block;
  format.fp8 = model::is_layer_projection;
  const HfLayout files = model::hf_layout(config);
  require(!files.multimodal, option, " fp8: a multimodal model is written back whole, in f32, bf16 or f16");
  // The matrices as the files hold them (names and shapes: fused, renamed; nothing read).
  for (const ckpt::HfTensor& t : ckpt::fuse_tensors(files, hf_tensors(config, format), nullptr).tensors) {
    require(!t.fp8 || t.shape.size() == 2, option, " fp8: the model's files hold \"", t.name, "\" as a ",
            shape_text(t.shape),
            " tensor (a layer's experts in one), which block-scaled FP8 does not hold: save in bf16");
  }
  return format;
}

std::string hf_config_json(const model::ModelConfig& config, const ckpt::HfFormat& format) {
  nlohmann::json j = nlohmann::json::parse(config.json_text);
  // The dtype the weights are written in (FP8's other tensors: bf16), under the key the file uses --
  // transformers 4.56 and later write "dtype" -- as save_pretrained records it, so that loading with
  // torch_dtype="auto" gets it; the text kept as it was where that changes nothing.
  const char* written = format.dtype == DType::BF16 ? "bfloat16" : format.dtype == DType::F16 ? "float16" : "float32";
  const char* key = j.contains("dtype") && !j.contains("torch_dtype") ? "dtype" : "torch_dtype";
  const bool said = j.contains(key) && j[key].is_string();
  const bool fp8 = format.fp8_block[0] > 0;
  if (!fp8 && (said ? j[key] == written : format.dtype == DType::F32)) return config.json_text;
  j[key] = written;
  if (fp8) {
    j["quantization_config"] = {{"activation_scheme", "dynamic"},
                                {"fmt", "e4m3"},
                                {"quant_method", "fp8"},
                                {"weight_block_size", format.fp8_block}};
  }
  return j.dump(2) + "\n";
}

std::vector<std::int64_t> parse_int_list(const std::string& text, const char* option) {
  std::vector<std::int64_t> out;
  if (text.empty()) return out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    std::size_t used = 0;
    try {
      out.push_back(std::stoll(item, &used));
    } catch (const std::exception&) {
      used = 0;
    }
    require(used != 0 && used == item.size(), option, " \"", text,
            "\" is not a comma-separated list of integers");
  }
  return out;
}

void set_router_bias_update_rate(model::ModelConfig& model, double rate, std::int64_t lora_rank,
                                 const std::string& option, const std::string& model_path) {
  if (rate == 0.0) return;
  require(rate > 0.0, option, " must be >= 0, got ", rate);
  require(model.router_sigmoid, option, " = ", rate, ": ", model_path,
          " has no router correction bias (a sigmoid router's: GLM-4.5, dots.llm1)");
  require(lora_rank == 0, option, " = ", rate, " with LoRA (rank ", lora_rank,
          "): the correction biases sit in the frozen model the reference shares; 0, or full fine-tuning");
  model.router_bias_update_rate = static_cast<float>(rate);
}

void check_every_tensor_read(const std::string& model_dir, const model::ModelConfig& config) {
  const HfLayout layout = model::hf_layout(config);
  std::set<std::string> read;
  const model::StageLayers whole = model::StageLayers::whole(config.num_layers);
  for (const ShardedTensor& t : model::parameter_layout(config, model::tp_dims(config, 0, 1), whole)) {
    if (layout.row_name(t.name, 0).empty()) {
      read.insert(layout.place(t.name).name);
    } else {
      for (std::int64_t row = 0; row < t.global_shape[0]; ++row) read.insert(layout.row_name(t.name, row));
    }
  }
  // Not parameters: the rotary tables and causal masks older transformers saved as buffers
  // (Llama 2's inv_freq, GPT-NeoX's attention.bias / masked_bias), a tied head's copy of the
  // embeddings (transformers ignores it too) and, in a multimodal checkpoint, all but its language
  // model (under the prefix: model.* and lm_head.*). Nor part of the causal LM: GLM-4.5's
  // multi-token-prediction layers after the decoder's (ModelConfig::mtp_layers), as transformers
  // leaves them unread.
  const auto mtp_layer = [&](const std::string& name) {
    for (std::int64_t i = 0; i < config.mtp_layers; ++i) {
      if (name.starts_with(cat(layout.prefix, "model.layers.", config.num_layers + i, "."))) return true;
    }
    return false;
  };
  const auto not_a_parameter = [&](const std::string& name) {
    return mtp_layer(name) || name.ends_with(".rotary_emb.inv_freq") || name.ends_with(".attention.bias") ||
           name.ends_with(".attention.masked_bias") ||
           (config.tie_word_embeddings && name.ends_with("lm_head.weight")) ||
           (layout.multimodal && !name.starts_with(layout.prefix + "model.") &&
            !name.starts_with(layout.prefix + "lm_head."));
  };
  // A block-scaled FP8 checkpoint's scales, read with their weights.
  const auto scales_read = [&](const std::string& name) {
    const std::string suffix = "_scale_inv";
    return layout.fp8_block[0] > 0 && name.ends_with(suffix) &&
           read.contains(name.substr(0, name.size() - suffix.size()));
  };
  std::vector<std::string> unread;
  for (const std::string& name : ckpt::HfReader(model_dir, layout).names()) {
    if (!read.contains(name) && !not_a_parameter(name) && !scales_read(name)) unread.push_back(name);
  }
  if (unread.empty()) return;
  std::string list;
  for (std::size_t i = 0; i < std::min<std::size_t>(unread.size(), 4); ++i) list += (i ? ", " : "") + unread[i];
  if (unread.size() > 4) list += cat(" and ", unread.size() - 4, " more");
  fail(model_dir, ": the weights hold ", unread.size(),
       " tensor(s) that the model config.json describes does not have (", list,
       "): a part spin does not compute, or a config.json that does not match the weights");
}

void check_weights_hold_the_config(const std::string& model_dir, const model::ModelConfig& config) {
  ckpt::HfReader files(model_dir);
  double values = 0.0;
  for (const std::string& name : files.names()) {
    const Shape shape = files.shape_of(name);
    values += std::accumulate(shape.begin(), shape.end(), 1.0, std::multiplies<double>());
  }
  const auto parameters = static_cast<double>(config.num_parameters());
  if (parameters <= values) return;
  fail(model_dir, "/config.json describes a model of ", parameters, " parameters (num_hidden_layers ",
       config.num_layers, ", hidden_size ", config.hidden_size, "), but the weight files hold ", values,
       " values: a config.json that does not match the weights");
}

ModelSource model_source(const std::string& path, const std::string& adapter_dir, bool check_headers) {
  ModelSource source{ckpt::checkpoint_of(path), false, {}};
  if (!ckpt::is_checkpoint(source.dir)) {
    source.config = model::ModelConfig::load(path);  // a Hugging Face directory (or an error naming it)
    if (check_headers && ckpt::HfReader::has_weights(path)) check_weights_hold_the_config(path, source.config);
    return source;
  }
  require(adapter_dir.empty(), "--adapter merges a PEFT LoRA adapter into a Hugging Face model, and ", path,
          " is a spin checkpoint (a LoRA run's holds its merged model)");
  source.checkpoint = true;
  const ckpt::CheckpointReader reader(source.dir);
  source.config = model::ModelConfig::from_json(reader.attribute("model_config"), reader.dir() + " (model_config)");
  return source;
}

void load_model_weights(const ModelSource& source, const std::string& adapter_dir, const ModelShard& shard,
                        model::ModelWeights& weights, const kernels::Kernels& kernels) {
  // A frozen model (FrozenBf16) reads its values rounded, a tensor at a time (HfReader) or through the
  // checkpoint's host buffer (train::load_weights) -- but with a PEFT adapter, whose merge reads float32
  // matrices, the whole shard in float32 on the host first.
  if (weights.frozen() && !adapter_dir.empty()) {
    model::ModelWeights host(shard.config, shard.dims, shard.chunks);
    load_model_weights(source, adapter_dir, shard, host, spin::kernels::CpuKernels());
    weights.copy_from(host);
    return;
  }
  if (!source.checkpoint) {
    check_every_tensor_read(source.dir, source.config);
    load_hf_weights(source.dir, adapter_dir, source.config, shard.dims, shard.chunks, weights, kernels);
    return;
  }
  train::load_weights(ckpt::CheckpointReader(source.dir), "policy", weights);
}

std::unique_ptr<data::Tokenizer> load_tokenizer(const std::string& model_dir,
                                                const model::ModelConfig& config) {
  auto tokenizer = data::Tokenizer::load_if_present(model_dir);
  if (!tokenizer) return nullptr;
  std::optional<std::int32_t> bos, eos;
  // (Checked here, where text is tokenized: data already in token ids never meets the BOS, and was blamed for
  // an id outside the vocabulary where config.json's was.)
  require(!config.bos_token_id || *config.bos_token_id < config.vocab_size, model_dir, "/config.json: bos_token_id ",
          config.bos_token_id.value_or(0), " is outside the vocabulary (", config.vocab_size, ")");
  if (config.bos_token_id) bos = static_cast<std::int32_t>(*config.bos_token_id);
  if (!config.eos_token_ids.empty()) eos = static_cast<std::int32_t>(config.eos_token_ids.front());
  tokenizer->set_special_ids(bos, eos);
  return tokenizer;
}

std::vector<std::int32_t> stop_ids(const std::string& model_dir, const model::ModelConfig& config,
                                   const data::Tokenizer* tokenizer, data::PromptTemplate prompt_template) {
  std::vector<std::int32_t> ids;
  const auto add = [&](std::int64_t id) {
    const auto id32 = static_cast<std::int32_t>(id);
    if (std::find(ids.begin(), ids.end(), id32) == ids.end()) ids.push_back(id32);
  };
  for (std::int64_t id : config.eos_token_ids) add(id);
  for (std::int64_t id : config.generation_eos_ids(model_dir)) add(id);
  const std::optional<std::int32_t> end =
      tokenizer ? data::response_end(prompt_template, *tokenizer) : std::nullopt;
  if (end) add(*end);
  return ids;
}

std::vector<std::string> tokenizer_files(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  for (const char* f :
       {"tokenizer.model", "added_tokens.json", "tekken.json", "byte_tokenizer.json", "tokenizer.json",
        "tiktoken.model", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"}) {
    const fs::path path = fs::path(dir) / f;
    if (fs::exists(path)) out.push_back(path.string());
  }
  if (const std::string versioned = data::mistral_spm_file(dir); !versioned.empty()) {
    out.push_back((fs::path(dir) / versioned).string());
  }
  // The remote code config.json's and tokenizer_config.json's auto_map name (Moonlight's
  // tokenization_moonshot.py, configuration_deepseek.py, modeling_deepseek.py): an export loads as the
  // original does, with trust_remote_code.
  std::vector<std::string> code;
  for (const fs::directory_entry& e : fs::is_directory(dir) ? fs::directory_iterator(dir) : fs::directory_iterator()) {
    const std::string name = e.path().filename().string();
    const bool remote_code =
        name.starts_with("tokenization_") || name.starts_with("configuration_") || name.starts_with("modeling_");
    if (e.is_regular_file() && remote_code && e.path().extension() == ".py") code.push_back(e.path().string());
  }
  std::sort(code.begin(), code.end());
  out.insert(out.end(), code.begin(), code.end());
  return out;
}

void copy_tokenizer_files(const std::string& from, const std::string& to) {
  namespace fs = std::filesystem;
  for (const std::string& source : tokenizer_files(from)) {
    fs::copy_file(source, fs::path(to) / fs::path(source).filename(), fs::copy_options::overwrite_existing);
  }
}

void require_creatable_dir(const std::string& dir, const std::string& option, bool keep) {
  namespace fs = std::filesystem;
  std::error_code error;
  const bool created = fs::create_directories(dir, error);
  require(!error, option, " ", dir, ": cannot create the directory (", error.message(), ")");
  if (created && !keep) fs::remove(dir, error);
}

void require_replaceable_output(const std::string& out, bool overwrite, const std::string& program) {
  const ckpt::PathContents held = ckpt::what_is_at(out);
  if (held.what.empty()) return;
  require(!held.never_replaced, program, ": ", out, " is ", held.what,
          ", which an output never replaces: choose another path");
  require(overwrite, program, ": ", out, " exists (", held.what,
          "), which the output would replace: pass --overwrite to replace it, or choose another path");
}

ModelShard plan_model_shard(const model::ModelConfig& config, int tp_rank, int tp, int pp_rank, int pp,
                            const std::string& pp_layers, int ep, int chunks, std::int64_t seq,
                            const StageOptionNames& names) {
  require(chunks >= 1, names.vpp, " ", chunks, ": a pipeline stage holds at least one model chunk");
  require(chunks == 1 || pp >= 2, names.vpp, " ", chunks,
          " (interleaved pipeline stages) needs a pipeline of 2 stages or more, not ", pp);
  require(chunks == 1 || pp * chunks <= config.num_layers, names.vpp, " ", chunks, " at pp ", pp, ": ", pp * chunks,
          " model chunks, but the model has ", config.num_layers, " layers: every chunk needs at least one");
  const auto counts = layers_per_stage(config, pp, chunks, pp_layers, seq, names.pp_layers);
  return {config, model::stage_chunks(counts, pp_rank, pp), model::tp_dims(config, tp_rank, tp, ep), counts, seq};
}

std::string layers_text(const std::vector<std::int64_t>& counts) {
  std::string text;
  for (const std::int64_t n : counts) {
    if (!text.empty()) text += ',';
    text += std::to_string(n);
  }
  return text;
}

namespace {
// The sequence length balancing weighs layers at: `seq` (0: 4,096), the model's positions at most.
std::int64_t weighed_tokens(const model::ModelConfig& config, std::int64_t seq) {
  return std::min<std::int64_t>(config.max_sequence_length(), seq > 0 ? seq : 4096);
}
}  // namespace

std::vector<std::int64_t> layers_per_stage(const model::ModelConfig& config, int pp, int chunks,
                                           const std::string& pp_layers, std::int64_t seq, const std::string& option) {
  if (pp_layers != "balanced") {
    return model::split_layers(config.num_layers, pp * chunks, parse_int_list(pp_layers, option.c_str()), option);
  }
  return model::balanced_layers(config, pp * chunks, weighed_tokens(config, seq));
}

std::optional<BalanceHint> balance_hint(const model::ModelConfig& config, int pp, int chunks, std::int64_t seq) {
  if (pp < 2) return std::nullopt;
  const auto pace = [&](const std::vector<std::int64_t>& counts) {
    const std::vector<double> work = model::stage_flops_per_token(config, counts, weighed_tokens(config, seq));
    return *std::max_element(work.begin(), work.end());
  };
  BalanceHint hint;
  hint.balanced = layers_per_stage(config, pp, chunks, "balanced", seq);
  hint.even_pace = pace(layers_per_stage(config, pp, chunks, "", seq));
  hint.balanced_pace = pace(hint.balanced);
  if (hint.saving() < BalanceHint::kWorthIt) return std::nullopt;
  return hint;
}

std::string balance_report(const std::string& program, const ModelShard& shard, const std::string& pp_layers,
                           const std::string& option) {
  const int chunks = static_cast<int>(shard.chunks.size());
  const char* stage = chunks > 1 ? "virtual stage" : "stage";
  if (pp_layers == "balanced") {
    return cat(program, ": ", option, " balanced: ", layers_text(shard.layers), " layers a ", stage, "\n");
  }
  if (!pp_layers.empty()) return "";
  const std::optional<BalanceHint> hint =
      balance_hint(shard.config, static_cast<int>(shard.layers.size()) / chunks, chunks, shard.seq);
  if (!hint) return "";
  char saving[16];
  std::snprintf(saving, sizeof saving, "%.1f", 100.0 * hint->saving());
  return cat(program, ": pipeline balance: ", option, " balanced (", layers_text(hint->balanced), ") would take ",
             saving, "% off the slowest ", stage, "'s work (the LM head's among it)\n");
}

std::int64_t balance_tokens(const model::ModelConfig& config, std::int64_t prompt, std::int64_t response,
                            std::int64_t generated) {
  if (prompt <= 0 || response <= 0) return 0;
  return std::min(prompt + std::max(response, generated), config.max_sequence_length());
}

void check_interleaved_step(const std::string& option, int chunks, int pp, std::int64_t per_replica, bool by_tokens,
                            const std::string& per_replica_is) {
  require(chunks == 1 || per_replica >= pp, option, " ", chunks, ": the interleaved schedule trains at least one ",
          "micro-batch a pipeline stage, ", pp, " a step, but each data-parallel rank has ", per_replica,
          by_tokens ? " sequences a step, which micro-batches cut by tokens cannot make " : " micro-batches a step",
          by_tokens ? std::to_string(pp) + " of" : "", " (", per_replica_is, ")");
}

ModelShard plan_model_shard(const model::ModelConfig& config, const parallel::ProcessGrid& grid,
                            const std::string& pp_layers, int chunks, std::int64_t seq, const StageOptionNames& names) {
  return plan_model_shard(config, grid.tp_rank(), grid.tp_size(), grid.pp_rank(), grid.pp_size(), pp_layers,
                          grid.ep_size(), chunks, seq, names);
}

}  // namespace spin::app

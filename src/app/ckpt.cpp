// spin ckpt: look into, check and convert HDF5 checkpoints (checkpoint/sharded_checkpoint.h).
//   spin ckpt inspect PATH
//   spin ckpt verify PATH
//   spin ckpt reshard PATH OUT --tp T --pp P [--pp-layers L]
//   spin ckpt merge PATH OUT.h5
//   spin ckpt export-hf PATH OUT [--which policy|reference] [--dtype f32|bf16|f16]
//                                [--multimodal-from HF_DIR]
//   spin ckpt import-hf HF_DIR OUT --tp T --pp P [--pp-layers L]
// Under mpirun the work is split over the ranks: verify by tensor, reshard and import-hf by
// output shard file (each rank writes the files of the (TP, PP) positions it is given), export-hf
// by safetensors file (but a LoRA adapter's or a multimodal model's, from rank 0); merge writes a
// single file from rank 0. Memory per rank is one tensor (verify, reshard, merge, export-hf) or one
// output shard (import-hf).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "app/commands.h"
#include "app/model_setup.h"
#include "app/options.h"
#include "app/resumable_output.h"
#include "app/runtime.h"
#include "checkpoint/hf_reader.h"
#include "checkpoint/hf_writer.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/shard_rectangles.h"
#include "checkpoint/sharded_checkpoint.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/watchdog.h"
#include "kernels/cpu/cpu_kernels.h"
#include "model/weights.h"
#include "parallel/job_errors.h"

namespace spin::app {

namespace {

namespace fs = std::filesystem;
namespace po = boost::program_options;
using nlohmann::json;

constexpr const char* kUsage =
    "spin ckpt <action> PATH [OUT] [options]\n"
    "actions:\n"
    "  inspect PATH               layout, training state, tensors with shapes and sizes\n"
    "  verify PATH                every checksum; every tensor covered exactly once\n"
    "  reshard PATH OUT --tp --pp  a copy whose shard files match another layout\n"
    "  merge PATH OUT.h5          one unsharded HDF5 file (loadable as a checkpoint)\n"
    "  export-hf PATH OUT         a Hugging Face model directory\n"
    "  import-hf HF_DIR OUT --tp --pp [--adapter PEFT_DIR]  a checkpoint (weights only) from a Hugging Face\n"
    "                             model, with a PEFT LoRA adapter merged into it";

struct CkptOptions {
  std::string action, path, out, which = "policy", dtype = "f32", pp_layers, multimodal_from, adapter;
  std::string fp8_block = "128";
  int tp = 1, pp = 1;
  bool overwrite = false;
  std::int64_t max_shard_bytes = ckpt::kDefaultMaxShardBytes;  // signed: "-1" is refused, not wrapped
  double distributed_timeout_minutes = 10.0;
};

// --fp8-block's {rows, cols}: one positive number for square blocks, or two.
std::array<std::int64_t, 2> fp8_block(const CkptOptions& o) {
  const std::vector<std::int64_t> sizes = parse_int_list(o.fp8_block, "spin ckpt: --fp8-block");
  require((sizes.size() == 1 || sizes.size() == 2) && sizes.front() > 0 && sizes.back() > 0,
          "spin ckpt: --fp8-block \"", o.fp8_block, "\" is not ROWS or ROWS,COLS of positive numbers");
  return {sizes.front(), sizes.back()};
}

std::optional<CkptOptions> parse_options(int argc, char** argv, bool print) {
  CkptOptions o;
  po::options_description desc("spin ckpt options");
  desc.add_options()
      ("help,h", "print this help")
      ("action", po::value(&o.action)->required(), "inspect, verify, reshard, merge, export-hf or import-hf")
      ("path", po::value(&o.path)->required(), "the checkpoint (import-hf: the Hugging Face directory)")
      ("out", po::value(&o.out), "the output (reshard, merge, export-hf, import-hf)")
      ("tp", po::value(&o.tp)->default_value(o.tp), "reshard, import-hf: tensor-parallel size of the output")
      ("pp", po::value(&o.pp)->default_value(o.pp), "reshard, import-hf: pipeline-parallel size of the output")
      ("pp-layers", po::value(&o.pp_layers)->default_value(""), "reshard, import-hf: layers per stage, e.g. 3,5")
      ("adapter", po::value(&o.adapter)->default_value(""),
       "import-hf: a PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors) trained on "
       "HF_DIR's model, merged into it (W + scale B A, float32) as PEFT's merge_and_unload does")
      ("which", po::value(&o.which)->default_value(o.which),
       "export-hf: policy, reference, base (spin sft --lora-rank's frozen model) or lora (the LoRA adapters, "
       "as a PEFT adapter directory)")
      ("dtype", po::value(&o.dtype)->default_value(o.dtype),
       "export-hf: f32, bf16, f16 or fp8 (block-scaled: the layers' projections as FP8 E4M3 codes with a float32 "
       "scale a block, the rest in bf16, as DeepSeek-V3's, Kimi K2's and Qwen3's FP8 releases)")
      ("fp8-block", po::value(&o.fp8_block)->default_value(o.fp8_block),
       "export-hf --dtype fp8: the blocks' rows and columns, ROWS[,COLS] (128: those releases' 128 x 128)")
      ("max-shard-size", po::value(&o.max_shard_bytes)->default_value(o.max_shard_bytes),
       "export-hf: bytes per safetensors file; larger models are split with an index")
      ("distributed-timeout-minutes",
       po::value(&o.distributed_timeout_minutes)->default_value(o.distributed_timeout_minutes),
       (std::string("verify, reshard, export-hf, import-hf on several ranks: ") + kTimeoutHelp +
        " (inspect and merge, which rank 0 does alone while the others wait, never time out)")
           .c_str())
      ("overwrite", po::bool_switch(&o.overwrite),
       "reshard, merge, export-hf, import-hf: replace an existing output (a save directory never)")
      ("multimodal-from", po::value(&o.multimodal_from)->default_value(""),
       "export-hf: the multimodal Hugging Face directory (Gemma 3, Mistral Small 3.1, LLaVA, Pixtral, Qwen2-VL, Qwen2.5-VL) whose language model the checkpoint holds: "
       "write that multimodal model back, its other tensors and config.json taken from there");
  po::positional_options_description positional;
  positional.add("action", 1).add("path", 1).add("out", 1);
  std::set<std::string> given;
  if (!parse_options_or_help(desc, argc, argv, "spin ckpt", kUsage, print, &positional, &given)) return std::nullopt;
  const std::vector<std::string> actions = {"inspect", "verify", "reshard", "merge", "export-hf", "import-hf"};
  require(std::find(actions.begin(), actions.end(), o.action) != actions.end(), "spin ckpt: unknown action \"",
          o.action, "\" (inspect, verify, reshard, merge, export-hf, import-hf)");
  // An option of other actions is refused, not ignored: `import-hf --dtype bf16` would otherwise write float32
  // while the user believes otherwise.
  const std::vector<std::pair<const char*, std::vector<std::string>>> options_of = {
      {"tp", {"reshard", "import-hf"}},
      {"pp", {"reshard", "import-hf"}},
      {"pp-layers", {"reshard", "import-hf"}},
      {"adapter", {"import-hf"}},
      {"which", {"export-hf"}},
      {"dtype", {"export-hf"}},
      {"fp8-block", {"export-hf"}},
      {"max-shard-size", {"export-hf"}},
      {"multimodal-from", {"export-hf"}},
      {"overwrite", {"reshard", "merge", "export-hf", "import-hf"}},
  };
  for (const auto& [name, applies] : options_of) {
    if (!given.contains(name) || std::find(applies.begin(), applies.end(), o.action) != applies.end()) continue;
    std::string list;  // "reshard, merge and export-hf"
    for (std::size_t i = 0; i < applies.size(); ++i) {
      list += (i == 0 ? "" : i + 1 == applies.size() ? " and " : ", ") + applies[i];
    }
    fail("spin ckpt ", o.action, ": --", name, " is ", list, "'s option");
  }
  const bool needs_out = o.action != "inspect" && o.action != "verify";
  require(!needs_out || !o.out.empty(), "spin ckpt ", o.action, ": the output path is missing");
  require(needs_out || o.out.empty(), "spin ckpt ", o.action, ": unexpected argument \"", o.out, "\"");
  if (needs_out) {
    o.out = through_links(o.out);  // a link to the output: its target replaced, the link kept
    require_replaceable_output(o.out, o.overwrite, "spin ckpt " + o.action);
  }
  require(o.tp >= 1 && o.pp >= 1, "spin ckpt: --tp and --pp must be at least 1");
  require(o.which == "policy" || o.which == "reference" || o.which == "base" || o.which == "lora",
          "spin ckpt: --which \"", o.which, "\" is not policy, reference, base or lora");
  if (o.dtype == "fp8") {  // a known name and a possible export, before any work
    require(o.action == "export-hf" && o.which != "lora" && o.multimodal_from.empty(),
            "spin ckpt: --dtype fp8 is export-hf's, of a model (--which policy, reference or base) that is not "
            "--multimodal-from's");
    fp8_block(o);
  } else {
    parse_save_dtype(o.dtype, "spin ckpt: --dtype");
  }
  require(o.max_shard_bytes > 0, "spin ckpt: --max-shard-size must be positive, got ", o.max_shard_bytes);
  require(o.distributed_timeout_minutes >= 0.0, "spin ckpt: --distributed-timeout-minutes must be >= 0 (0: no "
          "timeout), got ", o.distributed_timeout_minutes);
  return o;
}

std::string megabytes(std::int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

model::ModelConfig config_of(const ckpt::CheckpointReader& reader) {
  return model::ModelConfig::from_json(reader.attribute("model_config"), reader.dir() + " (model_config)");
}

// ---- inspect ----------------------------------------------------------------------------------

void inspect(const ckpt::CheckpointReader& reader) {
  std::printf("checkpoint %s (format %s)\n", reader.path().c_str(),
              reader.attribute("spin_checkpoint_version").c_str());
  for (const char* name : {"layout", "training_state", "sft_state"}) {
    if (reader.has_attribute(name)) std::printf("%s: %s\n", name, reader.attribute(name).c_str());
  }
  if (reader.has_attribute("model_config")) {
    const model::ModelConfig c = config_of(reader);
    std::printf("model: %lld layers, hidden %lld, %lld heads (%lld kv), MLP %lld, vocabulary %lld, %lld parameters\n",
                static_cast<long long>(c.num_layers), static_cast<long long>(c.hidden_size),
                static_cast<long long>(c.num_heads), static_cast<long long>(c.num_kv_heads),
                static_cast<long long>(c.intermediate_size), static_cast<long long>(c.vocab_size),
                static_cast<long long>(c.num_parameters()));
  }
  std::int64_t total = 0;
  for (const std::string& group : reader.groups()) {
    std::int64_t values = 0;
    const auto names = reader.names(group);
    for (const std::string& name : names) values += shape_numel(reader.shape(group, name));
    std::printf("%s: %zu tensors, %lld values, %s\n", group.c_str(), names.size(), static_cast<long long>(values),
                megabytes(values * 4).c_str());
    for (const std::string& name : names) {
      std::printf("  %-52s %-14s float32 %2zu piece%s\n", name.c_str(), shape_str(reader.shape(group, name)).c_str(),
                  reader.pieces(group, name).size(), reader.pieces(group, name).size() == 1 ? "" : "s");
    }
    total += values * 4;
  }
  std::printf("total: %s of tensors\n", megabytes(total).c_str());
}

// ---- verify -----------------------------------------------------------------------------------

int verify(parallel::Communicator& world, const ckpt::CheckpointReader& reader) {
  // Tensors dealt round-robin over the ranks; problems gathered on rank 0.
  std::vector<std::string> problems;
  std::size_t k = 0;
  for (const std::string& group : reader.groups()) {
    for (const std::string& name : reader.names(group)) {
      if (k++ % static_cast<std::size_t>(world.size()) != static_cast<std::size_t>(world.rank())) continue;
      for (std::string& p : reader.verify(group, name)) problems.push_back(std::move(p));
    }
  }
  json mine_json = problems;
  const auto all = parallel::gather_strings(world, mine_json.dump());
  std::int32_t bad = 0;
  if (world.rank() == 0) {
    for (const std::string& text : all) {
      for (const auto& p : json::parse(text)) {
        std::fprintf(stderr, "spin ckpt verify: %s: %s\n", reader.dir().c_str(), p.get<std::string>().c_str());
        ++bad;
      }
    }
    if (bad == 0) std::printf("spin ckpt verify: %s: %zu tensors, every checksum and every value accounted for\n",
                              reader.dir().c_str(), k);
  }
  world.broadcast(&bad, 1, 0);
  return bad == 0 ? 0 : 1;
}

// ---- reshard, import-hf: output shard files for (TP, PP) positions ---------------------------

// The (tp, pp) positions this rank writes: dealt round-robin.
std::vector<std::pair<int, int>> my_positions(const parallel::Communicator& world, int tp, int pp) {
  std::vector<std::pair<int, int>> out;
  for (int i = 0; i < tp * pp; ++i) {
    if (i % world.size() == world.rank()) out.push_back({i % tp, i / tp});
  }
  return out;
}

std::string shard_file(int t, int p) { return cat("shard_tp", t, "_pp", p, "_dp0.h5"); }

std::string layout_json(int tp, int pp) {
  return json{{"tp", tp}, {"pp", pp}, {"dp", 1}, {"distributed_optimizer", false}}.dump();
}

void reshard(parallel::Communicator& world, const ckpt::CheckpointReader& reader, const CkptOptions& o) {
  std::optional<model::ModelConfig> read_config;
  parallel::run_collectively(world, [&] {
    read_config = config_of(reader);
    for (int p = 0; p < o.pp; ++p) plan_model_shard(*read_config, 0, o.tp, p, o.pp, o.pp_layers);  // a layout that fits
  });
  const model::ModelConfig& config = *read_config;
  ckpt::CheckpointWriter writer(world, o.out);
  parallel::run_collectively(world, [&] {
    for (const auto& [t, p] : my_positions(world, o.tp, o.pp)) {
      const ModelShard shard = plan_model_shard(config, t, o.tp, p, o.pp, o.pp_layers);
      writer.begin_file(shard_file(t, p));
      std::vector<float> buffer;
      for (const std::string& group : reader.groups()) {
        for (const ShardedTensor& s : model::parameter_layout(config, shard.dims, shard.stage())) {
          if (!s.primary || !reader.has(group, s.name)) continue;
          const ckpt::ShardRectangle r = ckpt::shard_rectangle(s);
          buffer.resize(static_cast<std::size_t>(shape_numel(r.count)));
          reader.read(group, s.name, r.start, r.count, buffer.data());
          writer.add_piece({group, s.name, s.global_shape, r.start, r.count, buffer.data()});
        }
      }
      // The trainer's own state (spin/reuse_cache: the responses of spin.reuse_generations;
      // spin/ref_logprobs_cache: the kept reference sums) is no model tensor: it goes whole into
      // the first file.
      const auto groups = reader.groups();
      if (t == 0 && p == 0 && std::find(groups.begin(), groups.end(), "spin") != groups.end()) {
        for (const std::string& name : reader.names("spin")) {
          buffer = reader.read_all("spin", name);
          const Shape& shape = reader.shape("spin", name);
          writer.add_piece({"spin", name, shape, Shape(shape.size(), 0), shape, buffer.data()});
        }
      }
      writer.end_file();
    }
  });
  std::map<std::string, std::string> attributes = reader.attributes();
  attributes.erase("catalog");
  attributes.erase("spin_checkpoint_version");
  attributes["layout"] = layout_json(o.tp, o.pp);
  writer.commit(attributes, 0, tokenizer_files(reader.dir()), false);
}

void import_hf(parallel::Communicator& world, const CkptOptions& o) {
  std::optional<model::ModelConfig> read_config;
  parallel::run_collectively(world, [&] {
    read_config = model::ModelConfig::load(o.path);
    if (world.rank() == 0) check_weights_hold_the_config(o.path, *read_config);  // one rank opens every file
    check_every_tensor_read(o.path, *read_config);
    for (int p = 0; p < o.pp; ++p) plan_model_shard(*read_config, 0, o.tp, p, o.pp, o.pp_layers);  // a layout that fits
    if (!o.adapter.empty()) lora_from_peft_config(o.adapter);  // refused before any output
  });
  const model::ModelConfig& config = *read_config;
  ckpt::CheckpointWriter writer(world, o.out);
  parallel::run_collectively(world, [&] {
    const kernels::CpuKernels cpu;
    for (const auto& [t, p] : my_positions(world, o.tp, o.pp)) {
      const ModelShard shard = plan_model_shard(config, t, o.tp, p, o.pp, o.pp_layers);
      model::ModelWeights weights(config, shard.dims, shard.chunks);
      load_hf_weights(o.path, o.adapter, config, shard.dims, shard.chunks, weights, cpu);
      writer.begin_file(shard_file(t, p));
      for (const ShardedTensor& s : weights.sharded_state_dict()) {
        if (!s.primary) continue;
        const ckpt::ShardRectangle r = ckpt::shard_rectangle(s);
        writer.add_piece({"policy", s.name, s.global_shape, r.start, r.count, s.local.f32() + r.local_offset});
      }
      writer.end_file();
    }
  });
  writer.commit({{"model_config", config.json_text}, {"layout", layout_json(o.tp, o.pp)}}, 0, tokenizer_files(o.path),
                false);
}

// ---- merge, export-hf (rank 0) ----------------------------------------------------------------

// A PEFT adapter's tensor: its name without "base_model.model.", shape and values.
struct PeftTensor {
  std::string name;
  Shape shape;
  std::vector<float> values;
};

// A module path's last name ("self_attn.qkv_proj" -> "qkv_proj"): PEFT's target_modules and pattern keys.
std::string module_name(const std::string& path) { return path.substr(path.rfind('.') + 1); }

// Phi-3's fused modules as PEFT adapts them -- one pair on qkv_proj (gate_up_proj) where spin
// trains a pair for each of q, k, v (gate, up): with n of its parts adapted, the fused pair has rank
// n r; its A stacks the adapted parts' A, one r-row block each, its B holds each part's B in that
// part's rows and its block's columns, zero elsewhere -- so B A is each part's B A in the part's
// rows, zero in an unadapted part's. GPT-NeoX's query_key_value the same, its rows fused per head
// (each head's q, k and v rows in turn: the fusion's groups). `rank_pattern` and `alpha_pattern` receive the fused module's
// rank n r and alpha n alpha (rsLoRA: sqrt(n) alpha), which give it spin's scale; the unfused pairs
// (o_proj, down_proj) are written as they are. PEFT's merge is spin's, W + s B A, exactly.
std::vector<PeftTensor> fused_peft_adapters(const ckpt::CheckpointReader& reader, const model::ModelConfig& config,
                                            std::int64_t rank, double alpha, bool rslora, nlohmann::json& rank_pattern,
                                            nlohmann::json& alpha_pattern) {
  const auto module_of = [](const std::string& weight) { return weight.substr(0, weight.size() - 6); };  // "weight"
  const auto layer_prefix = [](std::int64_t l) { return "model.layers." + std::to_string(l) + "."; };
  const auto adapted = [&](std::int64_t l, const std::string& part) {
    return reader.has("lora", layer_prefix(l) + module_of(part) + "lora_A.weight");
  };
  std::vector<PeftTensor> out;
  std::vector<std::string> done;  // the parts' factors, written within their fused module's
  for (const HfLayout::Fusion& f : model::hf_layout(config).fusions) {
    if (!f.fused.ends_with(".weight")) continue;  // a fused bias: no adapter
    // Every layer has the same targets: layer 0 says how many parts are adapted.
    const auto n = static_cast<std::int64_t>(
        std::count_if(f.parts.begin(), f.parts.end(), [&](const auto& p) { return adapted(0, p.first); }));
    if (n == 0) continue;
    const std::string module = module_of(f.fused);                              // "self_attn.qkv_proj."
    const std::string name = module_name(module.substr(0, module.size() - 1));  // "qkv_proj"
    const std::int64_t wide = n * rank;
    if (n > 1) {
      rank_pattern[name] = wide;
      alpha_pattern[name] = alpha * (rslora ? std::sqrt(static_cast<double>(n)) : static_cast<double>(n));
    }
    for (std::int64_t l = 0; l < config.num_layers; ++l) {
      const std::string at = layer_prefix(l);
      std::int64_t group_rows = 0, in = 0, block = 0;  // a group's rows: every part's
      for (const auto& [part, part_rows] : f.parts) {
        group_rows += part_rows;
        if (adapted(l, part)) in = reader.shape("lora", at + module_of(part) + "lora_A.weight")[1];
      }
      const std::int64_t rows = group_rows * f.groups;
      PeftTensor a{at + module + "lora_A.weight", {wide, in}, std::vector<float>(wide * in, 0.0f)};
      PeftTensor b{at + module + "lora_B.weight", {rows, wide}, std::vector<float>(rows * wide, 0.0f)};
      std::int64_t row = 0;  // the part's first row within a group
      for (const auto& [part, part_rows] : f.parts) {
        const std::string a_name = at + module_of(part) + "lora_A.weight";
        const std::string b_name = at + module_of(part) + "lora_B.weight";
        if (adapted(l, part)) {
          const std::vector<float> pa = reader.read_all("lora", a_name), pb = reader.read_all("lora", b_name);
          std::copy(pa.begin(), pa.end(), a.values.begin() + block * rank * in);
          for (std::int64_t g = 0; g < f.groups; ++g) {
            for (std::int64_t i = 0; i < part_rows; ++i) {
              std::copy_n(pb.begin() + (g * part_rows + i) * rank, rank,
                          b.values.begin() + (g * group_rows + row + i) * wide + block * rank);
            }
          }
          done.insert(done.end(), {a_name, b_name});
          ++block;
        }
        row += part_rows;
      }
      out.push_back(std::move(a));
      out.push_back(std::move(b));
    }
  }
  for (const std::string& name : reader.names("lora")) {  // the unfused modules' pairs
    if (std::find(done.begin(), done.end(), name) == done.end()) {
      out.push_back({name, reader.shape("lora", name), reader.read_all("lora", name)});
    }
  }
  return out;
}

// PEFT's target_modules for spin's targets (the lora_config attribute's names, in the layer's
// order): the module PEFT adapts for each (model::peft_module: Phi-3's and GPT-NeoX's fused one for
// its parts), once.
nlohmann::json peft_targets(const nlohmann::json& targets, const model::ModelConfig& config) {
  nlohmann::json out = nlohmann::json::array();
  for (int t = 0; t < model::kLoraTargets; ++t) {
    const auto target = static_cast<model::LoraTarget>(t);
    if (std::find(targets.begin(), targets.end(), model::lora_target_name(target)) == targets.end()) continue;
    const std::string name = module_name(model::peft_module(config, target));
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

// --which lora: the adapters as PEFT writes a LoRA adapter -- adapter_model.safetensors under
// PEFT's names ("base_model.model." + spin's) and adapter_config.json -- to load with
// PeftModel.from_pretrained over the model they adapt: the checkpoint's reference (spin train:
// each iteration's adapters adapt that iteration's reference) or base (spin sft), exported with
// --which reference / base. Phi-3's and GPT-NeoX's pairs as fused_peft_adapters writes them.
void export_peft(const ckpt::CheckpointReader& reader, const CkptOptions& o) {
  const model::ModelConfig config = config_of(reader);
  const std::vector<std::string> names = reader.names("lora");
  require(!names.empty() && reader.has_attribute("lora_config"), reader.dir(),
          ": no LoRA adapters (a run without lora.rank / --lora-rank saved it)");
  const nlohmann::json lora = nlohmann::json::parse(reader.attribute("lora_config"));
  // GraniteMoeParallelExperts holds every expert in one 3-D parameter, which PEFT's LoRA (of Linear
  // modules) cannot wrap: adapters of those experts have no PEFT form.
  require(config.hf_names != model::ModelConfig::HfNames::GraniteMoe ||
              std::none_of(names.begin(), names.end(),
                           [](const std::string& n) { return n.find(".mlp.experts.") != std::string::npos; }),
          reader.dir(),
          ": the LoRA adapters include GraniteMoE's experts, which PEFT cannot adapt (each layer's "
          "experts are one 3-D parameter, not Linear modules): export the merged model (--which policy) instead, or "
          "train adapters of the attention alone (lora.targets q_proj,k_proj,v_proj,o_proj)");
  const nlohmann::json targets = peft_targets(lora.at("targets"), config);
  const DType dtype = parse_save_dtype(o.dtype, "spin ckpt: --dtype");
  const bool rslora = lora.value("rslora", false);
  nlohmann::json rank_pattern = nlohmann::json::object(), alpha_pattern = nlohmann::json::object();
  std::vector<PeftTensor> adapters;
  const bool fused = !model::hf_layout(config).fusions.empty();  // Phi-3's, GPT-NeoX's
  if (fused) {
    adapters = fused_peft_adapters(reader, config, lora.at("rank").get<std::int64_t>(), lora.at("alpha").get<double>(),
                                   rslora, rank_pattern, alpha_pattern);
  } else {
    for (const std::string& name : names) adapters.push_back({name, reader.shape("lora", name), {}});
  }
  std::vector<ckpt::SafetensorsWrite> tensors;
  const HfLayout files = model::hf_layout(config);
  for (const PeftTensor& t : adapters) {  // under the files' module names (Phi's dense, fc1, fc2)
    tensors.push_back({"base_model.model." + config.hf_weight_prefix + files.renamed(t.name), dtype, t.shape});
  }
  fs::create_directories(o.out);
  ckpt::SafetensorsWriter writer((fs::path(o.out) / "adapter_model.safetensors").string(), tensors,
                                 {{"format", "pt"}});
  for (const PeftTensor& t : adapters) {
    writer.write_next(fused ? t.values.data() : reader.read_all("lora", t.name).data());
  }
  writer.finish();
  const nlohmann::json adapter = {{"peft_type", "LORA"},        {"task_type", "CAUSAL_LM"},
                                  {"r", lora.at("rank")},       {"lora_alpha", lora.at("alpha")},
                                  {"rank_pattern", rank_pattern}, {"alpha_pattern", alpha_pattern},
                                  {"lora_dropout", lora.value("dropout", 0.0)},
                                  {"target_modules", targets},
                                  {"bias", "none"},             {"fan_in_fan_out", false},
                                  {"inference_mode", true},     {"init_lora_weights", true},
                                  {"use_rslora", rslora},
                                  {"base_model_name_or_path", nullptr},
                                  {"modules_to_save", nullptr}, {"layers_to_transform", nullptr}};
  write_text_file((fs::path(o.out) / "adapter_config.json").string(), adapter.dump(2) + "\n");
}

// Collective over `world`: its ranks share the files (ckpt::write_hf_model; a multimodal model's too), but for
// a LoRA adapter's, which rank 0 writes.
void export_hf(parallel::Communicator& world, const ckpt::CheckpointReader& reader, const CkptOptions& o) {
  const bool root = world.rank() == 0;
  if (o.which == "lora") {
    parallel::run_collectively(world, [&] {
      if (root) export_peft(reader, o);
    });
    return;
  }
  // Every rank lays the files out the same way (names and shapes: nothing read yet).
  std::optional<model::ModelConfig> config;
  std::vector<ckpt::HfTensor> tensors;
  ckpt::FileTensors files;
  std::vector<float> values;
  ckpt::HfFormat format;
  std::string config_json;
  parallel::run_collectively(world, [&] {
    config = config_of(reader);
    require(!reader.names(o.which).empty(), reader.dir(), ": no ", o.which, " tensors",
            o.which == "reference" ? " (saved at an iteration's end, the reference is the policy)" : "");
    const std::array<std::int64_t, 2> block = o.dtype == "fp8" ? fp8_block(o) : std::array<std::int64_t, 2>{};
    format = hf_format(o.dtype, "spin ckpt: --dtype", *config, static_cast<std::uint64_t>(o.max_shard_bytes), block);
    tensors = hf_tensors(*config, format);
    for (const ckpt::HfTensor& t : tensors) {
      require(reader.has(o.which, t.name), reader.dir(), ": no tensor ", o.which, "/", t.name);
    }
    const auto read = [&](std::size_t i) {
      values = reader.read_all(o.which, tensors[i].name);
      return static_cast<const float*>(values.data());
    };
    files = ckpt::fuse_tensors(model::hf_layout(*config), tensors, read);
    config_json = hf_config_json(*config, format);
  });
  if (o.multimodal_from.empty()) {
    ckpt::write_hf_model(o.out, config_json, files.tensors, files.values, format.dtype, format.max_shard_bytes,
                         format.fp8_block, &world);
  } else {
    std::string prefix;
    parallel::run_collectively(world, [&] {
      // The checkpoint's model must be that directory's language model.
      const model::ModelConfig original = model::ModelConfig::load(o.multimodal_from);
      require(original.multimodal, o.multimodal_from,
              ": not a multimodal model (spin reads the language model of model_type gemma3, mistral3, llava, "
              "qwen2_vl and qwen2_5_vl checkpoints)");
      require(original.json_text == config->json_text, reader.dir(), ": its model is not ", o.multimodal_from,
              "'s language model (their text configs differ)");
      prefix = original.hf_weight_prefix;
    });
    ckpt::write_multimodal_model(o.out, {o.multimodal_from, prefix}, files.tensors, files.values, format.dtype,
                                 format.max_shard_bytes, &world);
  }
  parallel::run_collectively(world, [&] {
    if (root) copy_tokenizer_files(reader.dir(), o.out);
  });
}

}  // namespace

int run_ckpt(int argc, char** argv, parallel::Communicator& world) {
  // --tp and --pp describe the output, not this job: any number of ranks shares the work.
  std::optional<CkptOptions> parsed;
  parallel::run_collectively(world, [&] { parsed = parse_options(argc, argv, world.rank() == 0); });
  if (!parsed) return 0;
  const CkptOptions& o = *parsed;
  const bool root = world.rank() == 0;
  // The actions whose ranks share the work; inspect's and merge's rank 0 works alone while the others wait.
  if (o.action != "inspect" && o.action != "merge") {
    watchdog::start(o.distributed_timeout_minutes * 60.0, world.rank(),
                    cat("spin ckpt --distributed-timeout-minutes ", o.distributed_timeout_minutes).c_str());
  }
  if (o.action == "import-hf") {
    import_hf(world, o);
    if (root) {
      std::printf("spin ckpt import-hf: wrote %s (tp %d x pp %d)%s\n", o.out.c_str(), o.tp, o.pp,
                  o.adapter.empty() ? "" : cat(", the LoRA adapter of ", o.adapter, " merged").c_str());
    }
    return 0;
  }
  std::optional<ckpt::CheckpointReader> reader;
  parallel::run_collectively(world, [&] {
    reader.emplace(ckpt::checkpoint_of(o.path));
  });
  if (o.action == "verify") return verify(world, *reader);
  if (o.action == "reshard") {
    reshard(world, *reader, o);
    if (root) std::printf("spin ckpt reshard: wrote %s (tp %d x pp %d)\n", o.out.c_str(), o.tp, o.pp);
    return 0;
  }
  if (o.action == "export-hf") {
    export_hf(world, *reader, o);
    if (root) std::printf("spin ckpt export-hf: wrote %s\n", o.out.c_str());
    return 0;
  }
  parallel::run_collectively(world, [&] {
    if (!root) return;
    if (o.action == "inspect") inspect(*reader);
    if (o.action == "merge") ckpt::merge_checkpoint(*reader, o.out);
    if (o.action != "inspect") std::printf("spin ckpt %s: wrote %s\n", o.action.c_str(), o.out.c_str());
  });
  return 0;
}

}  // namespace spin::app

// Hugging Face directories (config.json + safetensors files) written from spin's tensors: from a
// checkpoint's (spin ckpt export-hf) or from the shards of a model in memory (save_hf_model: spin
// train's per-iteration models, spin sft's result), the files shared among ranks where several write.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/hf_layout.h"
#include "core/sharded_tensor.h"
#include "parallel/communicator.h"

namespace spin::ckpt {

struct HfTensor {
  std::string name;
  Shape shape;
  bool float32 = false;  // written in float32 whatever the dtype (HfLayout::float32)
  bool fp8 = false;      // written block-scaled to FP8 where the export is (write_hf_model's fp8_block)
};

// Hugging Face's default shard size (save_pretrained's max_shard_size="5GB").
inline constexpr std::uint64_t kDefaultMaxShardBytes = 5'000'000'000ull;

// How a model's tensors are written: in `dtype` (F32, BF16 or F16; the tensors HfLayout keeps in
// float32 aside), in files of at most `max_shard_bytes`, and with a nonzero `fp8_block` {rows, cols}
// those `fp8` picks by spin's name block-scaled to FP8 instead (write_hf_model's fp8_block).
struct HfFormat {
  DType dtype = DType::F32;
  std::uint64_t max_shard_bytes = kDefaultMaxShardBytes;
  std::array<std::int64_t, 2> fp8_block{};
  std::function<bool(const std::string&)> fp8;

  bool fp8_for(const std::string& name) const { return fp8_block[0] > 0 && fp8 && fp8(name); }
};

// Writes the Hugging Face directory `dir`: config.json (`config_json`) and the weights in
// `dtype`, as model.safetensors, or, when they exceed `max_shard_bytes`, as
// model-0000k-of-0000n.safetensors with model.safetensors.index.json (as save_pretrained does).
// `values(i)` gives tensor i's values (valid until the next call); it is called once per
// tensor, in order, so memory stays at one tensor. Written into `dir`.tmp and renamed.
// With `fp8_block` {rows, cols}, the tensors marked fp8 are written block-scaled to FP8 instead, each
// beside its _scale_inv (SafetensorsWrite::fp8_block; config_json should then carry the
// quantization_config that says so).
// With a `group`, collective over it: its ranks share the files (file k by rank k mod size, `values`
// called on each rank for its files' tensors only, in order within a file) -- so `dir` must be where
// every rank sees it --, rank 0 writes config.json and the index and renames; an error on any rank is
// thrown on all (parallel::run_collectively) and leaves no `dir`.
void write_hf_model(const std::string& dir, const std::string& config_json, const std::vector<HfTensor>& tensors,
                    const std::function<const float*(std::size_t)>& values, DType dtype,
                    std::uint64_t max_shard_bytes = kDefaultMaxShardBytes,
                    const std::array<std::int64_t, 2>& fp8_block = {}, parallel::Communicator* group = nullptr);

// `tensors` and their `values` (as write_hf_model takes them) as files laid out as `files` hold
// them (its prefix aside): the parts of each fusion (HfLayout) as one tensor of their rows in
// order -- group by group where it has groups --, where its first part was; a row split's tensor
// as one tensor a row, in order; the rest as they are, renamed by its renames; those it keeps in
// float32 marked so, and a fused tensor marked fp8 where all its parts are. The values of a fused
// tensor or a row are valid until the next call; they may be asked in any order (a row split's
// tensor is read once for its rows asked one after another).
struct FileTensors {
  std::vector<HfTensor> tensors;
  std::function<const float*(std::size_t)> values;
};
FileTensors fuse_tensors(const HfLayout& files, const std::vector<HfTensor>& tensors,
                         const std::function<const float*(std::size_t)>& values);

// A multimodal model whose language model spin trains (Gemma 3, Mistral Small 3.1: ModelConfig::hf_weight_prefix),
// for exports that write it back whole.
struct MultimodalSource {
  std::string dir;     // the original Hugging Face directory
  std::string prefix;  // where its language model's tensors sit there ("language_model.")
};

// write_hf_model for the multimodal model of `source`: its config.json; the language model's
// `tensors` (spin's names, `values` as above) under source.prefix; then source.dir's other
// tensors (a vision tower, a projector) as they are there, converted to `dtype`; and its
// image-processor files copied. With a `group`, collective over it as write_hf_model is (its rank 0
// copies the image-processor files).
void write_multimodal_model(const std::string& dir, const MultimodalSource& source,
                            const std::vector<HfTensor>& tensors,
                            const std::function<const float*(std::size_t)>& values, DType dtype,
                            std::uint64_t max_shard_bytes = kDefaultMaxShardBytes,
                            parallel::Communicator* group = nullptr);

// Collective over `mp`, the model-parallel group of one replica holding the model as `local`
// (ModelGather): its rank 0 writes `dir` (write_hf_model: config.json and the weights as `format`
// says, into `dir`.tmp renamed at the end, so a failure never leaves a half-written model behind),
// pulling each tensor whole from the group's ranks as its file is written -- no rank holds more
// than a tensor of the model beside its shards. `writers`, on mp rank 0: the group of the mp
// rank 0s of the replicas (the DP group of mp rank 0), which then share the files (each replica's
// rank 0 writes file k where k mod replicas is its rank, pulling from its own group); every replica
// must then call it. Without, one replica alone. The files are laid out as `layout` lays the model
// out (model::hf_layout, as it was read from `original_dir`): its fusions fused (fuse_tensors), and
// with a prefix the multimodal model of `original_dir` whose language model it is
// (write_multimodal_model, which has no FP8; config_json is then not used). An error on the writing
// rank is thrown on every rank of `mp` (and of `writers`: parallel::run_collectively).
void save_hf_model(const std::string& dir, const std::string& config_json, const std::vector<ShardedTensor>& local,
                   parallel::Communicator& mp, const HfFormat& format, const HfLayout& layout,
                   const std::string& original_dir, parallel::Communicator* writers = nullptr);

}  // namespace spin::ckpt

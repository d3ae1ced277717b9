// spin train's metric files and log helpers: rank 0 writes <save_dir>/metrics.jsonl (one JSON
// object a step or validation, full double precision) and, under logging.tensorboard, TensorBoard
// events in <save_dir>/tensorboard (tags train/<name> and validation/<name>); spin sft's, where its
// --metrics and --tensorboard ask (SftMetricsLog).
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "train/spin_trainer.h"
#include "train/tensorboard.h"

namespace spin::app {

// 45s, 12m30s, 3h05m.
std::string duration_text(double seconds);

// A metrics.jsonl file (one JSON object a line, each with its "step") open for appending. A resumed
// run's (resumed_step > 0) keeps the lines up to that step -- written beside the file and renamed over
// it, so that a disk too full for them leaves the old file whole -- and appends after them, redoing the
// later ones; a line a killed run left half-written is dropped. A fresh run's starts empty. Every line
// is flushed and checked: a full disk or an exceeded quota is an error naming the file, stopping the
// run with its checkpoints intact, not lines silently lost from there on. A device or a pipe (spin sft
// --metrics /dev/stdout) is written in place, nothing kept or renamed over it; a link, through.
class MetricsFile {
 public:
  MetricsFile(std::string path, std::int64_t resumed_step);
  ~MetricsFile();
  MetricsFile(const MetricsFile&) = delete;
  MetricsFile& operator=(const MetricsFile&) = delete;

  void append(const std::string& line);  // `line` ends in '\n'

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// One metrics.jsonl line: a training step's (with `m`; its MFU when peak_tflops, a rank's peak,
// is known) or a validation's (without: its sft_nll).
std::string metrics_json(const char* kind, std::int64_t iteration, std::int64_t epoch, std::int64_t step,
                         std::int64_t consumed, const train::SpinMetrics& s, const train::SpinStepMetrics* m,
                         double peak_tflops = 0.0);

class MetricsLog {
 public:
  // A resumed run (resumed_step > 0) keeps the lines up to its step and appends after them.
  // peak_tflops: a rank's peak (logging.peak_tflops), for the MFU; 0: unknown.
  MetricsLog(const std::string& save_dir, bool tensorboard, std::int64_t resumed_step, double peak_tflops);

  void record(const char* kind, std::int64_t iteration, std::int64_t epoch, std::int64_t step,
              std::int64_t consumed, const train::SpinMetrics& s, const train::SpinStepMetrics* m);

 private:
  double peak_tflops_ = 0.0;
  MetricsFile jsonl_;
  std::optional<train::TensorBoardWriter> tensorboard_;
};

// spin sft's figures on rank 0: a JSON line a step -- {"kind": "train", "epoch", "step", "loss", "lr",
// "grad_norm", "applied", "tokens_per_second", "tflops_per_rank"}, a non-finite loss as null -- and a
// validation -- {"kind": "validation", "epoch", "step", "loss", "tokens"} -- in `metrics_path`, and the
// same as TensorBoard scalars train/<name>, validation/<name> in `tensorboard_dir` (either "": none).
// A resumed run (resumed_step > 0) keeps the file's lines up to its step; its event file starts a
// session there.
class SftMetricsLog {
 public:
  SftMetricsLog(const std::string& metrics_path, const std::string& tensorboard_dir, std::int64_t resumed_step);
  void step(std::int64_t epoch, std::int64_t step, const train::StepMetrics& m, double tokens_per_second,
            double tflops_per_rank);
  void validation(std::int64_t epoch, std::int64_t step, double loss, double tokens);

 private:
  void write(const std::string& line);
  std::optional<MetricsFile> jsonl_;
  std::optional<train::TensorBoardWriter> tensorboard_;
};

}  // namespace spin::app

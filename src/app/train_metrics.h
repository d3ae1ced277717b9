// spin train's metric files and log helpers: rank 0 writes <save_dir>/metrics.jsonl (one JSON
// object a step or validation, full double precision) and, under logging.tensorboard, TensorBoard
// events in <save_dir>/tensorboard (tags train/<name> and validation/<name>).
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

// One metrics.jsonl line: a training step's (with `m`) or a validation's (without: its sft_nll).
std::string metrics_json(const char* kind, std::int64_t iteration, std::int64_t epoch, std::int64_t step,
                         std::int64_t consumed, const train::SpinMetrics& s, const train::SpinStepMetrics* m);

class MetricsLog {
 public:
  // A resumed run (resumed_step > 0) keeps the lines up to its step and appends after them.
  MetricsLog(const std::string& save_dir, bool tensorboard, std::int64_t resumed_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void record(const char* kind, std::int64_t iteration, std::int64_t epoch, std::int64_t step,
              std::int64_t consumed, const train::SpinMetrics& s, const train::SpinStepMetrics* m);

 private:
  std::FILE* jsonl_ = nullptr;
  std::optional<train::TensorBoardWriter> tensorboard_;
};

}  // namespace spin::app

#include "app/train_metrics.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "app/resumable_output.h"
#include "core/error.h"
#include "core/json_file.h"

namespace spin::app {

namespace fs = std::filesystem;

namespace {

// `x` as a JSON number, every digit a double holds; null where it is not finite (a skipped step's loss).
std::string json_number(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

// The step of a whole metrics line (`{...}`); none for one a killed run left half-written.
std::optional<std::int64_t> step_of(const std::string& line) {
  const auto at = line.find("\"step\": ");
  if (line.empty() || line.back() != '}' || at == std::string::npos) return std::nullopt;
  std::int64_t step = 0;
  const char* first = line.data() + at + 8;
  const auto [end, ec] = std::from_chars(first, line.data() + line.size(), step);
  if (ec != std::errc() || end == first) return std::nullopt;
  return step;
}

}  // namespace

MetricsFile::MetricsFile(std::string path, std::int64_t resumed_step) {
  // (spin sft --metrics may name /dev/null or a pipe: written in place, no lines kept, nothing renamed over it.)
  const OutputTarget target = output_target(path, "the metrics file");
  path_ = target.path;
  if (resumed_step <= 0 || target.in_place) {
    file_ = std::fopen(path_.c_str(), "w");
    require(file_ != nullptr, path_, ": cannot write (", std::strerror(errno), ")");
    return;
  }
  std::string kept;
  {
    std::ifstream in(path_);
    std::string line;
    while (std::getline(in, line)) {
      const auto step = step_of(line);
      if (step && *step <= resumed_step) kept += line + '\n';
    }
  }
  const std::string beside = path_ + ".tmp";
  file_ = std::fopen(beside.c_str(), "w");
  require(file_ != nullptr, beside, ": cannot write (", std::strerror(errno), ")");
  const bool written = std::fwrite(kept.data(), 1, kept.size(), file_) == kept.size() && std::fflush(file_) == 0;
  if (written && std::rename(beside.c_str(), path_.c_str()) == 0) return;
  const std::string error = std::strerror(errno);
  std::fclose(file_);  // the destructor does not run for a constructor that throws
  std::remove(beside.c_str());
  if (!written) write_failed(beside);
  fail(path_, ": cannot replace it (", error, ")");
}

MetricsFile::~MetricsFile() {
  if (file_) std::fclose(file_);
}

void MetricsFile::append(const std::string& line) {
  if (std::fputs(line.c_str(), file_) == EOF || std::fflush(file_) != 0) write_failed(path_);
}

std::string duration_text(double seconds) {
  const auto s = static_cast<long long>(std::llround(std::max(seconds, 0.0)));
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
  }
  return buf;
}

std::string metrics_json(const char* kind, std::int64_t iteration, std::int64_t epoch,
                         std::int64_t step, std::int64_t consumed, const train::SpinMetrics& s,
                         const train::SpinStepMetrics* m, double peak_tflops) {
  char buf[2048];  // full double precision: exact values (log 2, zero rewards) stay exact
  int n = std::snprintf(buf, sizeof buf,
                        "{\"kind\": \"%s\", \"iteration\": %lld, \"epoch\": %lld, \"step\": %lld, "
                        "\"consumed_samples\": %lld, \"loss\": %.17g, \"rewards_actual\": %.17g, "
                        "\"rewards_generated\": %.17g, \"margin\": %.17g, \"accuracy\": %.17g, "
                        "\"generated_length_mean\": %.17g, \"generated_length_max\": %.17g, "
                        "\"length_capped\": %.17g, \"logps_actual\": %.17g, \"logps_generated\": %.17g",
                        kind, static_cast<long long>(iteration + 1), static_cast<long long>(epoch + 1),
                        static_cast<long long>(step), static_cast<long long>(consumed), s.loss,
                        s.rewards_actual, s.rewards_generated, s.margin, s.accuracy,
                        s.generated_length_mean, s.generated_length_max, s.length_capped, s.logps_actual,
                        s.logps_generated);
  std::string out(buf, static_cast<std::size_t>(n));
  if (m) {
    n = std::snprintf(buf, sizeof buf,
                      ", \"lr\": %.17g, \"grad_norm\": %.17g, \"applied\": %s, \"tokens_per_second\": %.17g, "
                      "\"training_flops\": %.17g, \"tflops_per_rank\": %.17g, \"generated_tokens\": %lld, "
                      "\"generation_tokens_per_second\": %.17g, "
                      "\"seconds_generation\": %.6g, \"seconds_reference\": %.6g, \"seconds_training\": %.6g",
                      m->lr, m->grad_norm, m->applied ? "true" : "false", m->tokens_per_second, m->training_flops,
                      m->tflops_per_rank, static_cast<long long>(m->generated_tokens), m->generation_tokens_per_second,
                      m->seconds_generation, m->seconds_reference, m->seconds_training);
    out.append(buf, static_cast<std::size_t>(n));
    if (m->expert_load_max > 0.0) {  // a mixture of experts
      n = std::snprintf(buf, sizeof buf,
                        ", \"expert_load_max\": %.17g, \"expert_load_min\": %.17g, \"router_balance_loss\": %.17g, "
                        "\"router_z_loss\": %.17g",
                        m->expert_load_max, m->expert_load_min, m->balance_loss, m->z_loss);
      out.append(buf, static_cast<std::size_t>(n));
    }
    if (m->micro_batches > 0) {  // micro-batches by tokens
      n = std::snprintf(buf, sizeof buf, ", \"micro_batches\": %lld", static_cast<long long>(m->micro_batches));
      out.append(buf, static_cast<std::size_t>(n));
    }
    if (m->expert_rank_load_max > 0.0) {  // experts spread over the TP ranks
      n = std::snprintf(buf, sizeof buf, ", \"expert_rank_load_max\": %.17g", m->expert_rank_load_max);
      out.append(buf, static_cast<std::size_t>(n));
    }
    if (peak_tflops > 0.0) {
      n = std::snprintf(buf, sizeof buf, ", \"mfu\": %.17g", m->tflops_per_rank / peak_tflops);
      out.append(buf, static_cast<std::size_t>(n));
    }
  } else {
    n = std::snprintf(buf, sizeof buf, ", \"sft_nll\": %.17g", s.sft_nll);
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out + "}\n";
}

MetricsLog::MetricsLog(const std::string& save_dir, bool tensorboard, std::int64_t resumed_step, double peak_tflops)
    : peak_tflops_(peak_tflops), jsonl_((fs::path(save_dir) / "metrics.jsonl").string(), resumed_step) {
  if (tensorboard) {
    tensorboard_.emplace((fs::path(save_dir) / "tensorboard").string());
    tensorboard_->session_start(resumed_step + 1);
    tensorboard_->flush();
  }
}

void MetricsLog::record(const char* kind, std::int64_t iteration, std::int64_t epoch, std::int64_t step,
            std::int64_t consumed, const train::SpinMetrics& s, const train::SpinStepMetrics* m) {
  jsonl_.append(metrics_json(kind, iteration, epoch, step, consumed, s, m, peak_tflops_));
  if (!tensorboard_) return;
  const std::string prefix = cat(kind, "/");
  const auto put = [&](const char* name, double value) { tensorboard_->scalar(prefix + name, value, step); };
  put("loss", s.loss);
  put("rewards_actual", s.rewards_actual);
  put("rewards_generated", s.rewards_generated);
  put("margin", s.margin);
  put("accuracy", s.accuracy);
  put("generated_length_mean", s.generated_length_mean);
  put("logps_actual", s.logps_actual);
  put("logps_generated", s.logps_generated);
  put("iteration", static_cast<double>(iteration + 1));
  if (m != nullptr) {
    put("lr", m->lr);
    put("grad_norm", m->grad_norm);
    put("tokens_per_second", m->tokens_per_second);
    put("tflops_per_rank", m->tflops_per_rank);
    put("generation_tokens_per_second", m->generation_tokens_per_second);
    if (peak_tflops_ > 0.0) put("mfu", m->tflops_per_rank / peak_tflops_);
    if (m->expert_load_max > 0.0) {
      put("expert_load_max", m->expert_load_max);
      put("expert_load_min", m->expert_load_min);
      put("router_balance_loss", m->balance_loss);
      put("router_z_loss", m->z_loss);
    }
    if (m->expert_rank_load_max > 0.0) put("expert_rank_load_max", m->expert_rank_load_max);
    put("consumed_samples", static_cast<double>(consumed));
  } else {
    put("sft_nll", s.sft_nll);
  }
  tensorboard_->flush();
}

SftMetricsLog::SftMetricsLog(const std::string& metrics_path, const std::string& tensorboard_dir,
                             std::int64_t resumed_step) {
  if (!metrics_path.empty()) jsonl_.emplace(metrics_path, resumed_step);
  if (!tensorboard_dir.empty()) {
    tensorboard_.emplace(tensorboard_dir);
    tensorboard_->session_start(resumed_step + 1);
    tensorboard_->flush();
  }
}

void SftMetricsLog::write(const std::string& line) {
  if (jsonl_) jsonl_->append(line);
}

void SftMetricsLog::step(std::int64_t epoch, std::int64_t step, const train::StepMetrics& m,
                         double tokens_per_second, double tflops_per_rank) {
  write(cat("{\"kind\": \"train\", \"epoch\": ", epoch, ", \"step\": ", step, ", \"loss\": ", json_number(m.loss),
            ", \"lr\": ", json_number(m.lr), ", \"grad_norm\": ", json_number(m.grad_norm),
            ", \"applied\": ", m.applied ? "true" : "false", ", \"tokens_per_second\": ", json_number(tokens_per_second),
            ", \"tflops_per_rank\": ", json_number(tflops_per_rank), "}\n"));
  if (!tensorboard_) return;
  for (const auto& [name, value] : {std::pair{"train/loss", m.loss}, std::pair{"train/lr", m.lr},
                                    std::pair{"train/grad_norm", m.grad_norm},
                                    std::pair{"train/tokens_per_second", tokens_per_second},
                                    std::pair{"train/tflops_per_rank", tflops_per_rank}}) {
    tensorboard_->scalar(name, value, step);
  }
  tensorboard_->flush();
}

void SftMetricsLog::validation(std::int64_t epoch, std::int64_t step, double loss, double tokens) {
  write(cat("{\"kind\": \"validation\", \"epoch\": ", epoch, ", \"step\": ", step, ", \"loss\": ",
            json_number(loss), ", \"tokens\": ", json_number(tokens), "}\n"));
  if (!tensorboard_) return;
  tensorboard_->scalar("validation/loss", loss, step);
  tensorboard_->flush();
}

}  // namespace spin::app

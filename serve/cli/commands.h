// dsrt subcommands. Each returns a Status; main prints "dsrt: error: ..." on failure.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/common/status.h"
#include "serve/cli/cli_common.h"

namespace ds::cli {

Status run_inspect(const std::string& plan_path);

struct GenerateArgs {
  LoadOptions load;
  std::string prompt;
  std::string prompt_ids;
  bool has_prompt = false;
  bool has_prompt_ids = false;
  int64_t max_new_tokens = 16;
  float temperature = 0.0f;
  float top_p = 1.0f;
  int32_t top_k = -1;
  float min_p = 0.0f;
  uint64_t seed = 0;
  bool ignore_eos = false;
  bool json = false;
  int64_t chunked_prefill_size = 0;
  CudaArgs cuda;
};
Status run_generate(const GenerateArgs& args);

struct ScoreArgs {
  LoadOptions load;
  std::string ids;
  int64_t top_k = 5;
  bool json = false;
  int64_t chunked_prefill_size = 0;
  std::string logits_out;  // --logits-out: every position's full logits, f32 .npy [T, vocab]
  int64_t max_logit_rows = 0;  // --max-logit-rows (0: the engine's default)
  CudaArgs cuda;
};
Status run_score(const ScoreArgs& args);

}  // namespace ds::cli

// Helpers for runtime tests: temporary directories, safetensors writers, and a
// builder for small Qwen2-style plans (one kernel per instruction).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/common/dtype.h"
#include "runtime/plan/plan_generated.h"

namespace ds::test {

// A fresh directory under TMPDIR, removed with its files on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct StTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<float> values;  // converted to dtype when written
};

// Bytes of a safetensors file holding the tensors (in order).
std::string safetensors_bytes(const std::vector<StTensor>& tensors);
void write_bytes(const std::string& path, const std::string& bytes);

// A minimal valid plan with one weight (used by an embedding instruction).
struct OneWeight {
  std::string name = "w";
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  int concat_axis = 0;
  struct Source {
    std::string name, file = "model.safetensors";
    DType dtype = DType::kF32;
    std::vector<int64_t> shape;
    int slice_axis = -1;
    int64_t slice_start = 0, slice_size = 0, slice_rank_stride = 0, slice_rank_divisor = 1;
  };
  std::vector<Source> sources;
  int tp_size = 1;
};
std::string one_weight_plan(const OneWeight& w, const std::string& checkpoint_path);

// Deterministic values in [-scale, scale].
std::vector<float> random_values(size_t n, uint64_t seed, float scale = 0.5f);

struct TinyModel {
  int64_t hidden = 16;
  int64_t heads = 4;
  int64_t kv_heads = 2;
  int64_t head_dim = 4;
  int64_t intermediate = 24;
  int64_t vocab = 40;
  int64_t layers = 2;
  int64_t max_model_len = 64;
  int64_t page_size = 4;
  double theta = 10000.0;
  double eps = 1e-6;
  DType weight_dtype = DType::kBF16;
  DType kv_dtype = DType::kF32;
  bool fused = false;         // rope/kv-write and MLP gate as fused groups
  bool tied = false;          // lm_head from the embedding table
  DType plan_weight_dtype = DType::kF32;  // used when cast_weights: weights cast at load
  bool cast_weights = false;
  uint32_t format_version = 2;    // kPlanFormatVersion
  // Tensor parallelism (Megatron): the plan is sharded for `tp` ranks the way
  // dscc --tp does (column-parallel q/k/v and gate/up, row-parallel o/down
  // followed by all_reduce, vocab-parallel embedding and lm_head + all_gather).
  // tp > kv_heads replicates KV heads (slice_rank_divisor).
  int tp = 1;
  std::string target = "cpu";
  // Tokenizer files and chat template stored in the plan (empty: none).
  std::string tokenizer_json;
  std::string tokenizer_config_json;
  std::string chat_template;

  // HF-named checkpoint tensors (q/k/v/o, gate/up/down, norms, embed, lm_head).
  std::vector<StTensor> checkpoint(uint64_t seed) const;
  // The plan, reading `checkpoint_path`/model.safetensors.
  std::string plan_bytes(const std::string& checkpoint_path) const;
};

}  // namespace ds::test

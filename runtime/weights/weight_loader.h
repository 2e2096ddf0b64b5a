// Builds every plan weight from its checkpoint sources: each source is checked
// against the safetensors header (dtype, shape), sliced (incl. tensor-parallel
// rank offset), concatenated along concat_axis and cast to the weight dtype.
// Weights that need no transform point straight into the mmapped file.
//
// The `dummy` format skips the checkpoint and fills every weight with
// deterministic uniform noise (seeded per weight name) at the real shapes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/common/dtype.h"
#include "runtime/common/status.h"
#include "runtime/plan/plan_reader.h"
#include "runtime/weights/safetensors.h"

namespace ds {

enum class LoadFormat { kAuto, kSafetensors, kDummy };

// "auto", "safetensors", "dummy".
Result<LoadFormat> parse_load_format(const std::string& s);

struct WeightLoadOptions {
  std::string model_path;            // overrides plan.model.checkpoint_path when non-empty
  LoadFormat format = LoadFormat::kAuto;
  uint64_t dummy_seed = 0;
  float dummy_scale = 0.05f;         // dummy values are uniform in [-scale, scale]
  int tp_rank = 0;                   // tensor-parallel rank: selects each source's slice
};

struct WeightTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;     // shape x dtype bytes, row-major
  size_t nbytes = 0;
  bool zero_copy = false;            // points into the checkpoint mmap
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

class LoadedWeights {
 public:
  static Result<std::unique_ptr<LoadedWeights>> load(const LoadedPlan& plan, const WeightLoadOptions& options);

  size_t size() const { return weights_.size(); }
  // Weight `index` of plan.weights (in range: the plan was validated).
  const WeightTensor& get(size_t index) const { return weights_.at(index); }
  const std::string& source_dir() const { return source_dir_; }  // empty for dummy weights
  // The options these weights were loaded with (tensor parallelism loads the
  // other ranks' slices with the same options and another tp_rank).
  const WeightLoadOptions& load_options() const { return options_; }
  size_t owned_bytes() const;

 private:
  LoadedWeights() = default;
  std::unique_ptr<Checkpoint> checkpoint_;  // keeps the mmaps alive
  std::vector<WeightTensor> weights_;
  std::vector<std::vector<uint8_t>> owned_;
  std::string source_dir_;
  WeightLoadOptions options_;
};

// Converts n elements between floating dtypes (f32/f16/bf16/f8e4m3), or copies
// when the dtypes are equal. Other pairs are an error.
Status convert_elements(const void* src, DType src_dtype, void* dst, DType dst_dtype, size_t n);

}  // namespace ds

// Builds every plan weight from its checkpoint sources: each source is checked
// against the safetensors header (dtype, shape), sliced (incl. tensor-parallel
// rank offset), concatenated along concat_axis and cast to the weight dtype.
// Weights that need no transform point straight into the mmapped file.
//
// The `dummy` format skips the checkpoint and fills every weight with
// deterministic uniform noise at the real shapes: element i of weight `name` is
// ds::dummy_weight_value(dummy_weight_key(seed, name), i, scale) (dummy_init.h),
// the values the GPU loader (runtime/weights/cuda) generates too.
//
// With materialize = false nothing is read or allocated: every source is only
// checked against the safetensors headers (for plans whose weights another
// loader builds, e.g. on the GPU), and each weight has name/dtype/shape only.
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
  bool materialize = true;           // false: check the sources, load no data
};

// One checked checkpoint source of a weight: the whole tensor's bytes (mapped,
// or null when the checkpoint was opened without data) and this rank's slice.
struct SourceView {
  std::string name;
  std::string path;                  // the safetensors file
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;        // of the whole tensor
  const uint8_t* data = nullptr;
  int slice_axis = -1;               // -1: whole tensor
  int64_t slice_start = 0;           // this rank's start along slice_axis
  int64_t slice_size = 0;
  std::vector<int64_t> sliced_shape() const;
};

// The checkpoint directory for a plan: options.model_path, else the plan's
// checkpoint_path (an error naming --model-path when there is neither).
Result<std::string> plan_checkpoint_dir(const LoadedPlan& plan, const WeightLoadOptions& options);

// Finds and checks (dtype, shape) every source of plan weight `w` in `ck`.
// with_data: fill SourceView::data (`ck` must have been opened with map_data).
// Errors name the weight, the tensor and the file.
Result<std::vector<SourceView>> resolve_weight_sources(const Checkpoint& ck, const plan::Weight& w, int tp_rank,
                                                       bool with_data);

struct WeightTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;     // shape x dtype bytes, row-major (null: not materialized)
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

// Fills n elements of dst (a floating dtype) with dummy_weight_value(key, i, scale),
// split over a few threads for large n.
Status fill_dummy_host(void* dst, DType dtype, size_t n, uint64_t key, float scale);

}  // namespace ds

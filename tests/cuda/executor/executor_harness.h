// Test harness of the CUDA executor tests: loads a fixture's cpu (f32) and
// sm_90a (bf16) plans with the same weights, keeps per-side KV caches and page
// tables, builds step batches from a schedule, and compares logits.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/cache/kv_cache.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/executor/cpu_executor.h"
#include "runtime/executor/cuda/cuda_executor.h"
#include "runtime/plan/plan_reader.h"
#include "runtime/weights/weight_loader.h"

namespace ds::cuda::testing {

// .deps/plans/<model>.<target>.dsplan under the source root.
std::string plan_path(const std::string& model, const std::string& target);

// Host weights of `plan` (dummy or the fixture checkpoint).
Result<std::unique_ptr<LoadedWeights>> load_host_weights(const LoadedPlan& plan, const std::string& model, bool dummy);

// Device copies of host weights, in plan order.
struct UploadedWeights {
  std::vector<DeviceBuffer> buffers;
  std::vector<DeviceTensor> tensors;
};
Result<UploadedWeights> upload_weights(const LoadedWeights& w);

// One part of a step: `tokens` appended to sequence `seq`; logits for its last
// token (or every token when all_logits).
struct Part {
  int seq = 0;
  std::vector<int32_t> tokens;
  bool all_logits = false;
};

// An executor with its own KV cache and page tables.
class Side {
 public:
  Side(std::unique_ptr<KvCache> kv, std::unique_ptr<Executor> exec) : kv_(std::move(kv)), exec_(std::move(exec)) {}
  // Builds the batch (reserving pages) without running it.
  Result<StepBatch> build(const std::vector<Part>& parts);
  // Marks the parts' tokens as cached (after the step ran).
  void commit(const std::vector<Part>& parts);
  // build + step + commit; logits [R, vocab].
  Status run(const std::vector<Part>& parts, std::vector<float>* logits);
  Executor& exec() { return *exec_; }
  KvCache& kv() { return *kv_; }

 private:
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<Executor> exec_;
  std::map<int, PageTable> tables_;
  std::map<int, int64_t> cached_;
};

// The fixture loaded for both executors.
struct Fixture {
  std::string model;
  std::unique_ptr<LoadedPlan> cpu_plan, gpu_plan;
  std::unique_ptr<LoadedWeights> cpu_weights, gpu_host_weights;
  UploadedWeights gpu_weights;
};
Result<Fixture> load_fixture(const std::string& model, bool dummy);

constexpr int64_t kCapacity = 128;
constexpr int64_t kMaxSeqs = 8;
constexpr int64_t kMaxModelLen = 1024;  // decode KV buckets 512 and 1024
constexpr int64_t kNumPages = 96;

Result<Side> make_cpu_side(const Fixture& f);
// tweak: changes the executor options (e.g. the decode fusions) before the executor is made.
Result<Side> make_gpu_side(const Fixture& f, bool graphs, int64_t graph_max_bs = kMaxSeqs,
                           const std::function<void(CudaExecutorOptions&)>& tweak = nullptr);

// Deterministic token of sequence `seq` at history position `pos`.
int32_t token_at(int seq, int64_t pos, int64_t vocab);

struct LogitsDiff {
  double max_abs = 0;       // max |gpu - ref|
  double ref_scale = 0;     // max |ref|
  int64_t rows = 0;
  int64_t argmax_mismatch = 0;  // rows whose ref top-2 margin is clear but argmax differs
  std::string describe() const;
};
LogitsDiff compare_logits(const std::vector<float>& ref, const std::vector<float>& got, int64_t vocab);

// Logits bound of the CUDA-vs-reference tests, as a fraction of max |ref logit|:
// bf16 activations, weights and KV.
constexpr double kRelTol = 0.05;

// The value of `r`; otherwise a test failure naming `what`, and an exception that
// ends the test (setup helpers return values, so ASSERT_* cannot be used there).
template <typename T>
T take(Result<T> r, const char* what) {
  if (!r.ok()) {
    ADD_FAILURE() << what << ": " << r.status().message();
    throw std::runtime_error(r.status().message());
  }
  return std::move(r).value();
}

}  // namespace ds::cuda::testing

// CudaExecutor: CUDA graphs of decode steps (captured at load per padded batch
// size and KV-length bucket, on a padding-only step description) and the
// launch of a step: a graph replay when the batch is pure decode and a graph
// fits it, else the eager program.
#include <algorithm>
#include <chrono>

#include "runtime/executor/cuda/executor_impl.h"

namespace ds::cuda {

Status CudaExecutor::Impl::copy_staging(size_t words) {
  if (opt.zero_copy_upload)
    return launch_copy_step(static_cast<int32_t*>(blob.data()), static_cast<const int32_t*>(staging.device_data()),
                            words, stream.get());
  DS_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(blob.data(), staging.data(), words * sizeof(int32_t), cudaMemcpyHostToDevice, stream.get()));
  return Status::Ok();
}

Status CudaExecutor::Impl::upload_padding_only(int64_t size) {
  DS_RETURN_IF_ERROR(wait_staging());
  // size padding sequences of one token each (T = R = S = P = size, none real).
  const PackedStep v = begin_packed_step(static_cast<int32_t*>(staging.data()), size, size, size, 0, size);
  for (int64_t i = 0; i < size; ++i) {
    v.tokens[i] = 0, v.positions[i] = 0, v.logit_rows[i] = static_cast<int32_t>(i);
    v.q_start[i] = static_cast<int32_t>(i), v.kv_len[i] = 1, v.page_start[i] = static_cast<int32_t>(i);
    v.pages[i] = scratch_page;
  }
  v.q_start[size] = static_cast<int32_t>(size);
  v.page_start[size] = static_cast<int32_t>(size);
  DS_RETURN_IF_ERROR(copy_staging(v.words));
  DS_RETURN_IF_ERROR(staging_done.record(stream));
  staging_pending = true;
  return Status::Ok();
}

Status CudaExecutor::Impl::capture_graphs() {
  cudaStream_t st = stream.get();
  // GEMM heuristics (cached per shape and pointer alignment by the runner) are
  // chosen by each size's eager warm-up, before its capture.
  for (int64_t bs : graph_sizes) {
    const std::string ctx = StrCat() << "CUDA graph for decode batch " << bs;
    StepShape sh{bs, bs, bs, 1, opt.max_model_len};
    // Eager warm-up on padding (first launches may allocate or load lazily).
    DS_RETURN_IF_ERROR(upload_padding_only(bs).with_context(ctx));
    // GEMM kernel choice (timed for small m) for this size, cached for the capture.
    for (const BoundOp& op : program) {
      if (op.kind != BoundOp::Kind::kLinear && op.kind != BoundOp::Kind::kLogits) continue;
      GemmArgs a = op.kind == BoundOp::Kind::kLinear ? linear_args(op, bs) : op.gemm;
      a.m = bs;
      if (op.kind == BoundOp::Kind::kLogits) a.x = logit_hidden.data();
      DS_RETURN_IF_ERROR(gemm->prepare(a, st).with_context(ctx + ", " + op.where));
    }
    DS_RETURN_IF_ERROR(launch_unpack_step(static_cast<const int32_t*>(blob.data()), m, st).with_context(ctx));
    DS_RETURN_IF_ERROR(run_program(sh).with_context(ctx + " (warm-up)"));
    DS_RETURN_IF_ERROR(sync().with_context(ctx + " (warm-up)"));

    // One graph per KV-length bucket: the attention launch is sized by the bound.
    for (size_t kb = 0; kb < kv_buckets.size(); ++kb) {
      sh.max_kv_len = kv_buckets[kb];
      const std::string kctx = StrCat() << ctx << ", kv bound " << sh.max_kv_len;
      Result<GraphExec> g = capture_graph(st, [&] {
        Status s = launch_unpack_step(static_cast<const int32_t*>(blob.data()), m, st);
        return s.ok() ? run_program(sh) : s;
      });
      if (!g.ok()) return g.status().with_context(kctx + " (capture)");
      graphs.emplace(std::make_pair(bs, static_cast<int64_t>(kb)), std::move(g).value());
    }
  }
  return Status::Ok();
}

size_t CudaExecutor::Impl::kv_bucket(int64_t max_kv_len) const {
  const auto it = std::lower_bound(kv_buckets.begin(), kv_buckets.end(), max_kv_len);
  return it == kv_buckets.end() ? kv_buckets.size() - 1 : static_cast<size_t>(it - kv_buckets.begin());
}

Status CudaExecutor::Impl::launch_step(const StepBatch& b) {
  DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(opt.device));  // steps may come from another thread
  int64_t padded = 0;
  if (!graphs.empty() && !graph_sizes.empty() &&
      static_cast<int64_t>(b.sequences.size()) <= graph_sizes.back() &&
      std::all_of(b.sequences.begin(), b.sequences.end(), [](const StepSequence& s) { return s.num_tokens == 1; })) {
    const int64_t S = static_cast<int64_t>(b.sequences.size());
    const int64_t bs = *std::lower_bound(graph_sizes.begin(), graph_sizes.end(), S);
    if (b.num_tokens() == S && b.num_logit_rows() <= bs) padded = bs;
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (profiler && profiler->active) DS_RETURN_IF_ERROR(profiler->step_begin(stream));
  DS_ASSIGN_OR_RETURN(StepShape sh, upload(b, padded));
  if (padded > 0) {
    const auto key = std::make_pair(padded, static_cast<int64_t>(kv_bucket(sh.max_kv_len)));
    const bool prof = profiler && profiler->active;
    if (prof) DS_RETURN_IF_ERROR(profiler->graph_begin(stream));
    DS_RETURN_IF_ERROR(graphs.at(key).launch(stream));
    if (prof) DS_RETURN_IF_ERROR(profiler->graph_end(stream));
    return Status::Ok();
  }
  DS_RETURN_IF_ERROR(launch_unpack_step(static_cast<const int32_t*>(blob.data()), m, stream.get()));
  DS_RETURN_IF_ERROR(run_program(sh));
  if (profiler && profiler->active) DS_RETURN_IF_ERROR(profiler->eager_step(t0, stream));
  return Status::Ok();
}

}  // namespace ds::cuda

// CudaExecutor: option/plan validation, device allocations, accessors.
// Binding the program: cuda_executor_bind.cpp; steps and graphs: cuda_executor_step.cpp.
#include "runtime/executor/cuda/cuda_executor.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <limits>

#include "runtime/executor/cuda/executor_impl.h"

namespace ds::cuda {
namespace {

constexpr size_t kAlign = 256;

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

Status check_plan(const LoadedPlan& plan, const std::vector<DeviceTensor>& weights, const KvCache& kv,
                  const CudaExecutorOptions& opt) {
  const plan::Plan& p = plan.plan();
  const std::string target = p.target() ? p.target()->str() : "";
  if (target.rfind("sm_", 0) != 0)
    return Status::Error(StrCat() << "plan target '" << target << "' is not a CUDA arch (sm_*); compile with --target sm_90a");
  const auto act = static_cast<DType>(p.activation_dtype());
  if (act != DType::kBF16)
    return Status::Error(StrCat() << "plan activation dtype " << dtype_name(act) << "; the CUDA executor runs bf16 plans");
  const int comm_size = opt.comm ? opt.comm->size() : 1;
  if (p.tp_size() != comm_size) {
    if (!opt.comm)
      return Status::Error(StrCat() << "plan is sharded for " << p.tp_size()
                                    << " tensor-parallel ranks but the executor was given no communicator "
                                       "(run it with --tp " << p.tp_size() << ")");
    return Status::Error(StrCat() << "plan is sharded for " << p.tp_size() << " tensor-parallel ranks, the "
                                  << "communicator has " << comm_size);
  }
  if (opt.comm && opt.comm->device() != opt.device)
    return Status::Error(StrCat() << "tensor-parallel rank " << opt.comm->rank() << ": communicator is on GPU "
                                  << opt.comm->device() << ", the executor on GPU " << opt.device);
  const plan::KvCacheLayout* kvl = p.kv_cache();
  if (!kvl || !kvl->layers()) return Status::Error("plan has no kv_cache layout");
  if (static_cast<DType>(kvl->dtype()) != DType::kBF16)
    return Status::Error(StrCat() << "plan kv cache dtype " << dtype_name(static_cast<DType>(kvl->dtype()))
                                  << "; the CUDA executor needs bf16");
  const std::string layout = kvl->layout() ? kvl->layout()->str() : "NHD";
  if (layout != "NHD") return Status::Error("plan kv cache layout '" + layout + "'; the CUDA executor needs NHD");
  const KvCacheConfig& c = kv.config();
  if (c.dtype != DType::kBF16 || c.page_size != kvl->page_size() || c.layers.size() != kvl->layers()->size())
    return Status::Error("kv cache does not match the plan's kv_cache layout (dtype, page size or layers)");
  for (size_t l = 0; l < c.layers.size(); ++l) {
    const plan::KvCacheLayer* pl = kvl->layers()->Get(static_cast<flatbuffers::uoffset_t>(l));
    if (c.layers[l].num_kv_heads != pl->num_kv_heads() || c.layers[l].k_dim != pl->k_dim() ||
        c.layers[l].v_dim != pl->v_dim())
      return Status::Error(StrCat() << "kv cache layer " << l << " does not match the plan's kv_cache layout");
  }
  const size_t nw = p.weights() ? p.weights()->size() : 0;
  if (weights.size() != nw)
    return Status::Error(StrCat() << "device weights hold " << weights.size() << " tensors, the plan has " << nw);
  for (size_t i = 0; i < nw; ++i) {
    const plan::Weight* w = p.weights()->Get(static_cast<flatbuffers::uoffset_t>(i));
    std::vector<int64_t> shape;
    if (w->shape()) shape.assign(w->shape()->begin(), w->shape()->end());
    const DeviceTensor& t = weights[i];
    const std::string name = w->name() ? w->name()->str() : "";
    if (t.dtype != static_cast<DType>(w->dtype()) || t.shape != shape)
      return Status::Error(StrCat() << "device weight " << i << " '" << t.name << "' is " << dtype_name(t.dtype)
                                    << shape_str(t.shape) << ", plan weight '" << name << "' is "
                                    << dtype_name(static_cast<DType>(w->dtype())) << shape_str(shape));
    if (!t.data && t.nbytes > 0) return Status::Error(StrCat() << "device weight '" << name << "' has no data");
  }
  return Status::Ok();
}

}  // namespace

Status CudaExecutorOptions::validate() const {
  constexpr int64_t kMax32 = std::numeric_limits<int32_t>::max() / 4;
  if (device < 0) return Status::Error(StrCat() << "cuda executor: device " << device << " must be >= 0");
  if (token_capacity <= 0 || token_capacity > kMax32)
    return Status::Error(StrCat() << "cuda executor: token_capacity " << token_capacity << " must be in [1, " << kMax32 << "]");
  if (max_seqs <= 0 || max_seqs > kMax32)
    return Status::Error(StrCat() << "cuda executor: max_seqs " << max_seqs << " must be in [1, " << kMax32 << "]");
  if (max_model_len <= 0 || max_model_len > kMax32)
    return Status::Error(StrCat() << "cuda executor: max_model_len " << max_model_len << " must be in [1, " << kMax32 << "]");
  if (max_logit_rows < 0 || max_logit_rows > token_capacity)
    return Status::Error(StrCat() << "cuda executor: max_logit_rows " << max_logit_rows
                                  << " must be in [0, token_capacity " << token_capacity << "] (0: token_capacity)");
  if (cuda_graph_max_bs < 0)
    return Status::Error(StrCat() << "cuda executor: cuda_graph_max_bs " << cuda_graph_max_bs << " must be >= 0");
  if (comm && dist_timeout.count() <= 0)
    return Status::Error(StrCat() << "cuda executor: dist_timeout " << dist_timeout.count() << " ms must be positive");
  return Status::Ok();
}

std::vector<int64_t> cuda_graph_batch_sizes(int64_t max_bs) {
  std::vector<int64_t> sizes;
  for (int64_t b : {1, 2, 4, 8})
    if (b <= max_bs) sizes.push_back(b);
  for (int64_t b = 16; b <= max_bs && b <= 256; b += 8) sizes.push_back(b);
  for (int64_t b = 272; b <= max_bs; b += 16) sizes.push_back(b);
  if (max_bs > 0 && (sizes.empty() || sizes.back() != max_bs)) sizes.push_back(max_bs);
  return sizes;
}

CudaExecutor::Impl::~Impl() {
  if (stream.get()) (void)cudaStreamSynchronize(stream.get());
  if (profiler) profiler->print();
  graphs.clear();
}

Status CudaExecutor::Impl::sync() {
  if (comm) return comm->wait(stream.get(), opt.dist_timeout);
  return stream.synchronize();
}

Status CudaExecutor::Impl::wait_event(cudaEvent_t event) {
  if (comm) return comm->wait_event(event, opt.dist_timeout);
  DS_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(event));
  return Status::Ok();
}

Status CudaExecutor::Impl::wait_staging() {
  if (!staging_pending) return Status::Ok();
  DS_RETURN_IF_ERROR(wait_event(staging_done.get()));
  staging_pending = false;
  return Status::Ok();
}

CudaExecutor::CudaExecutor() : impl_(std::make_unique<Impl>()) {}
CudaExecutor::~CudaExecutor() = default;

Result<std::unique_ptr<CudaExecutor>> CudaExecutor::create(const LoadedPlan& plan, const DeviceWeights& weights,
                                                           KvCache& kv, const CudaExecutorOptions& options) {
  std::vector<DeviceTensor> tensors;
  tensors.reserve(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) tensors.push_back(weights.get(i));
  return create(plan, tensors, kv, options);
}

Result<std::unique_ptr<CudaExecutor>> CudaExecutor::create(const LoadedPlan& plan,
                                                           const std::vector<DeviceTensor>& weights, KvCache& kv,
                                                           const CudaExecutorOptions& options) {
  DS_RETURN_IF_ERROR(options.validate());
  DS_RETURN_IF_ERROR(check_plan(plan, weights, kv, options).with_context("plan " + plan.origin()));
  const int devices = device_count();
  if (options.device >= devices)
    return Status::Error(StrCat() << "cuda executor: device " << options.device << " requested, " << devices
                                  << " CUDA device(s) available");
  DS_CUDA_RETURN_IF_ERROR(cudaSetDevice(options.device));

  std::unique_ptr<CudaExecutor> e(new CudaExecutor());
  Impl& x = *e->impl_;
  x.opt = options;
  if (const char* env = std::getenv("DSRT_GEMV_PROLOGUE"); env && *env) {
    x.opt.gemv_prologue_swiglu = std::string(env) == "swiglu";  // =1: gemv_prologue covers gate_up too
    x.opt.gemv_prologue = std::string(env) != "0" && !x.opt.gemv_prologue_swiglu;
  }
  if (const char* env = std::getenv("DSRT_GEMV_SWIGLU"); env && *env) x.opt.gemv_swiglu = std::string(env) != "0";
  if (const char* env = std::getenv("DSRT_ATTN_ROPE"); env && *env) x.opt.attention_rope = std::string(env) != "0";
  if (const char* env = std::getenv("DSRT_ZERO_COPY"); env && *env) x.opt.zero_copy_upload = std::string(env) != "0";
  if (const char* env = std::getenv("DSRT_PIPELINED_SAMPLING"); env && *env)
    x.opt.pipelined_sampling = std::string(env) != "0";
  if (const char* env = std::getenv("DSRT_TP_PIPELINED_SAMPLING"); env && *env)
    x.opt.pipelined_with_comm = std::string(env) != "0";
  if (const char* env = std::getenv("DSRT_GEMV_DEFERRED_NORM"); env && *env)
    x.opt.deferred_norm = std::string(env) != "0";
  if (x.opt.max_logit_rows == 0) x.opt.max_logit_rows = x.opt.token_capacity;
  x.plan = &plan;
  x.kv = &kv;
  x.comm = options.comm;
  x.custom_ar = options.comm ? options.custom_all_reduce : nullptr;
  if (x.custom_ar && (x.custom_ar->size() != options.comm->size()))
    return Status::Error(StrCat() << "custom all-reduce group has " << x.custom_ar->size() << " ranks, the communicator "
                                  << options.comm->size());
  if (x.comm) x.tp_rank = x.comm->rank(), x.tp_size = x.comm->size();
  const plan::Plan& p = plan.plan();
  x.vocab = p.model()->vocab_size();
  x.page_size = kv.page_size();
  x.max_pages_per_seq = (x.opt.max_model_len + x.page_size - 1) / x.page_size;
  for (int64_t b = 512; b < x.opt.max_model_len; b *= 4) x.kv_buckets.push_back(b);
  x.kv_buckets.push_back(x.opt.max_model_len);
  const int64_t cap = x.opt.token_capacity, rows = x.opt.max_logit_rows, seqs = x.opt.max_seqs;

  DS_ASSIGN_OR_RETURN(x.stream, Stream::create());
  DS_ASSIGN_OR_RETURN(x.staging_done, Event::create());
  DS_ASSIGN_OR_RETURN(x.arena, DeviceBuffer::allocate(align_up(static_cast<size_t>(p.arena()->bytes_per_token() * cap))));
  const KvCacheConfig& kc = kv.config();
  // The device pools hold the cache's pages plus one scratch page (id num_pages)
  // that the padded sequences of decode graphs attend to; the KvCache never sees it.
  const bool graphs = x.opt.enable_cuda_graph && std::min({x.opt.cuda_graph_max_bs, seqs, cap, rows}) > 0;
  const int64_t device_pages = kc.num_pages + (graphs ? 1 : 0);
  for (const KvLayerGeometry& g : kc.layers) {
    const size_t slots = static_cast<size_t>(device_pages * kc.page_size * g.num_kv_heads);
    DS_ASSIGN_OR_RETURN(DeviceBuffer k, DeviceBuffer::allocate(slots * static_cast<size_t>(g.k_dim) * 2));
    DS_ASSIGN_OR_RETURN(DeviceBuffer v, DeviceBuffer::allocate(slots * static_cast<size_t>(g.v_dim) * 2));
    x.k_pools.push_back(std::move(k));
    x.v_pools.push_back(std::move(v));
  }
  DS_ASSIGN_OR_RETURN(x.logits, DeviceBuffer::allocate(static_cast<size_t>(rows * x.vocab) * sizeof(float)));

  // Fixed step buffers, each 256-byte aligned.
  size_t off = 0;
  auto take = [&](size_t bytes) {
    const size_t at = off;
    off = align_up(off + bytes);
    return at;
  };
  const size_t o_args = take(sizeof(DsStepArgs)), o_tokens = take(cap * 4), o_pos = take(cap * 4),
               o_rows = take(rows * 4), o_qs = take((seqs + 1) * 4), o_kvl = take(seqs * 4),
               o_pt = take(static_cast<size_t>(seqs * x.max_pages_per_seq) * 4), o_slots = take(cap * 4);
  DS_ASSIGN_OR_RETURN(x.meta, DeviceBuffer::allocate(off));
  auto* base = static_cast<uint8_t*>(x.meta.data());
  x.m.args = reinterpret_cast<DsStepArgs*>(base + o_args);
  x.m.tokens = reinterpret_cast<int32_t*>(base + o_tokens);
  x.m.positions = reinterpret_cast<int32_t*>(base + o_pos);
  x.m.logit_rows = reinterpret_cast<int32_t*>(base + o_rows);
  x.m.q_start = reinterpret_cast<int32_t*>(base + o_qs);
  x.m.kv_len = reinterpret_cast<int32_t*>(base + o_kvl);
  x.m.page_table = reinterpret_cast<int32_t*>(base + o_pt);
  x.m.slot_mapping = reinterpret_cast<int32_t*>(base + o_slots);
  x.m.page_table_stride = x.max_pages_per_seq;
  x.m.page_size = static_cast<int32_t>(x.page_size);
  DS_CUDA_RETURN_IF_ERROR(cudaMemset(x.meta.data(), 0, off));
  const DsStepArgs args{0, x.m.slot_mapping};
  DS_CUDA_RETURN_IF_ERROR(cudaMemcpy(x.m.args, &args, sizeof(args), cudaMemcpyHostToDevice));
  const size_t blob_bytes = step_blob_words(cap, rows, seqs, x.max_pages_per_seq) * sizeof(int32_t);
  DS_ASSIGN_OR_RETURN(x.blob, DeviceBuffer::allocate(blob_bytes));
  DS_ASSIGN_OR_RETURN(x.staging, PinnedBuffer::allocate_mapped(blob_bytes));  // read by launch_copy_step

  DS_ASSIGN_OR_RETURN(x.gemm, GemmRunner::create());
  DS_ASSIGN_OR_RETURN(x.sampler, DeviceSampler::create(x.vocab, rows, x.opt.zero_copy_upload));
  x.m.prev_ids = x.sampler->device_ids();  // previous_sample_token(r), read by the unpack kernel
  if (x.comm) {  // the sampler's waits on queued steps are bounded like every other wait of a rank
    Impl* xp = &x;
    x.sampler->set_stream_wait([xp](cudaStream_t s) { return xp->comm->wait(s, xp->opt.dist_timeout); });
  }
  x.m.prev_ids_stride = DeviceSampler::device_ids_stride();

  const auto t0 = std::chrono::steady_clock::now();
  DS_RETURN_IF_ERROR(x.bind(weights).with_context("plan " + plan.origin()));
  x.kernel_load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  if (graphs) {
    x.graph_sizes = cuda_graph_batch_sizes(std::min({x.opt.cuda_graph_max_bs, seqs, cap, rows}));
    if (!x.graph_sizes.empty()) {
      x.scratch_page = static_cast<int32_t>(kc.num_pages);
      for (size_t l = 0; l < x.k_pools.size(); ++l) {
        const KvLayerGeometry& g = kc.layers[l];
        const size_t row = static_cast<size_t>(kc.page_size * g.num_kv_heads) * 2;
        const size_t at = static_cast<size_t>(x.scratch_page) * row;
        DS_CUDA_RETURN_IF_ERROR(cudaMemset(static_cast<uint8_t*>(x.k_pools[l].data()) + at * g.k_dim, 0, row * g.k_dim));
        if (g.v_dim > 0)
          DS_CUDA_RETURN_IF_ERROR(cudaMemset(static_cast<uint8_t*>(x.v_pools[l].data()) + at * g.v_dim, 0, row * g.v_dim));
      }
      const auto t1 = std::chrono::steady_clock::now();
      DS_RETURN_IF_ERROR(x.capture_graphs().with_context("plan " + plan.origin()));
      x.graph_capture_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    }
  }
  DS_RETURN_IF_ERROR(x.sync().with_context("plan " + plan.origin()));
  if (const char* prof = std::getenv("DSRT_PROFILE"); prof && *prof && std::string(prof) != "0") {
    DS_ASSIGN_OR_RETURN(x.profiler, StepProfiler::create(x.program));
    x.profiler->active = true;
  }
  return e;
}

int64_t CudaExecutor::token_capacity() const { return impl_->opt.token_capacity; }
int64_t CudaExecutor::vocab_size() const { return impl_->vocab; }

size_t CudaExecutor::activation_bytes() const {
  const Impl& x = *impl_;
  return x.arena.bytes() + x.logits.bytes() + x.logit_hidden.bytes() + x.meta.bytes() + x.blob.bytes() +
         x.gather_scratch.bytes() +
         x.attn_workspace.bytes() + (x.gemm ? x.gemm->workspace_bytes() : 0) +
         (x.sampler ? x.sampler->device_bytes() : 0);
}

size_t CudaExecutor::kv_pool_bytes() const {
  size_t n = 0;
  for (const DeviceBuffer& b : impl_->k_pools) n += b.bytes();
  for (const DeviceBuffer& b : impl_->v_pools) n += b.bytes();
  return n;
}

double CudaExecutor::kernel_load_seconds() const { return impl_->kernel_load_s; }
double CudaExecutor::graph_capture_seconds() const { return impl_->graph_capture_s; }
int64_t CudaExecutor::decode_launches(int64_t batch) const {
  const StepShape sh{batch, batch, batch, 1, impl_->opt.max_model_len};
  int64_t n = 0;
  for (const BoundOp& op : impl_->program)
    n += op.absorbed_by != BoundOp::kNone && impl_->absorbs(op, sh) ? 0 : 1;
  return n;
}
int CudaExecutor::tp_rank() const { return impl_->tp_rank; }
bool CudaExecutor::broken() const { return impl_->comm && impl_->comm->aborted(); }
int CudaExecutor::tp_size() const { return impl_->tp_size; }

}  // namespace ds::cuda

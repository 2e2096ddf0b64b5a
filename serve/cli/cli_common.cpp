#include "serve/cli/cli_common.h"

#include <cerrno>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <cstdlib>

#include "runtime/common/dtype.h"
#include "runtime/dist/communicator.h"
#include "runtime/engine/engine.h"

#ifdef DS_HAVE_TOKENIZER
#include "serve/tokenizer/tokenizer.h"
#endif

namespace ds::cli {

// DType of a --dtype / --kv-cache-dtype name (torch's and the short ones); false if none.
static bool dtype_by_name(const std::string& name, DType* out) {
  if (name == "bfloat16" || name == "bf16") *out = DType::kBF16;
  else if (name == "float32" || name == "float" || name == "f32") *out = DType::kF32;
  else if (name == "float16" || name == "half" || name == "f16") *out = DType::kF16;
  else return false;
  return true;
}

// --dtype: vLLM's names for the dtype a model computes in. A plan's is fixed by
// dscc (f32 CPU plans, bf16 CUDA plans), so anything but "auto" must match it.
static Status check_dtype_option(const std::string& dtype, const std::string& plan_path, const LoadedPlan& plan) {
  if (dtype == "auto") return Status::Ok();
  DType want;
  if (!dtype_by_name(dtype, &want))
    return Status::Error(StrCat() << "--dtype " << dtype << ": expected auto, bfloat16, float16 or float32");
  const auto have = static_cast<DType>(plan.plan().activation_dtype());
  if (have != want)
    return Status::Error(StrCat() << "--dtype " << dtype << ": plan " << plan_path << " computes in "
                                  << dtype_name(have) << " (dscc compiles the dtype in; pass --dtype auto)");
  return Status::Ok();
}

// --kv-cache-dtype: the plan fixes the KV cache's dtype (dscc: bf16 on CUDA
// targets, f32 on the CPU), so anything but "auto" must name it. The FP8 caches
// of SGLang / vLLM are not implemented: refused with a message saying so.
static Status check_kv_cache_dtype_option(const std::string& name, const std::string& plan_path,
                                          const LoadedPlan& plan) {
  if (name == "auto") return Status::Ok();
  const plan::KvCacheLayout* kv = plan.plan().kv_cache();
  const DType have = kv ? static_cast<DType>(kv->dtype()) : static_cast<DType>(plan.plan().activation_dtype());
  if (name.rfind("fp8", 0) == 0)
    return Status::Error(StrCat() << "--kv-cache-dtype " << name << ": an FP8 KV cache is not implemented; plan "
                                  << plan_path << " keeps its KV cache in " << dtype_name(have)
                                  << " (pass --kv-cache-dtype auto)");
  DType want;
  if (!dtype_by_name(name, &want))
    return Status::Error(StrCat() << "--kv-cache-dtype " << name
                                  << ": expected auto, bfloat16, float16, float32 (or fp8_e5m2 / fp8_e4m3, "
                                     "not implemented)");
  if (want != have)
    return Status::Error(StrCat() << "--kv-cache-dtype " << name << ": plan " << plan_path << " keeps its KV cache in "
                                  << dtype_name(have) << " (pass --kv-cache-dtype auto)");
  return Status::Ok();
}

// --quantization: weights are what dscc compiled into the plan (bf16 on CUDA
// targets); dsrt quantizes nothing at load time.
static Status check_quantization_option(const std::string& name, const std::string& plan_path) {
  if (name.empty() || name == "none") return Status::Ok();
  if (name == "fp8")
    return Status::Error(StrCat() << "--quantization fp8: FP8 weight quantization is not implemented; plan "
                                  << plan_path << " runs the weights dscc compiled into it (leave --quantization out)");
  return Status::Error(StrCat() << "--quantization " << name << ": not supported; plan " << plan_path
                                << " runs the weights dscc compiled into it (leave --quantization out)");
}

Result<LoadedModel> load_model(const LoadOptions& options) {
  LoadedModel m;
  m.options = options;
  if (options.base_gpu_id < 0) return Status::Error(StrCat() << "--base-gpu-id " << options.base_gpu_id << " must be >= 0");
  if (!(options.dist_timeout > 0)) return Status::Error("--dist-timeout must be positive (seconds)");
  DS_ASSIGN_OR_RETURN(m.plan, LoadedPlan::from_file(options.plan_path));
  DS_RETURN_IF_ERROR(check_dtype_option(options.dtype, options.plan_path, *m.plan));
  DS_RETURN_IF_ERROR(check_kv_cache_dtype_option(options.kv_cache_dtype, options.plan_path, *m.plan));
  DS_RETURN_IF_ERROR(check_quantization_option(options.quantization, options.plan_path));
  const int plan_tp = m.plan->plan().tp_size();
  if (options.nnodes < 1) return Status::Error(StrCat() << "--nnodes " << options.nnodes << " must be at least 1");
  if (options.nnodes > 1) {
    // --tp is the whole group (SGLang's convention): plan_tp ranks over --nnodes
    // processes, plan_tp / nnodes ranks in each (GPU plans: that many GPUs per
    // process, from --base-gpu-id on).
    if (plan_tp < options.nnodes || plan_tp % options.nnodes != 0)
      return Status::Error(StrCat() << "--nnodes " << options.nnodes << " does not match plan " << options.plan_path
                                    << ", which is sharded for tp_size " << plan_tp
                                    << " (the ranks must split evenly over the processes)");
    if (options.tp != 1 && options.tp != plan_tp)
      return Status::Error(StrCat() << "--tp " << options.tp << " does not match plan " << options.plan_path
                                    << ", which is sharded for tp_size " << plan_tp);
    if (options.node_rank < 0 || options.node_rank >= options.nnodes)
      return Status::Error(StrCat() << "--node-rank " << options.node_rank << " out of range for --nnodes "
                                    << options.nnodes);
    if (options.dist_init_addr.empty()) return Status::Error("--nnodes > 1 needs --dist-init-addr HOST:PORT");
    if (!(options.dist_timeout > 0)) return Status::Error("--dist-timeout must be positive (seconds)");
  } else if (options.tp != plan_tp)
    return Status::Error(StrCat() << "--tp " << options.tp << " does not match plan " << options.plan_path
                                  << ", which is sharded for tp_size " << plan_tp << " (pass --tp " << plan_tp
                                  << ", or compile the plan with dscc --tp " << options.tp << ")");
  // In one process, a CUDA plan's ranks talk over NCCL alone; Gloo carries the
  // CPU collectives and, across processes, the rendezvous.
  const bool host_collectives = options.nnodes > 1 || !is_cuda_plan(*m.plan);
  if (plan_tp > 1 && host_collectives && !have_collectives())
    return Status::Error(StrCat() << "plan " << options.plan_path << " is sharded for " << plan_tp
                                  << " tensor-parallel ranks, but this dsrt was built without Gloo collectives "
                                     "(install libgloo-dev and rebuild)");
  WeightLoadOptions wo;
  wo.model_path = options.model_path;
  DS_ASSIGN_OR_RETURN(wo.format, parse_load_format(options.load_format));
  wo.dummy_seed = options.dummy_seed;
  // This process's first rank (its weights; the others load theirs).
  wo.tp_rank = options.nnodes > 1 ? options.node_rank * (plan_tp / options.nnodes) : 0;
  // sm_* plans: DeviceWeights::load reads the checkpoint onto the GPU; here only check it.
  wo.materialize = !is_cuda_plan(*m.plan);
  DS_ASSIGN_OR_RETURN(m.weights, LoadedWeights::load(*m.plan, wo));
  if (options.nnodes > 1) {
    DistInitOptions d;
    d.rank = options.node_rank;
    d.size = options.nnodes;
    d.init_addr = options.dist_init_addr;
    d.comm.timeout = std::chrono::milliseconds(static_cast<int64_t>(options.dist_timeout * 1000));
    const std::string host = d.init_addr.substr(0, d.init_addr.rfind(':'));
    if (host != "127.0.0.1" && host != "localhost" && host != "[::1]") {
      char name[256] = {0};
      if (::gethostname(name, sizeof(name) - 1) == 0) d.comm.hostname = name;  // this node's address
    }
    DS_ASSIGN_OR_RETURN(m.dist, connect_group(d));
    DS_RETURN_IF_ERROR(check_same_plan(*m.dist, m.plan->bytes()));
  }
  return m;
}

ExecutorOptions follower_executor_options(const LoadOptions& options) {
  ExecutorOptions o;
  o.gpu.device = options.base_gpu_id;
  o.gpu.dist_timeout = std::chrono::milliseconds(static_cast<int64_t>(options.dist_timeout * 1000));
  return o;
}

DeviceOptions device_options(const LoadOptions& load, const CudaArgs& cuda) {
  DeviceOptions o;
  o.enable_cuda_graph = !cuda.disable_cuda_graph;
  o.cuda_graph_max_bs = cuda.cuda_graph_max_bs;
  o.device = load.base_gpu_id;
  o.dist_timeout = std::chrono::milliseconds(static_cast<int64_t>(load.dist_timeout * 1000));
  o.enable_p2p_check = load.enable_p2p_check;
  o.disable_custom_all_reduce = load.disable_custom_all_reduce;
  o.weight_progress = weight_progress_printer();
  return o;
}

std::function<void(size_t, size_t)> weight_progress_printer() {
  if (!::isatty(STDERR_FILENO)) return nullptr;
  auto last = std::make_shared<int>(-1);
  return [last](size_t done, size_t total) {
    const int pct = total > 0 ? static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total)) : 100;
    if (pct == *last) return;
    *last = pct;
    constexpr int kWidth = 30;
    const int fill = pct * kWidth / 100;
    std::fprintf(stderr, "\rdsrt: loading weights [%.*s%*s] %3d%% %.1f/%.1f GiB", fill,
                 "##############################", kWidth - fill, "", pct, static_cast<double>(done) / (1 << 30),
                 static_cast<double>(total) / (1 << 30));
    if (done >= total) std::fputc('\n', stderr);
    std::fflush(stderr);
  };
}

void print_weight_load(size_t bytes, double seconds) {
  const double gb_s = seconds > 0 ? static_cast<double>(bytes) / seconds / 1e9 : 0.0;
  std::fprintf(stderr, "dsrt: loaded %.1f GiB of weights in %.2f s (%.1f GB/s)\n",
               static_cast<double>(bytes) / (1 << 30), seconds, gb_s);
  std::fflush(stderr);
}

Result<std::vector<int32_t>> parse_id_list(const std::string& text, const std::string& flag) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i <= text.size()) {
    size_t comma = text.find(',', i);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(i, comma - i);
    const size_t b = item.find_first_not_of(" \t");
    const size_t e = item.find_last_not_of(" \t");
    item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    if (item.empty())
      return Status::Error(StrCat() << flag << ": empty entry in '" << text << "' (expected ids like 1,2,3)");
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || v > INT32_MAX)
      return Status::Error(StrCat() << flag << ": '" << item << "' is not a token id (a non-negative integer)");
    ids.push_back(static_cast<int32_t>(v));
    i = comma + 1;
  }
  return ids;
}

#ifdef DS_HAVE_TOKENIZER
struct PlanTokenizer::Impl {
  std::unique_ptr<Tokenizer> tok;
};
bool tokenizer_available() { return true; }

Result<std::unique_ptr<PlanTokenizer>> PlanTokenizer::create(const LoadedPlan& plan) {
  const plan::TokenizerInfo* ti = plan->tokenizer();
  if (!ti || !ti->tokenizer_json() || ti->tokenizer_json()->size() == 0)
    return Status::Error("plan " + plan.origin() + " has no tokenizer");
  std::unique_ptr<PlanTokenizer> t(new PlanTokenizer());
  auto r = Tokenizer::from_json(ti->tokenizer_json()->str(),
                                ti->tokenizer_config_json() ? ti->tokenizer_config_json()->str() : std::string());
  if (!r.ok()) return r.status().with_context("plan " + plan.origin() + " tokenizer");
  t->impl_->tok = std::move(r).value();
  return t;
}

Result<std::vector<int32_t>> PlanTokenizer::encode(const std::string& text) const {
  return impl_->tok->encode(text, /*add_special_tokens=*/true);
}

Result<std::string> PlanTokenizer::decode(const std::vector<int32_t>& ids) const {
  return impl_->tok->decode(ids, /*skip_special_tokens=*/true);
}
#else
struct PlanTokenizer::Impl {};
bool tokenizer_available() { return false; }

Result<std::unique_ptr<PlanTokenizer>> PlanTokenizer::create(const LoadedPlan&) {
  return Status::Error("this dsrt was built without the tokenizer (ds_tokenizer); use --prompt-ids");
}
Result<std::vector<int32_t>> PlanTokenizer::encode(const std::string&) const {
  return Status::Error("no tokenizer");
}
Result<std::string> PlanTokenizer::decode(const std::vector<int32_t>&) const { return Status::Error("no tokenizer"); }
#endif

PlanTokenizer::PlanTokenizer() : impl_(std::make_unique<Impl>()) {}
PlanTokenizer::~PlanTokenizer() = default;

}  // namespace ds::cli

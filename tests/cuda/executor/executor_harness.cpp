#include "executor_harness.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace ds::cuda::testing {

std::string plan_path(const std::string& model, const std::string& target) {
  return std::string(DS_SOURCE_ROOT) + "/.deps/plans/" + model + "." + target + ".dsplan";
}

Result<std::unique_ptr<LoadedWeights>> load_host_weights(const LoadedPlan& plan, const std::string& model, bool dummy) {
  WeightLoadOptions o;
  o.format = dummy ? LoadFormat::kDummy : LoadFormat::kSafetensors;
  o.dummy_seed = 7;
  o.model_path = std::string(DS_SOURCE_ROOT) + "/tests/fixtures/" + model;
  return LoadedWeights::load(plan, o);
}

Result<UploadedWeights> upload_weights(const LoadedWeights& w) {
  UploadedWeights u;
  for (size_t i = 0; i < w.size(); ++i) {
    const WeightTensor& t = w.get(i);
    DS_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::allocate(t.nbytes));
    DS_RETURN_IF_ERROR(b.copy_from_host(t.data, t.nbytes));
    DeviceTensor d;
    d.name = t.name;
    d.dtype = t.dtype;
    d.shape = t.shape;
    d.data = b.data();
    d.nbytes = t.nbytes;
    u.tensors.push_back(d);
    u.buffers.push_back(std::move(b));
  }
  return u;
}

Result<StepBatch> Side::build(const std::vector<Part>& parts) {
  StepBatch b;
  for (const Part& p : parts) {
    StepSequence s;
    s.first_token = b.num_tokens();
    s.num_tokens = static_cast<int64_t>(p.tokens.size());
    s.num_cached = cached_[p.seq];
    PageTable& pt = tables_[p.seq];
    DS_RETURN_IF_ERROR(kv_->reserve(pt, s.num_cached + s.num_tokens));
    s.page_table = pt.pages;
    for (size_t i = 0; i < p.tokens.size(); ++i) {
      if (p.all_logits || i + 1 == p.tokens.size()) b.logit_rows.push_back(static_cast<int32_t>(b.num_tokens()));
      b.tokens.push_back(p.tokens[i]);
      b.positions.push_back(static_cast<int32_t>(s.num_cached + static_cast<int64_t>(i)));
    }
    b.sequences.push_back(std::move(s));
  }
  return b;
}

void Side::commit(const std::vector<Part>& parts) {
  for (const Part& p : parts) cached_[p.seq] += static_cast<int64_t>(p.tokens.size());
}

Status Side::run(const std::vector<Part>& parts, std::vector<float>* logits) {
  DS_ASSIGN_OR_RETURN(StepBatch b, build(parts));
  logits->assign(static_cast<size_t>(b.num_logit_rows() * exec_->vocab_size()), 0.0f);
  DS_RETURN_IF_ERROR(exec_->step(b, logits->data()));
  commit(parts);
  return Status::Ok();
}

Result<Fixture> load_fixture(const std::string& model, bool dummy) {
  Fixture f;
  f.model = model;
  DS_ASSIGN_OR_RETURN(f.cpu_plan, LoadedPlan::from_file(plan_path(model, "cpu")));
  DS_ASSIGN_OR_RETURN(f.gpu_plan, LoadedPlan::from_file(plan_path(model, "sm_90a")));
  DS_ASSIGN_OR_RETURN(f.cpu_weights, load_host_weights(*f.cpu_plan, model, dummy));
  DS_ASSIGN_OR_RETURN(f.gpu_host_weights, load_host_weights(*f.gpu_plan, model, dummy));
  DS_ASSIGN_OR_RETURN(f.gpu_weights, upload_weights(*f.gpu_host_weights));
  return f;
}

Result<Side> make_cpu_side(const Fixture& f) {
  DS_ASSIGN_OR_RETURN(KvCacheConfig c, KvCacheConfig::from_plan(*f.cpu_plan->plan().kv_cache(), kNumPages));
  DS_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> kv, KvCache::create(c));
  DS_ASSIGN_OR_RETURN(auto e, CpuExecutor::create(*f.cpu_plan, *f.cpu_weights, *kv, kCapacity));
  return Side(std::move(kv), std::move(e));
}

Result<Side> make_gpu_side(const Fixture& f, bool graphs, int64_t graph_max_bs,
                           const std::function<void(CudaExecutorOptions&)>& tweak) {
  DS_ASSIGN_OR_RETURN(KvCacheConfig c, KvCacheConfig::from_plan(*f.gpu_plan->plan().kv_cache(), kNumPages));
  c.host_storage = false;
  DS_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> kv, KvCache::create(c));
  CudaExecutorOptions o;
  o.token_capacity = kCapacity;
  o.max_seqs = kMaxSeqs;
  o.max_model_len = kMaxModelLen;
  o.enable_cuda_graph = graphs;
  o.cuda_graph_max_bs = graph_max_bs;
  if (tweak) tweak(o);
  DS_ASSIGN_OR_RETURN(auto e, CudaExecutor::create(*f.gpu_plan, f.gpu_weights.tensors, *kv, o));
  return Side(std::move(kv), std::move(e));
}

int32_t token_at(int seq, int64_t pos, int64_t vocab) {
  const uint64_t h = (static_cast<uint64_t>(seq) * 7919u + static_cast<uint64_t>(pos) * 104729u + 13u) * 2654435761u;
  return static_cast<int32_t>((h >> 7) % static_cast<uint64_t>(vocab));
}

std::string LogitsDiff::describe() const {
  std::ostringstream os;
  os << rows << " rows: max abs err " << max_abs << ", rel err " << (ref_scale > 0 ? max_abs / ref_scale : 0.0)
     << " (max |ref| " << ref_scale << "), clear-margin argmax mismatches " << argmax_mismatch;
  return os.str();
}

LogitsDiff compare_logits(const std::vector<float>& ref, const std::vector<float>& got, int64_t vocab) {
  LogitsDiff d;
  d.rows = static_cast<int64_t>(ref.size()) / vocab;
  for (size_t i = 0; i < ref.size() && i < got.size(); ++i) {
    const double e = std::fabs(static_cast<double>(ref[i]) - got[i]);
    d.max_abs = std::isnan(e) ? INFINITY : std::max(d.max_abs, e);
    d.ref_scale = std::max(d.ref_scale, std::fabs(static_cast<double>(ref[i])));
  }
  if (got.size() != ref.size()) d.max_abs = INFINITY;
  for (int64_t r = 0; r < d.rows && got.size() == ref.size(); ++r) {
    const float* a = ref.data() + r * vocab;
    const float* b = got.data() + r * vocab;
    int64_t best = 0, second = -1, gbest = 0;
    for (int64_t v = 1; v < vocab; ++v) {
      if (a[v] > a[best]) second = best, best = v;
      else if (second < 0 || a[v] > a[second]) second = v;
      if (b[v] > b[gbest]) gbest = v;
    }
    const double margin = second >= 0 ? a[best] - a[second] : INFINITY;
    if (margin > 2 * d.max_abs + 1e-6 && gbest != best) ++d.argmax_mismatch;
  }
  return d;
}

}  // namespace ds::cuda::testing

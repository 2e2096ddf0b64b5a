// Numerics of dscc's generated fused kernels: every fused kernel of every
// sm_90a plan found (the fixtures' plans and, when present, the benchmark
// plans at real model shapes) runs on the GPU on random bf16 inputs and is
// compared with the same fused group interpreted op by op by the CPU reference
// kernels (runtime/executor/ops.h, float32 on the bf16-rounded inputs): every
// result row and every KV-cache slot the group writes. Arena values keep their
// plan dtype on the GPU (bf16 activations, an f32 residual stream under
// dscc --residual-dtype f32); f32 results are held to a tighter tolerance.
//
// Plans: $DS_CUDA_TEST_PLANS (colon-separated), else <source root>/.deps/plans/*.sm_90a.dsplan
// (tools/gpu/make_plans.sh). GTEST_SKIPs without a GPU or without plans.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/ref/paged_attention.h"
#include "runtime/common/dtype.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/cuda/kernel_library.h"
#include "runtime/executor/ops.h"
#include "runtime/plan/plan_reader.h"

namespace ds::cuda {
namespace {

std::vector<std::string> test_plans() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("DS_CUDA_TEST_PLANS"); env && *env) {
    std::stringstream ss(env);
    for (std::string p; std::getline(ss, p, ':');)
      if (!p.empty()) out.push_back(p);
    return out;
  }
  const std::filesystem::path dir = std::filesystem::path(DS_SOURCE_ROOT) / ".deps" / "plans";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.ends_with(".sm_90a.dsplan")) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

int64_t row_width(const plan::Buffer& b) {
  int64_t w = 1;
  if (b.row_shape())
    for (int64_t d : *b.row_shape()) w *= d;
  return w;
}

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_bf16(v[i]);
  return out;
}

// Random values already rounded to bf16 (so CPU and GPU see the same inputs).
std::vector<float> random_bf16_values(size_t n, float lo, float hi, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = bf16_to_f32(f32_to_bf16(d(rng)));
  return v;
}

DeviceBuffer upload(const void* data, size_t bytes) {
  auto b = DeviceBuffer::allocate(std::max<size_t>(bytes, 16));
  EXPECT_TRUE(b.ok()) << b.status().message();
  if (!b.ok()) std::abort();
  if (bytes) EXPECT_TRUE(b->copy_from_host(data, bytes).ok());
  return std::move(b).value();
}

struct Error {
  double max_abs = 0, max_rel = 0;
  int64_t bad = 0;
  std::string first_bad;
};

// Values of an arena buffer in its plan dtype (bf16 or f32) and back.
std::vector<uint8_t> encode(const std::vector<float>& v, DType dt) {
  std::vector<uint8_t> out(v.size() * dtype_size(dt));
  if (dt == DType::kF32) {
    std::memcpy(out.data(), v.data(), out.size());
  } else {
    auto bf = to_bf16(v);
    std::memcpy(out.data(), bf.data(), out.size());
  }
  return out;
}

void compare(const std::vector<float>& cpu, const std::vector<float>& gpu, const std::string& what, Error& e,
             DType dt = DType::kBF16) {
  // bf16 output rounding (2^-8 relative) plus f32 op-order differences; f32
  // outputs only the latter.
  const double tol = dt == DType::kF32 ? 1e-4 : 1e-2;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double c = cpu[i], g = gpu[i];
    const double abs_err = std::fabs(c - g);
    e.max_abs = std::max(e.max_abs, abs_err);
    e.max_rel = std::max(e.max_rel, abs_err / std::max(1e-3, std::fabs(c)));
    if (!(abs_err <= tol + tol * std::fabs(c))) {
      if (e.bad++ == 0) e.first_bad = StrCat() << what << "[" << i << "]: cpu " << c << " gpu " << g;
    }
  }
}

// Runs the fused kernel of instruction `ins` on T tokens on the GPU and on the CPU.
void check_instruction(const LoadedPlan& lp, const plan::Instr& ins, int64_t T, std::mt19937& rng) {
  const plan::Plan& p = lp.plan();
  const plan::Kernel& k = *p.kernels()->Get(ins.kernel());
  const std::string kname = k.name()->str();
  SCOPED_TRACE(std::string(StrCat() << lp.origin() << " kernel '" << kname << "' T=" << T));
  auto loaded = LoadedKernel::load(*k.generated(), kname);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();

  const int64_t page = p.kv_cache()->page_size();
  const int64_t max_pos = std::max<int64_t>(p.model()->max_model_len(), T);
  std::vector<int32_t> positions(static_cast<size_t>(T));
  for (auto& x : positions) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(max_pos));

  // One sequence of T fresh tokens over randomly permuted pages.
  const int64_t num_pages = (T + page - 1) / page + 2;
  std::vector<int32_t> pages(static_cast<size_t>(num_pages));
  for (int64_t i = 0; i < num_pages; ++i) pages[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  std::shuffle(pages.begin(), pages.end(), rng);
  std::vector<int32_t> slots(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) slots[static_cast<size_t>(t)] = pages[static_cast<size_t>(t / page)] * page + t % page;
  ref::AttnSequence seq{0, T, 0, pages.data(), num_pages};

  KvGeometryView kvg;
  for (const auto* l : *p.kv_cache()->layers()) {
    kvg.num_kv_heads.push_back(l->num_kv_heads());
    kvg.k_dim.push_back(l->k_dim());
    kvg.v_dim.push_back(l->v_dim());
  }
  std::vector<ref::PagedKvLayer> cpu_kv(kvg.num_kv_heads.size());

  // Storage that must stay put while PreparedOps point into it.
  std::vector<std::vector<float>> host_f32;
  std::vector<WeightTensor> weights;
  weights.reserve(16);
  std::vector<std::vector<uint16_t>> weight_bf16;
  std::vector<DeviceBuffer> dev;
  std::vector<void*> pointers;
  host_f32.reserve(64);
  weight_bf16.reserve(16);

  std::vector<Val> values;
  for (size_t j = 0; ins.inputs() && j < ins.inputs()->size(); ++j) {
    const plan::ValueRef& r = *ins.inputs()->Get(j);
    Val v;
    if (r.kind() == plan::ValueKind::arena) {
      const plan::Buffer& buf = *p.arena()->buffers()->Get(r.index());
      const DType dt = static_cast<DType>(buf.dtype());
      ASSERT_TRUE(dt == DType::kBF16 || dt == DType::kF32) << buf.name()->str() << " is " << dtype_name(dt);
      const int64_t w = row_width(buf);
      host_f32.push_back(random_bf16_values(static_cast<size_t>(T * w), -2.f, 2.f, rng));
      auto bytes = encode(host_f32.back(), dt);
      dev.push_back(upload(bytes.data(), bytes.size()));
      v.kind = Val::kAct;
      v.act = host_f32.back().data();
      v.width = w;
    } else if (r.kind() == plan::ValueKind::weight) {
      const plan::Weight& pw = *p.weights()->Get(r.index());
      ASSERT_EQ(static_cast<DType>(pw.dtype()), DType::kBF16) << pw.name()->str();
      WeightTensor wt;
      wt.name = pw.name()->str();
      wt.dtype = DType::kBF16;
      wt.shape.assign(pw.shape()->begin(), pw.shape()->end());
      auto vals = random_bf16_values(static_cast<size_t>(wt.numel()), 0.5f, 1.5f, rng);
      weight_bf16.push_back(to_bf16(vals));
      wt.data = reinterpret_cast<const uint8_t*>(weight_bf16.back().data());
      wt.nbytes = weight_bf16.back().size() * 2;
      dev.push_back(upload(wt.data, wt.nbytes));
      weights.push_back(wt);
      v.kind = Val::kWeight;
      v.weight = &weights.back();
    } else if (r.kind() == plan::ValueKind::input && r.index() == 1) {
      dev.push_back(upload(positions.data(), positions.size() * 4));
      v.kind = Val::kPositions;
    } else {
      FAIL() << "unexpected fused-group input kind " << static_cast<int>(r.kind());
    }
    pointers.push_back(dev.back().data());
    values.push_back(v);
  }

  // Results (arena outputs first), then a (K, V) pool pair per kv_cache output.
  const size_t nres = k.results() ? k.results()->size() : 0;
  std::vector<std::vector<float>> cpu_results(nres);
  std::vector<int64_t> result_width(nres);
  std::vector<size_t> result_dev(nres);
  std::vector<DType> result_dtype(nres);
  for (size_t r = 0; r < nres; ++r) {
    const plan::ValueRef& o = *ins.outputs()->Get(static_cast<uint32_t>(r));
    ASSERT_EQ(o.kind(), plan::ValueKind::arena);
    const plan::Buffer& buf = *p.arena()->buffers()->Get(o.index());
    result_dtype[r] = static_cast<DType>(buf.dtype());
    ASSERT_TRUE(result_dtype[r] == DType::kBF16 || result_dtype[r] == DType::kF32)
        << buf.name()->str() << " is " << dtype_name(result_dtype[r]);
    result_width[r] = row_width(buf);
    cpu_results[r].assign(static_cast<size_t>(T * result_width[r]), 0.f);
    const std::vector<float> nan(static_cast<size_t>(T * result_width[r]), std::nanf(""));  // poison
    auto poison = encode(nan, result_dtype[r]);
    dev.push_back(upload(poison.data(), poison.size()));
    result_dev[r] = dev.size() - 1;
    pointers.push_back(dev.back().data());
  }
  struct KvOut {
    int layer;
    std::vector<float> k, v;
    size_t dk, dv;  // indices in dev
    int64_t kw, vw;
  };
  std::vector<KvOut> kv_outs;
  kv_outs.reserve(8);
  for (size_t o = nres; ins.outputs() && o < ins.outputs()->size(); ++o) {
    const plan::ValueRef& r = *ins.outputs()->Get(static_cast<uint32_t>(o));
    ASSERT_EQ(r.kind(), plan::ValueKind::kv_cache);
    const size_t l = static_cast<size_t>(r.index());
    KvOut kv;
    kv.layer = r.index();
    kv.kw = kvg.num_kv_heads[l] * kvg.k_dim[l];
    kv.vw = kvg.num_kv_heads[l] * kvg.v_dim[l];
    kv.k.assign(static_cast<size_t>(num_pages * page * kv.kw), 0.f);
    kv.v.assign(static_cast<size_t>(num_pages * page * kv.vw), 0.f);
    std::vector<uint16_t> zk(kv.k.size(), 0), zv(kv.v.size(), 0);
    dev.push_back(upload(zk.data(), zk.size() * 2));
    kv.dk = dev.size() - 1;
    pointers.push_back(dev.back().data());
    dev.push_back(upload(zv.data(), zv.size() * 2));
    kv.dv = dev.size() - 1;
    pointers.push_back(dev.back().data());
    kv_outs.push_back(std::move(kv));
  }
  for (KvOut& kv : kv_outs) {
    ref::PagedKvLayer& L = cpu_kv[static_cast<size_t>(kv.layer)];
    L.k = kv.k.data();
    L.v = kv.v.data();
    L.dtype = DType::kF32;
    L.num_pages = num_pages;
    L.page_size = page;
    L.num_kv_heads = kvg.num_kv_heads[static_cast<size_t>(kv.layer)];
    L.k_dim = kvg.k_dim[static_cast<size_t>(kv.layer)];
    L.v_dim = kvg.v_dim[static_cast<size_t>(kv.layer)];
  }

  // CPU: interpret the group op by op.
  std::vector<PreparedOp> ops;
  ops.reserve(k.fused_ops()->size());
  std::vector<int> result_of(k.fused_ops()->size(), -1);
  for (size_t r = 0; r < nres; ++r) result_of[static_cast<size_t>(k.results()->Get(static_cast<uint32_t>(r)))] = static_cast<int>(r);
  size_t next_kv = 0;
  std::vector<std::vector<float>> scratch;
  scratch.reserve(k.fused_ops()->size());
  for (size_t f = 0; f < k.fused_ops()->size(); ++f) {
    const plan::FusedOp& fo = *k.fused_ops()->Get(static_cast<uint32_t>(f));
    PreparedOp op;
    op.where = StrCat() << kname << " fused_ops[" << f << "] (" << fo.op()->str() << ")";
    auto kind = op_kind_from_name(fo.op()->str());
    ASSERT_TRUE(kind.ok()) << kind.status().message();
    op.kind = *kind;
    for (int o : *fo.operands()) op.ins.push_back(values[static_cast<size_t>(o)]);
    Val out;
    if (op.kind == OpKind::kKvCacheWrite) {
      ASSERT_LT(next_kv, kv_outs.size());
      out.kind = Val::kKv;
      out.kv_layer = kv_outs[next_kv++].layer;
    } else if (result_of[f] >= 0) {
      out.kind = Val::kAct;
      out.act = cpu_results[static_cast<size_t>(result_of[f])].data();
      out.width = result_width[static_cast<size_t>(result_of[f])];
    } else {
      int64_t w = 1;
      for (int64_t d : *fo.row_shape()) w *= d;
      scratch.emplace_back(static_cast<size_t>(T * w));
      out.kind = Val::kAct;
      out.act = scratch.back().data();
      out.width = w;
    }
    op.outs.push_back(out);
    Status st = prepare_op(op, fo.attrs(), kvg, p.model()->vocab_size());
    ASSERT_TRUE(st.ok()) << st.message();
    values.push_back(op.outs[0]);
    ops.push_back(std::move(op));
  }
  StepContext ctx;
  ctx.num_tokens = T;
  ctx.positions = positions.data();
  ctx.seqs = &seq;
  ctx.num_seqs = 1;
  ctx.kv_layers = &cpu_kv;
  for (const PreparedOp& op : ops) {
    Status st = op.run(ctx);
    ASSERT_TRUE(st.ok()) << st.message();
  }

  // GPU.
  auto stream = Stream::create();
  ASSERT_TRUE(stream.ok());
  DeviceBuffer dslots = upload(slots.data(), slots.size() * 4);
  DsStepArgs args{T, static_cast<const int*>(dslots.data())};
  DeviceBuffer dargs = upload(&args, sizeof(args));
  Status st = loaded->launch(stream->get(), T, static_cast<const DsStepArgs*>(dargs.data()), pointers);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(stream->synchronize().ok());

  auto download = [&](size_t d, size_t n, DType dt = DType::kBF16) {
    std::vector<float> f(n);
    if (dt == DType::kF32) {
      EXPECT_TRUE(dev[d].copy_to_host(f.data(), n * 4).ok());
      return f;
    }
    std::vector<uint16_t> bf(n);
    EXPECT_TRUE(dev[d].copy_to_host(bf.data(), n * 2).ok());
    for (size_t i = 0; i < n; ++i) f[i] = bf16_to_f32(bf[i]);
    return f;
  };
  Error err;
  for (size_t r = 0; r < nres; ++r)
    compare(cpu_results[r], download(result_dev[r], cpu_results[r].size(), result_dtype[r]),
            StrCat() << "result " << r << " (" << dtype_name(result_dtype[r]) << ")", err, result_dtype[r]);
  for (const KvOut& kv : kv_outs) {
    compare(kv.k, download(kv.dk, kv.k.size()), StrCat() << "K layer " << kv.layer, err);
    compare(kv.v, download(kv.dv, kv.v.size()), StrCat() << "V layer " << kv.layer, err);
  }
  std::printf("[fused] %-28s %-44s T=%-5lld max_abs %.3g max_rel %.3g\n",
              std::filesystem::path(lp.origin()).filename().string().c_str(), kname.c_str(),
              static_cast<long long>(T), err.max_abs, err.max_rel);
  EXPECT_EQ(err.bad, 0) << err.bad << " elements out of tolerance; first: " << err.first_bad;
}

TEST(FusedKernelNumerics, EveryGeneratedKernelMatchesTheCpuReference) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device/driver";
  const auto plans = test_plans();
  if (plans.empty()) GTEST_SKIP() << "no sm_90a plans (run tools/gpu/make_plans.sh or set DS_CUDA_TEST_PLANS)";
  std::mt19937 rng(20261128);
  int checked = 0;
  for (const std::string& path : plans) {
    auto lp = LoadedPlan::from_file(path);
    ASSERT_TRUE(lp.ok()) << lp.status().message();
    const plan::Plan& p = (*lp)->plan();
    std::vector<bool> seen(p.kernels()->size(), false);
    for (const plan::Instr* ins : *p.program()) {
      const plan::Kernel& k = *p.kernels()->Get(ins->kernel());
      if (k.kind() != plan::KernelKind::fused || seen[ins->kernel()]) continue;
      seen[ins->kernel()] = true;
      for (int64_t T : {1, 7, 130}) {
        check_instruction(**lp, *ins, T, rng);
        if (HasFatalFailure()) return;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace ds::cuda

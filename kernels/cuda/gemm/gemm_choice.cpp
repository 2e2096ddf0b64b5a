// kAuto's kernel choice for GEMV-sized problems (gemm_choice.h).
#include "kernels/cuda/gemm/gemm_choice.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "kernels/cuda/gemm/gemv.h"
#include "runtime/cuda/pdl.h"

namespace ds::cuda::detail {

bool ProblemKey::operator==(const ProblemKey& o) const {
  return m == o.m && n == o.n && k == o.k && ldx == o.ldx && ldy == o.ldy && ld_src == o.ld_src && out == o.out &&
         bias == o.bias && residual == o.residual && residual_in_place == o.residual_in_place && norm == o.norm &&
         align == o.align && swiglu == o.swiglu && ld_swiglu == o.ld_swiglu && deferred == o.deferred;
}

size_t ProblemKeyHash::operator()(const ProblemKey& key) const {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
  mix(static_cast<uint64_t>(key.m));
  mix(static_cast<uint64_t>(key.n));
  mix(static_cast<uint64_t>(key.k));
  mix(static_cast<uint64_t>(key.ldx));
  mix(static_cast<uint64_t>(key.ldy));
  mix(static_cast<uint64_t>(key.ld_src));
  mix(static_cast<uint64_t>(key.out) << 8 | (key.bias ? 1u : 0u) | (key.residual ? 2u : 0u) |
      (key.residual_in_place ? 4u : 0u) | static_cast<uint64_t>(key.norm) << 3 | (key.swiglu ? 64u : 0u) | static_cast<uint64_t>(key.deferred) << 7);
  mix(static_cast<uint64_t>(key.ld_swiglu));
  mix(key.align);
  return static_cast<size_t>(h);
}

uint32_t pointer_alignment(const void* p) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(p);
  for (uint32_t a = 16; a > 2; a /= 2)
    if (v % a == 0) return a;
  return 2;
}

ProblemKey make_problem_key(const GemmArgs& a) {
  ProblemKey key;
  key.m = a.m;
  key.n = a.n;
  key.k = a.k;
  key.ldx = a.ldx;
  key.ldy = a.ldy;
  key.out = a.out_dtype;
  key.bias = a.bias != nullptr;
  key.residual = a.residual != nullptr;
  key.residual_in_place = a.residual != nullptr && a.residual == a.y;
  uint32_t align = std::min({pointer_alignment(a.x), pointer_alignment(a.w), pointer_alignment(a.y),
                             pointer_alignment(a.bias), pointer_alignment(a.residual)});
  if (a.norm.src != nullptr) {
    key.norm = a.norm.src_dtype == DType::kF32 ? 1 : 2;
    key.ld_src = a.norm.ld_src == 0 ? a.k : a.norm.ld_src;
    key.ldx = 0;  // x is not read
    align = std::min({align, pointer_alignment(a.norm.src), pointer_alignment(a.norm.gamma)});
  }
  if (a.swiglu_out != nullptr) {
    key.swiglu = true;
    key.ld_swiglu = a.ld_swiglu == 0 ? a.n / 2 : a.ld_swiglu;
    key.ldy = 0;  // y is not written
  }
  key.deferred = static_cast<uint8_t>((a.norm_out.slot != nullptr || a.norm_out.x != nullptr ? 1 : 0) |
                                      (a.norm_in.slot != nullptr ? 2 : 0));
  key.align = align;
  return key;
}

const char* choice_name(Choice c) {
  switch (c) {
    case Choice::kCublasLt: return "cublaslt";
    case Choice::kGemvWarp: return "gemv-warp";
    case Choice::kGemvWarpDeep: return "gemv-warp-deep";
    case Choice::kGemvAsync: return "gemv-async";
    case Choice::kGemvWarpS1: return "gemv-warp-s1";
    case Choice::kGemvWarpS2: return "gemv-warp-s2";
    case Choice::kGemvWarpS4: return "gemv-warp-s4";
    case Choice::kGemvWarpDeepS2: return "gemv-warp-deep-s2";
    case Choice::kGemvWarpDeepS4: return "gemv-warp-deep-s4";
    case Choice::kGemvBulkW8: return "gemv-bulk-w8";
    case Choice::kGemvBulkW16: return "gemv-bulk-w16";
    case Choice::kGemvBulkW16S6: return "gemv-bulk-w16-6k";
    case Choice::kGemvMma: break;
  }
  return "gemv-mma";
}

int choice_warp_splits(Choice c) {
  switch (c) {
    case Choice::kGemvWarp: return 0;
    case Choice::kGemvWarpS1: return 1;
    case Choice::kGemvWarpS2: return 2;
    case Choice::kGemvWarpS4: return 4;
    case Choice::kGemvWarpDeepS2: return 2;
    case Choice::kGemvWarpDeepS4: return 4;
    default: return -1;
  }
}

namespace {
constexpr Choice kAllChoices[] = {Choice::kCublasLt,   Choice::kGemvWarp,   Choice::kGemvWarpDeep,
                                  Choice::kGemvAsync,  Choice::kGemvMma,    Choice::kGemvWarpS1,
                                  Choice::kGemvWarpS2, Choice::kGemvWarpS4, Choice::kGemvWarpDeepS2,
                                  Choice::kGemvWarpDeepS4, Choice::kGemvBulkW8, Choice::kGemvBulkW16,
                                  Choice::kGemvBulkW16S6};
}  // namespace

bool is_bulk_choice(Choice c) {
  return c == Choice::kGemvBulkW8 || c == Choice::kGemvBulkW16 || c == Choice::kGemvBulkW16S6;
}

GemvBulkConfig bulk_config(Choice c) {
  GemvBulkConfig config;
  config.warps = c == Choice::kGemvBulkW8 ? 8 : 16;
  config.slot_kib = c == Choice::kGemvBulkW16S6 ? 6 : 8;
  return config;
}

bool choice_can_run(Choice c, int64_t m, bool norm, bool swiglu, bool deferred) {
  if (deferred && (m > kDeferredNormMaxM || c == Choice::kCublasLt || c == Choice::kGemvMma || c == Choice::kGemvAsync))
    return false;
  // The RMSNorm prologue with the SwiGLU epilogue: only the bulk GEMV (it stages x once per block).
  if (norm && swiglu && !is_bulk_choice(c)) return false;
  switch (c) {
    case Choice::kCublasLt:
    case Choice::kGemvMma: return !norm && !swiglu;
    case Choice::kGemvWarp:
    case Choice::kGemvWarpS1:
    case Choice::kGemvWarpS2:
    case Choice::kGemvWarpS4:
    case Choice::kGemvAsync: return m <= (norm ? kNormPrologueMaxM : kGemvWarpMaxM);
    case Choice::kGemvWarpDeep:
    case Choice::kGemvWarpDeepS2:
    case Choice::kGemvWarpDeepS4: return m == 1;
    case Choice::kGemvBulkW8:
    case Choice::kGemvBulkW16:
    case Choice::kGemvBulkW16S6: return m == 1 && !deferred;
  }
  return false;
}

bool choice_can_run(Choice c, const GemmArgs& a) {
  if (!choice_can_run(c, a.m, a.norm.src != nullptr, a.swiglu_out != nullptr, make_problem_key(a).deferred != 0))
    return false;
  if (is_bulk_choice(c))
    return pdl_device_ok() && gemv_bulk_unsupported_reason(a).empty();
  return true;
}

bool gemv_bulk_candidates_on() {
  static const bool on = [] {
    const char* e = std::getenv("DSRT_GEMV_BULK");
    return !(e != nullptr && std::strcmp(e, "0") == 0);
  }();
  return on && pdl_device_ok();
}

namespace {

bool choice_by_name(const std::string& name, Choice* out) {
  for (Choice c : kAllChoices)
    if (name == choice_name(c)) {
      *out = c;
      return true;
    }
  return false;
}

const ForcedKernels& env_forced() {
  static const ForcedKernels forced = [] {
    ForcedKernels f = parse_forced_kernels(std::getenv("DSRT_GEMM_KERNEL"));
    if (!f.error.empty()) std::fprintf(stderr, "dsrt: ignoring DSRT_GEMM_KERNEL: %s\n", f.error.c_str());
    return f;
  }();
  return forced;
}

}  // namespace

ForcedKernels parse_forced_kernels(const char* text) {
  ForcedKernels f;
  if (text == nullptr) return f;
  const std::string s(text);
  size_t pos = 0;
  while (pos <= s.size() && !s.empty()) {
    const size_t comma = std::min(s.find(',', pos), s.size());
    const std::string item = s.substr(pos, comma - pos);
    pos = comma + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    Choice c;
    if (eq == std::string::npos) {
      if (!choice_by_name(item, &c)) return ForcedKernels{.error = "'" + item + "' is not a kernel name"};
      f.all_set = true, f.all = c;
      continue;
    }
    const std::string shape = item.substr(0, eq), name = item.substr(eq + 1);
    const size_t x = shape.find('x');
    ForcedKernels::Entry e;
    char* end = nullptr;
    const bool shape_ok = x != std::string::npos && x > 0 && x + 1 < shape.size() &&
                          shape.find_first_not_of("0123456789x") == std::string::npos && shape.find('x', x + 1) == std::string::npos;
    if (shape_ok) {
      e.n = std::strtoll(shape.c_str(), &end, 10);
      e.k = std::strtoll(shape.c_str() + x + 1, &end, 10);
    }
    if (!shape_ok || e.n <= 0 || e.k <= 0)
      return ForcedKernels{.error = "'" + item + "': expected NxK=<kernel> with positive N and K"};
    if (!choice_by_name(name, &e.choice)) return ForcedKernels{.error = "'" + name + "' is not a kernel name"};
    f.by_shape.push_back(e);
  }
  return f;
}

bool env_forced_kernel(Choice* out) {
  const ForcedKernels& f = env_forced();
  if (!f.all_set) return false;
  *out = f.all;
  return true;
}

// DSRT_GEMM_KERNEL (benchmarks, A/B runs): kAuto uses the forced kernel for the
// GEMV-eligible problems it names and can run instead of timing the candidates.
bool forced_choice(const GemmArgs& a, Choice* out) {
  const ForcedKernels& f = env_forced();
  for (const ForcedKernels::Entry& e : f.by_shape)
    if (e.n == a.n && e.k == a.k) {
      if (!choice_can_run(e.choice, a)) return false;
      *out = e.choice;
      return true;
    }
  if (!f.all_set || !choice_can_run(f.all, a)) return false;
  *out = f.all;
  return true;
}

namespace {
// The bulk GEMV's choices that can run `a`, unless DSRT_GEMV_BULK=0.
void append_bulk_candidates(const GemmArgs& a, std::vector<Choice>& out) {
  if (!gemv_bulk_candidates_on()) return;
  for (Choice c : {Choice::kGemvBulkW8, Choice::kGemvBulkW16, Choice::kGemvBulkW16S6})
    if (choice_can_run(c, a)) out.push_back(c);
}
}  // namespace

// Long-k problems at m <= 2 (the MLP down projection, k >= 4n) take the warp
// GEMV while PDL is on: alone or back to back cuBLASLt is as fast or faster
// (H200: 7B down 39 vs 42 us), but inside a decode layer the GEMV streams its
// first weights while the kernel before it runs and the whole layer was faster
// with it (ds_decode_layer_bench, H200, PDL: 7B 152.4 vs 160.9 us, 32B 281.5
// vs 292.5 us per layer). Only its warps per row are timed: the wave-fill rule
// gave the 7B down 1 warp per row (48.5 us in a PDL chain), 4 take 38.1 us.
std::vector<Choice> layer_rule_candidates(const GemmArgs& a) {
  // The process-wide PDL setting (DSRT_PDL, device), not a thread's PdlScope:
  // every runner of the process must pick the same kernel (bit-identical results).
  if (a.m > 2 || a.k < 4 * a.n) return {};  // measured at m = 1; the warp kernel's x reads grow with m
  if (pdl_env_off() || !pdl_device_ok()) return {};
  std::vector<Choice> out;
  for (Choice c : {Choice::kGemvWarpS1, Choice::kGemvWarpS2, Choice::kGemvWarpS4})
    if (choice_can_run(c, a)) out.push_back(c);
  // The bulk GEMV streams its first stages before its PDL wait too (the
  // down projections: 7B 36.2-36.4 vs warp-s4 38.2-38.5 us in PDL chains).
  append_bulk_candidates(a, out);
  return out;
}

// From the H200 report of ds_cuda_gemm_tests: the warp kernel beats cuBLASLt at
// m <= 2 on many-row shapes (gate_up, lm_head: 4.2-4.6 vs 3.9-4.4 TB/s) and on
// small ones (launch-bound); cuBLASLt wins on few-row long-k shapes and at
// m >= 4. The RMSNorm prologue or the SwiGLU epilogue alone runs on the warp
// kernels, the two together on the bulk GEMV only.
Choice static_choice(const GemmArgs& a) {
  if (a.norm.src != nullptr && a.swiglu_out != nullptr) return Choice::kGemvBulkW16;
  if (a.norm.src != nullptr || a.swiglu_out != nullptr || make_problem_key(a).deferred != 0) return Choice::kGemvWarp;
  if (a.m <= 2 && (a.n >= 16384 || a.n * a.k <= (int64_t{16} << 20))) return Choice::kGemvWarp;
  return Choice::kCublasLt;
}

std::vector<Choice> choice_candidates(const GemmArgs& a) {
  std::vector<Choice> out;
  for (Choice c : {Choice::kCublasLt, Choice::kGemvMma, Choice::kGemvWarpS1, Choice::kGemvWarpS2, Choice::kGemvWarpS4,
                   Choice::kGemvAsync, Choice::kGemvWarpDeep})
    if (choice_can_run(c, a)) out.push_back(c);
  append_bulk_candidates(a, out);
  return out;
}

namespace {

struct DeviceKey {
  int device;
  ProblemKey key;
  bool operator==(const DeviceKey& o) const { return device == o.device && key == o.key; }
};
struct DeviceKeyHash {
  size_t operator()(const DeviceKey& k) const {
    return ProblemKeyHash()(k.key) ^ (static_cast<size_t>(k.device) * 0x9E3779B97F4A7C15ull);
  }
};
struct SharedChoices {
  std::mutex mu;
  std::unordered_map<DeviceKey, Choice, DeviceKeyHash> map;
};
SharedChoices& shared_choices() {
  static SharedChoices* c = new SharedChoices();  // never destroyed: runners may outlive static teardown order
  return *c;
}

}  // namespace

bool lookup_shared_choice(int device, const ProblemKey& key, Choice* out) {
  SharedChoices& shared = shared_choices();
  std::lock_guard<std::mutex> lock(shared.mu);
  auto it = shared.map.find(DeviceKey{device, key});
  if (it == shared.map.end()) return false;
  *out = it->second;
  return true;
}

Choice record_shared_choice(int device, const ProblemKey& key, Choice c) {
  SharedChoices& shared = shared_choices();
  std::lock_guard<std::mutex> lock(shared.mu);
  return shared.map.emplace(DeviceKey{device, key}, c).first->second;
}

}  // namespace ds::cuda::detail

#include "tests/runtime/test_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>

namespace ds::test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/dsrt_test.XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

namespace {

void put(std::string& out, float f, DType t) {
  switch (t) {
    case DType::kF32: out.append(reinterpret_cast<const char*>(&f), 4); break;
    case DType::kBF16: { uint16_t h = f32_to_bf16(f); out.append(reinterpret_cast<const char*>(&h), 2); break; }
    case DType::kF16: { uint16_t h = f32_to_f16(f); out.append(reinterpret_cast<const char*>(&h), 2); break; }
    case DType::kI32: { int32_t i = static_cast<int32_t>(f); out.append(reinterpret_cast<const char*>(&i), 4); break; }
    default: throw std::runtime_error("test writer: unsupported dtype");
  }
}

const char* st_name(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
    case DType::kI32: return "I32";
    default: return "?";
  }
}

}  // namespace

std::string safetensors_bytes(const std::vector<StTensor>& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const StTensor& t : tensors) {
    const size_t begin = data.size();
    for (float v : t.values) put(data, v, t.dtype);
    header[t.name] = {{"dtype", st_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  std::string h = header.dump();
  while (h.size() % 8) h += ' ';
  uint64_t n = h.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + h + data;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

std::vector<float> random_values(size_t n, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::vector<StTensor> TinyModel::checkpoint(uint64_t seed) const {
  std::vector<StTensor> ts;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float scale, float offset = 0.0f) {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    StTensor t{name, weight_dtype, shape, random_values(n, seed + ts.size() * 7919, scale)};
    for (float& x : t.values) x += offset;
    ts.push_back(std::move(t));
  };
  const int64_t q = heads * head_dim, kv = kv_heads * head_dim;
  add("model.embed_tokens.weight", {vocab, hidden}, 1.0f);
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {hidden}, 0.2f, 1.0f);
    add(p + "self_attn.q_proj.weight", {q, hidden}, 0.4f);
    add(p + "self_attn.q_proj.bias", {q}, 0.2f);
    add(p + "self_attn.k_proj.weight", {kv, hidden}, 0.4f);
    add(p + "self_attn.k_proj.bias", {kv}, 0.2f);
    add(p + "self_attn.v_proj.weight", {kv, hidden}, 0.4f);
    add(p + "self_attn.v_proj.bias", {kv}, 0.2f);
    add(p + "self_attn.o_proj.weight", {hidden, q}, 0.3f);
    add(p + "post_attention_layernorm.weight", {hidden}, 0.2f, 1.0f);
    add(p + "mlp.gate_proj.weight", {intermediate, hidden}, 0.3f);
    add(p + "mlp.up_proj.weight", {intermediate, hidden}, 0.3f);
    add(p + "mlp.down_proj.weight", {hidden, intermediate}, 0.3f);
  }
  add("model.norm.weight", {hidden}, 0.2f, 1.0f);
  if (!tied) add("lm_head.weight", {vocab, hidden}, 0.5f);
  return ts;
}

namespace {

using flatbuffers::Offset;
using AttrList = std::vector<Offset<plan::Attr>>;

struct Builder {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<Offset<plan::Weight>> weights;
  std::vector<Offset<plan::Buffer>> buffers;
  std::vector<Offset<plan::Kernel>> kernels;
  std::vector<Offset<plan::Instr>> program;
  int64_t arena_bytes = 0;
  DType wdt;
  bool cast = false;
  DType cast_dt = DType::kF32;

  Offset<plan::Attr> ai(const char* k, int64_t v) {
    return plan::CreateAttrDirect(fbb, k, plan::AttrType::int_, v);
  }
  Offset<plan::Attr> af(const char* k, double v) {
    return plan::CreateAttrDirect(fbb, k, plan::AttrType::float_, 0, v);
  }
  Offset<plan::Attr> as(const char* k, const char* v) {
    return plan::CreateAttrDirect(fbb, k, plan::AttrType::string_, 0, 0, v);
  }
  plan::ValueRef w(int i) { return plan::ValueRef(plan::ValueKind::weight, i); }
  plan::ValueRef in(int i) { return plan::ValueRef(plan::ValueKind::input, i); }
  plan::ValueRef kv(int i) { return plan::ValueRef(plan::ValueKind::kv_cache, i); }

  struct Src {
    std::string name;
    std::vector<int64_t> shape;
    int axis = -1;  // tensor-parallel slice: [(rank / divisor) * size, +size) on axis
    int64_t size = 0, divisor = 1;
  };
  int weight(const std::string& name, std::vector<int64_t> shape, const std::vector<Src>& srcs) {
    std::vector<Offset<plan::SourceTensor>> so;
    for (const Src& s : srcs)
      so.push_back(plan::CreateSourceTensorDirect(fbb, s.name.c_str(), "model.safetensors", static_cast<plan::DType>(wdt),
                                                  &s.shape, s.axis, 0, s.size, s.axis >= 0 ? s.size : 0,
                                                  s.divisor));
    weights.push_back(plan::CreateWeightDirect(fbb, name.c_str(), static_cast<plan::DType>(cast ? cast_dt : wdt), &shape, &so, 0));
    return static_cast<int>(weights.size()) - 1;
  }
  plan::ValueRef buf(const std::string& name, int64_t width) {
    std::vector<int64_t> rs{width};
    const int64_t bytes = (width * 4 + 15) / 16 * 16;
    buffers.push_back(plan::CreateBufferDirect(fbb, name.c_str(), plan::DType::f32, &rs, bytes, arena_bytes, 0, 0));
    arena_bytes += bytes;
    return plan::ValueRef(plan::ValueKind::arena, static_cast<int>(buffers.size()) - 1);
  }
  void op(const std::string& opname, AttrList attrs, std::vector<plan::ValueRef> ins, std::vector<plan::ValueRef> outs) {
    const std::string name = opname + "." + std::to_string(kernels.size());
    kernels.push_back(plan::CreateKernelDirect(fbb, name.c_str(), plan::KernelKind::builtin, ("ref." + opname).c_str(),
                                               opname.c_str(), &attrs));
    program.push_back(plan::CreateInstrDirect(fbb, static_cast<int>(kernels.size()) - 1, &ins, &outs));
  }
  Offset<plan::FusedOp> fop(const char* opname, std::vector<int> operands, AttrList attrs, std::vector<int64_t> row) {
    return plan::CreateFusedOpDirect(fbb, opname, &operands, &attrs, &row);
  }
  void fused(int num_inputs, std::vector<Offset<plan::FusedOp>> ops, std::vector<int> results,
             std::vector<plan::ValueRef> ins, std::vector<plan::ValueRef> outs) {
    const std::string name = "fused." + std::to_string(kernels.size());
    AttrList none;
    kernels.push_back(plan::CreateKernelDirect(fbb, name.c_str(), plan::KernelKind::fused, "interp", nullptr, &none,
                                               num_inputs, &ops, &results));
    program.push_back(plan::CreateInstrDirect(fbb, static_cast<int>(kernels.size()) - 1, &ins, &outs));
  }
};

}  // namespace

std::string TinyModel::plan_bytes(const std::string& checkpoint_path) const {
  Builder b;
  b.wdt = weight_dtype;
  b.cast = cast_weights;
  b.cast_dt = plan_weight_dtype;
  if (tp < 1 || heads % tp || intermediate % tp || vocab % tp || (tp <= kv_heads ? kv_heads % tp : tp % kv_heads))
    throw std::runtime_error("TinyModel: tp does not divide the model");
  const bool sharded = tp > 1;
  // Per-rank sizes.
  const int64_t hq = heads / tp, hkv = tp <= kv_heads ? kv_heads / tp : 1, kv_div = tp <= kv_heads ? 1 : tp / kv_heads;
  const int64_t q = hq * head_dim, kvw = hkv * head_dim, qkv = q + 2 * kvw;
  const int64_t inter = intermediate / tp, vr = vocab / tp;
  const int64_t fq = heads * head_dim, fkv = kv_heads * head_dim;  // full checkpoint sizes
  using Src = Builder::Src;
  auto rows = [&](const std::string& n, std::vector<int64_t> shape, int64_t size, int64_t div = 1) {
    return sharded ? Src{n, shape, 0, size, div} : Src{n, shape};
  };
  auto cols = [&](const std::string& n, std::vector<int64_t> shape, int64_t size) {
    return sharded ? Src{n, shape, 1, size} : Src{n, shape};
  };
  auto all_reduce = [&](plan::ValueRef in, const std::string& name, int64_t width) {
    if (!sharded) return in;
    plan::ValueRef out = b.buf(name, width);
    b.op("all_reduce", {b.as("group", "tp")}, {in}, {out});
    return out;
  };
  const int w_embed = b.weight("model.embed_tokens.weight", {vr, hidden},
                               {rows("model.embed_tokens.weight", {vocab, hidden}, vr)});
  auto rope_attrs = [&](int64_t nh) {
    return AttrList{b.ai("num_heads", nh), b.ai("head_dim", head_dim), b.ai("rotary_dim", head_dim), b.af("theta", theta),
                    b.as("style", "neox"), b.as("scaling", "none")};
  };
  plan::ValueRef x = b.buf("x", hidden);
  b.op("embedding", sharded ? AttrList{b.ai("vocab_parallel", 1)} : AttrList{}, {b.in(0), b.w(w_embed)}, {x});
  x = all_reduce(x, "x_sum", hidden);
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const int ln1 = b.weight(p + "input_layernorm.weight", {hidden}, {Src{p + "input_layernorm.weight", {hidden}}});
    const int wqkv = b.weight(p + "self_attn.qkv_proj.weight", {qkv, hidden},
                              {rows(p + "self_attn.q_proj.weight", {fq, hidden}, q),
                               rows(p + "self_attn.k_proj.weight", {fkv, hidden}, kvw, kv_div),
                               rows(p + "self_attn.v_proj.weight", {fkv, hidden}, kvw, kv_div)});
    const int bqkv = b.weight(p + "self_attn.qkv_proj.bias", {qkv},
                              {rows(p + "self_attn.q_proj.bias", {fq}, q), rows(p + "self_attn.k_proj.bias", {fkv}, kvw, kv_div),
                               rows(p + "self_attn.v_proj.bias", {fkv}, kvw, kv_div)});
    const int wo = b.weight(p + "self_attn.o_proj.weight", {hidden, q}, {cols(p + "self_attn.o_proj.weight", {hidden, fq}, q)});
    const int ln2 = b.weight(p + "post_attention_layernorm.weight", {hidden}, {Src{p + "post_attention_layernorm.weight", {hidden}}});
    const int wgu = b.weight(p + "mlp.gate_up_proj.weight", {2 * inter, hidden},
                             {rows(p + "mlp.gate_proj.weight", {intermediate, hidden}, inter),
                              rows(p + "mlp.up_proj.weight", {intermediate, hidden}, inter)});
    const int wd = b.weight(p + "mlp.down_proj.weight", {hidden, inter},
                            {cols(p + "mlp.down_proj.weight", {hidden, intermediate}, inter)});
    const std::string L = std::to_string(l);
    plan::ValueRef h = b.buf("h" + L, hidden), qkvb = b.buf("qkv" + L, qkv), qr = b.buf("qr" + L, q);
    b.op("rms_norm", {b.af("eps", eps)}, {x, b.w(ln1)}, {h});
    b.op("linear", {b.as("quant", "none")}, {h, b.w(wqkv), b.w(bqkv)}, {qkvb});
    if (fused) {
      // in0 = qkv, in1 = positions
      b.fused(2,
              {b.fop("slice", {0}, {b.ai("offset", 0), b.ai("size", q)}, {q}),
               b.fop("slice", {0}, {b.ai("offset", q), b.ai("size", kvw)}, {kvw}),
               b.fop("slice", {0}, {b.ai("offset", q + kvw), b.ai("size", kvw)}, {kvw}),
               b.fop("rope", {2, 1}, rope_attrs(hq), {q}),
               b.fop("rope", {3, 1}, rope_attrs(hkv), {kvw}),
               b.fop("kv_cache_write", {6, 4}, {b.ai("layer", l)}, {})},
              {3}, {qkvb, b.in(1)}, {qr, b.kv(static_cast<int>(l))});
    } else {
      plan::ValueRef qs = b.buf("q" + L, q), ks = b.buf("k" + L, kvw), vs = b.buf("v" + L, kvw), kr = b.buf("kr" + L, kvw);
      b.op("slice", {b.ai("offset", 0), b.ai("size", q)}, {qkvb}, {qs});
      b.op("slice", {b.ai("offset", q), b.ai("size", kvw)}, {qkvb}, {ks});
      b.op("slice", {b.ai("offset", q + kvw), b.ai("size", kvw)}, {qkvb}, {vs});
      b.op("rope", rope_attrs(hq), {qs, b.in(1)}, {qr});
      b.op("rope", rope_attrs(hkv), {ks, b.in(1)}, {kr});
      b.op("kv_cache_write", {b.ai("layer", l)}, {kr, vs}, {b.kv(static_cast<int>(l))});
    }
    plan::ValueRef att = b.buf("att" + L, q), o = b.buf("o" + L, hidden), x2 = b.buf("x2_" + L, hidden);
    b.op("paged_attention",
         {b.ai("layer", l), b.ai("num_heads", hq), b.ai("num_kv_heads", hkv), b.ai("head_dim", head_dim),
          b.ai("v_head_dim", head_dim), b.af("scale", 1.0 / std::sqrt(static_cast<double>(head_dim)))},
         {qr, b.kv(static_cast<int>(l))}, {att});
    b.op("linear", {}, {att, b.w(wo)}, {o});
    o = all_reduce(o, "o_sum" + L, hidden);
    b.op("add", {}, {x, o}, {x2});
    plan::ValueRef h2 = b.buf("h2_" + L, hidden), gu = b.buf("gu" + L, 2 * inter), m = b.buf("m" + L, inter);
    b.op("rms_norm", {b.af("eps", eps)}, {x2, b.w(ln2)}, {h2});
    b.op("linear", {}, {h2, b.w(wgu)}, {gu});
    if (fused) {
      b.fused(1,
              {b.fop("slice", {0}, {b.ai("offset", 0), b.ai("size", inter)}, {inter}),
               b.fop("slice", {0}, {b.ai("offset", inter), b.ai("size", inter)}, {inter}),
               b.fop("silu", {1}, {}, {inter}), b.fop("mul", {3, 2}, {}, {inter})},
              {3}, {gu}, {m});
    } else {
      plan::ValueRef g = b.buf("g" + L, inter), u = b.buf("u" + L, inter), sg = b.buf("sg" + L, inter);
      b.op("slice", {b.ai("offset", 0), b.ai("size", inter)}, {gu}, {g});
      b.op("slice", {b.ai("offset", inter), b.ai("size", inter)}, {gu}, {u});
      b.op("silu", {}, {g}, {sg});
      b.op("mul", {}, {sg, u}, {m});
    }
    plan::ValueRef d = b.buf("d" + L, hidden), x3 = b.buf("x3_" + L, hidden);
    b.op("linear", {}, {m, b.w(wd)}, {d});
    d = all_reduce(d, "d_sum" + L, hidden);
    b.op("add", {}, {x2, d}, {x3});
    x = x3;
  }
  const int wn = b.weight("model.norm.weight", {hidden}, {Src{"model.norm.weight", {hidden}}});
  const int wl = tied ? w_embed : b.weight("lm_head.weight", {vr, hidden}, {rows("lm_head.weight", {vocab, hidden}, vr)});
  plan::ValueRef n = b.buf("final", hidden);
  b.op("rms_norm", {b.af("eps", eps)}, {x, b.w(wn)}, {n});
  const plan::ValueRef out0(plan::ValueKind::output, 0);
  if (sharded) {
    plan::ValueRef part = b.buf("logits_part", vr);
    b.op("logits", {}, {n, b.w(wl), b.in(2)}, {part});
    b.op("all_gather", {b.as("group", "tp"), b.ai("axis", -1)}, {part}, {out0});
  } else {
    b.op("logits", {}, {n, b.w(wl), b.in(2)}, {out0});
  }

  auto& fbb = b.fbb;
  auto rope = plan::CreateRopeConfig(fbb, theta, plan::RopeStyle::neox, static_cast<int>(head_dim));
  auto model = plan::CreateModelInfoDirect(fbb, "Qwen2ForCausalLM", "qwen2", "tiny", checkpoint_path.c_str(), hidden,
                                           intermediate, layers, heads, kv_heads, head_dim, vocab, max_model_len,
                                           static_cast<float>(eps), tied, rope, "{}");
  std::vector<int> eos{static_cast<int>(vocab - 1)};
  auto tok = plan::CreateTokenizerInfoDirect(fbb, tokenizer_json.c_str(), tokenizer_config_json.c_str(),
                                             chat_template.c_str(), -1, &eos);
  auto gen = plan::CreateGenerationDefaultsDirect(fbb, false, 1.0f, 1.0f, -1, 0.0f, 1.0f, &eos);
  auto arena = plan::CreateArenaDirect(fbb, 16, b.arena_bytes, &b.buffers);
  std::vector<Offset<plan::KvCacheLayer>> kl;
  for (int64_t l = 0; l < layers; ++l)
    kl.push_back(plan::CreateKvCacheLayer(fbb, static_cast<int>(head_dim), static_cast<int>(head_dim), static_cast<int>(hkv)));
  auto kv = plan::CreateKvCacheLayoutDirect(fbb, static_cast<plan::DType>(kv_dtype), static_cast<int>(page_size), "NHD", &kl);
  auto root = plan::CreatePlanDirect(fbb, format_version, "test", target.c_str(), plan::DType::f32, tp, model, tok, gen,
                                     &b.weights, arena, kv, &b.kernels, &b.program, "");
  plan::FinishPlanBuffer(fbb, root);
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

std::string one_weight_plan(const OneWeight& w, const std::string& checkpoint_path) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<Offset<plan::SourceTensor>> so;
  for (const auto& s : w.sources)
    so.push_back(plan::CreateSourceTensorDirect(fbb, s.name.c_str(), s.file.c_str(), static_cast<plan::DType>(s.dtype),
                                                &s.shape, s.slice_axis, s.slice_start, s.slice_size, s.slice_rank_stride,
                                                s.slice_rank_divisor));
  std::vector<Offset<plan::Weight>> weights{
      plan::CreateWeightDirect(fbb, w.name.c_str(), static_cast<plan::DType>(w.dtype), &w.shape, &so, w.concat_axis)};
  const int64_t width = w.shape.size() == 2 ? w.shape[1] : 1;
  std::vector<int64_t> rs{width};
  std::vector<Offset<plan::Buffer>> bufs{
      plan::CreateBufferDirect(fbb, "x", plan::DType::f32, &rs, (width * 4 + 15) / 16 * 16, 0, 0, 0)};
  auto arena = plan::CreateArenaDirect(fbb, 16, (width * 4 + 15) / 16 * 16, &bufs);
  std::vector<Offset<plan::KvCacheLayer>> kl{plan::CreateKvCacheLayer(fbb, 4, 4, 1)};
  auto kv = plan::CreateKvCacheLayoutDirect(fbb, plan::DType::f32, 4, "NHD", &kl);
  std::vector<Offset<plan::Attr>> none;
  std::vector<Offset<plan::Kernel>> kernels{
      plan::CreateKernelDirect(fbb, "embed", plan::KernelKind::builtin, "ref.embedding", "embedding", &none)};
  std::vector<plan::ValueRef> ins{plan::ValueRef(plan::ValueKind::input, 0), plan::ValueRef(plan::ValueKind::weight, 0)};
  std::vector<plan::ValueRef> outs{plan::ValueRef(plan::ValueKind::arena, 0)};
  std::vector<Offset<plan::Instr>> program{plan::CreateInstrDirect(fbb, 0, &ins, &outs)};
  auto model = plan::CreateModelInfoDirect(fbb, "X", "x", "x", checkpoint_path.c_str(), 1, 1, 1, 1, 1, 4,
                                           w.shape.empty() ? 1 : static_cast<int>(w.shape[0]), 16);
  auto root = plan::CreatePlanDirect(fbb, 2, "test", "cpu", plan::DType::f32, w.tp_size, model, 0, 0, &weights, arena, kv,
                                     &kernels, &program);
  plan::FinishPlanBuffer(fbb, root);
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

}  // namespace ds::test

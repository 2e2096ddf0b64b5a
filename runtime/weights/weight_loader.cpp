#include "runtime/weights/weight_loader.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <thread>

#include "runtime/weights/dummy_init.h"

namespace ds {
namespace {

bool is_float(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF8E4M3;
}

float load_float(const uint8_t* p, DType t) {
  switch (t) {
    case DType::kF32: { float f; std::memcpy(&f, p, 4); return f; }
    case DType::kF16: { uint16_t h; std::memcpy(&h, p, 2); return f16_to_f32(h); }
    case DType::kBF16: { uint16_t h; std::memcpy(&h, p, 2); return bf16_to_f32(h); }
    case DType::kF8E4M3: return f8e4m3_to_f32(*p);
    default: return 0.0f;
  }
}

void store_float(float f, uint8_t* p, DType t) {
  switch (t) {
    case DType::kF32: std::memcpy(p, &f, 4); break;
    case DType::kF16: { uint16_t h = f32_to_f16(f); std::memcpy(p, &h, 2); break; }
    case DType::kBF16: { uint16_t h = f32_to_bf16(f); std::memcpy(p, &h, 2); break; }
    case DType::kF8E4M3: *p = f32_to_f8e4m3(f); break;
    default: break;
  }
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t prod(const std::vector<int64_t>& s, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t i = begin; i < end; ++i) n *= s[i];
  return n;
}

// Copies the (sliced) source into a contiguous buffer of the source dtype.
std::vector<uint8_t> slice_source(const uint8_t* data, const std::vector<int64_t>& shape, DType dtype,
                                  int axis, int64_t start, int64_t size) {
  const size_t es = dtype_size(dtype);
  const int64_t outer = prod(shape, 0, axis);
  const int64_t inner = prod(shape, axis + 1, shape.size()) * static_cast<int64_t>(es);
  std::vector<uint8_t> out(static_cast<size_t>(outer * size * inner));
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(out.data() + o * size * inner, data + (o * shape[axis] + start) * inner, static_cast<size_t>(size * inner));
  return out;
}

}  // namespace

Result<LoadFormat> parse_load_format(const std::string& s) {
  if (s == "auto") return LoadFormat::kAuto;
  if (s == "safetensors") return LoadFormat::kSafetensors;
  if (s == "dummy") return LoadFormat::kDummy;
  return Status::Error("unknown load format '" + s + "' (expected auto, safetensors or dummy)");
}

Status convert_elements(const void* src, DType src_dtype, void* dst, DType dst_dtype, size_t n) {
  if (src_dtype == dst_dtype) {
    std::memcpy(dst, src, n * dtype_size(src_dtype));
    return Status::Ok();
  }
  if (!is_float(src_dtype) || !is_float(dst_dtype))
    return Status::Error(StrCat() << "cannot convert " << dtype_name(src_dtype) << " to " << dtype_name(dst_dtype));
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  const size_t ss = dtype_size(src_dtype), ds = dtype_size(dst_dtype);
  for (size_t i = 0; i < n; ++i) store_float(load_float(s + i * ss, src_dtype), d + i * ds, dst_dtype);
  return Status::Ok();
}

size_t LoadedWeights::owned_bytes() const {
  size_t n = 0;
  for (const auto& b : owned_) n += b.size();
  return n;
}

std::vector<int64_t> SourceView::sliced_shape() const {
  std::vector<int64_t> s = shape;
  if (slice_axis >= 0) s[static_cast<size_t>(slice_axis)] = slice_size;
  return s;
}

Status fill_dummy_host(void* dst, DType dtype, size_t n, uint64_t key, float scale) {
  if (!is_float(dtype))
    return Status::Error(StrCat() << "dummy init needs a floating dtype, not " << dtype_name(dtype));
  const size_t es = dtype_size(dtype);
  auto* out = static_cast<uint8_t*>(dst);
  auto fill = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) store_float(dummy_weight_value(key, i, scale), out + i * es, dtype);
  };
  constexpr size_t kPerThread = size_t{1} << 20;  // below this, threads cost more than they save
  const size_t hw = std::max(1u, std::thread::hardware_concurrency());
  const size_t nthreads = std::min<size_t>(std::min<size_t>(hw, 8), (n + kPerThread - 1) / kPerThread);
  if (nthreads <= 1) {
    fill(0, n);
    return Status::Ok();
  }
  std::vector<std::thread> threads;
  const size_t per = (n + nthreads - 1) / nthreads;
  for (size_t t = 0; t < nthreads; ++t) {
    const size_t b = t * per, e = std::min(n, b + per);
    if (b < e) threads.emplace_back(fill, b, e);
  }
  for (std::thread& th : threads) th.join();
  return Status::Ok();
}

Result<std::string> plan_checkpoint_dir(const LoadedPlan& lp, const WeightLoadOptions& opt) {
  std::string dir = opt.model_path;
  if (dir.empty() && lp->model() && lp->model()->checkpoint_path()) dir = lp->model()->checkpoint_path()->str();
  if (dir.empty())
    return Status::Error("the plan has no checkpoint_path; pass --model-path DIR (or --load-format dummy)");
  return dir;
}

Result<std::vector<SourceView>> resolve_weight_sources(const Checkpoint& ck, const plan::Weight& w, int tp_rank,
                                                       bool with_data) {
  const std::string wctx = "weight '" + w.name()->str() + "'";
  std::vector<SourceView> out;
  for (const plan::SourceTensor* s : *w.sources()) {
    const std::string name = s->name()->str();
    const std::string file = s->file()->str();
    const SafetensorsFile* sf = nullptr;
    auto fr = ck.file(file);
    if (fr.ok()) {
      sf = fr.value();
    } else {
      // --model-path may point to a checkpoint sharded differently.
      auto other = ck.file_of(name);
      if (!other.ok())
        return Status::Error(StrCat() << wctx << ": tensor '" << name << "' (expected in " << file
                                      << ") not found in checkpoint " << ck.dir());
      DS_ASSIGN_OR_RETURN(sf, ck.file(other.value()));
    }
    const TensorInfo* info = sf->find(name);
    if (!info) return Status::Error(StrCat() << wctx << ": tensor '" << name << "' not found in " << sf->path());
    const DType want_dtype = static_cast<DType>(s->dtype());
    const std::vector<int64_t> want_shape(s->shape()->begin(), s->shape()->end());
    if (info->dtype != want_dtype)
      return Status::Error(StrCat() << wctx << ": tensor '" << name << "' in " << sf->path() << " has dtype "
                                    << dtype_name(info->dtype) << " but the plan expects " << dtype_name(want_dtype));
    if (info->shape != want_shape)
      return Status::Error(StrCat() << wctx << ": tensor '" << name << "' in " << sf->path() << " has shape "
                                    << shape_str(info->shape) << " but the plan expects " << shape_str(want_shape));
    SourceView v;
    v.name = name;
    v.path = sf->path();
    v.dtype = info->dtype;
    v.shape = want_shape;
    v.slice_axis = s->slice_axis();
    if (v.slice_axis >= 0) {
      v.slice_start = source_slice_start(*s, tp_rank);
      v.slice_size = s->slice_size();
      // The plan was validated for every rank; checked again against the file's dimension.
      if (v.slice_start < 0 || v.slice_start + v.slice_size > want_shape[static_cast<size_t>(v.slice_axis)])
        return Status::Error(StrCat() << wctx << ": slice [" << v.slice_start << ", " << v.slice_start + v.slice_size
                                      << ") of tensor '" << name << "' in " << sf->path() << " is out of range");
    }
    if (with_data) v.data = sf->data(*info);
    out.push_back(std::move(v));
  }
  return out;
}

Result<std::unique_ptr<LoadedWeights>> LoadedWeights::load(const LoadedPlan& lp, const WeightLoadOptions& opt) {
  const plan::Plan& p = lp.plan();
  if (opt.tp_rank < 0 || opt.tp_rank >= p.tp_size())
    return Status::Error(StrCat() << "tensor-parallel rank " << opt.tp_rank << " out of range for tp_size " << p.tp_size());
  std::unique_ptr<LoadedWeights> lw(new LoadedWeights());
  lw->options_ = opt;
  const size_t nw = p.weights() ? p.weights()->size() : 0;
  lw->weights_.resize(nw);
  for (size_t wi = 0; wi < nw; ++wi) {  // name, dtype and shape as the plan gives them
    const plan::Weight* w = p.weights()->Get(wi);
    WeightTensor& t = lw->weights_[wi];
    t.name = w->name()->str();
    t.dtype = static_cast<DType>(w->dtype());
    t.shape.assign(w->shape()->begin(), w->shape()->end());
    t.nbytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype);
  }

  if (opt.format == LoadFormat::kDummy) {
    for (size_t wi = 0; wi < nw; ++wi) {
      WeightTensor& t = lw->weights_[wi];
      if (!is_float(t.dtype))
        return Status::Error(StrCat() << "weight '" << t.name << "': dummy init needs a floating dtype, not "
                                      << dtype_name(t.dtype));
      if (!opt.materialize) continue;
      std::vector<uint8_t> buf(t.nbytes);
      DS_RETURN_IF_ERROR(fill_dummy_host(buf.data(), t.dtype, static_cast<size_t>(t.numel()),
                                         dummy_weight_key(opt.dummy_seed, t.name), opt.dummy_scale));
      t.data = buf.data();
      lw->owned_.push_back(std::move(buf));
    }
    return lw;
  }

  DS_ASSIGN_OR_RETURN(std::string dir, plan_checkpoint_dir(lp, opt));
  DS_ASSIGN_OR_RETURN(lw->checkpoint_, Checkpoint::open(dir, /*map_data=*/opt.materialize));
  lw->source_dir_ = dir;
  const Checkpoint& ck = *lw->checkpoint_;

  for (size_t wi = 0; wi < nw; ++wi) {
    const plan::Weight* w = p.weights()->Get(wi);
    WeightTensor& t = lw->weights_[wi];
    const std::string wctx = "weight '" + t.name + "'";
    DS_ASSIGN_OR_RETURN(std::vector<SourceView> sources, resolve_weight_sources(ck, *w, opt.tp_rank, opt.materialize));
    if (!opt.materialize) continue;

    struct Piece {
      const uint8_t* data;            // source-dtype bytes of the effective (sliced) source
      std::vector<uint8_t> holder;
      DType dtype;
      std::vector<int64_t> eff_shape;
    };
    std::vector<Piece> pieces;
    for (const SourceView& v : sources) {
      Piece piece;
      piece.dtype = v.dtype;
      piece.data = v.data;
      piece.eff_shape = v.shape;
      if (v.slice_axis >= 0) {
        piece.holder = slice_source(piece.data, v.shape, v.dtype, v.slice_axis, v.slice_start, v.slice_size);
        piece.data = piece.holder.data();
        piece.eff_shape = v.sliced_shape();
      }
      pieces.push_back(std::move(piece));
    }

    const size_t es = dtype_size(t.dtype);
    if (pieces.size() == 1 && pieces[0].holder.empty() && pieces[0].dtype == t.dtype &&
        pieces[0].eff_shape.size() == t.shape.size()) {
      t.data = pieces[0].data;  // no transform: use the mapping
      t.zero_copy = true;
      continue;
    }
    // Cast each piece to the weight dtype and place it along concat_axis.
    const int axis = w->concat_axis();
    const int64_t outer = prod(t.shape, 0, axis);
    const int64_t inner = prod(t.shape, axis + 1, t.shape.size());
    const int64_t dst_row = t.shape[axis] * inner;  // elements per outer index
    std::vector<uint8_t> out(t.nbytes);
    int64_t offset = 0;  // along the axis
    for (Piece& pc : pieces) {
      const int64_t along = pc.eff_shape.size() == t.shape.size() ? pc.eff_shape[axis] : 1;
      const int64_t chunk = along * inner;
      const size_t src_es = dtype_size(pc.dtype);
      for (int64_t o = 0; o < outer; ++o) {
        DS_RETURN_IF_ERROR(convert_elements(pc.data + static_cast<size_t>(o * chunk) * src_es, pc.dtype,
                                            out.data() + static_cast<size_t>(o * dst_row + offset * inner) * es,
                                            t.dtype, static_cast<size_t>(chunk))
                               .with_context(wctx));
      }
      offset += along;
    }
    t.data = out.data();
    lw->owned_.push_back(std::move(out));
  }
  return lw;
}

}  // namespace ds

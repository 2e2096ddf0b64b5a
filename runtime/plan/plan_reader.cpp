#include "runtime/plan/plan_reader.h"

#include <cstring>
#include <set>

#include "runtime/common/dtype.h"
#include "runtime/common/file_util.h"

namespace ds {
namespace {

template <typename T>
T load_le(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;  // flatbuffers are little-endian; so are our hosts
}

bool valid_dtype(plan::DType t) { return static_cast<int>(t) <= static_cast<int>(DType::kBool); }

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

std::vector<int64_t> to_vec(const flatbuffers::Vector<int64_t>* v) {
  std::vector<int64_t> out;
  if (v) out.assign(v->begin(), v->end());
  return out;
}

const char* kind_name(plan::ValueKind k) {
  switch (k) {
    case plan::ValueKind::arena: return "arena";
    case plan::ValueKind::weight: return "weight";
    case plan::ValueKind::kv_cache: return "kv_cache";
    case plan::ValueKind::input: return "input";
    case plan::ValueKind::output: return "output";
  }
  return "?";
}

Status validate_weight(const plan::Plan& p, size_t wi) {
  const plan::Weight* w = p.weights()->Get(wi);
  const std::string ctx = StrCat() << "weights[" << wi << "]"
                                   << (w && w->name() ? " '" + w->name()->str() + "'" : std::string());
  if (!w || !w->name() || w->name()->size() == 0) return Status::Error(ctx + ": missing name");
  if (!valid_dtype(w->dtype())) return Status::Error(ctx + ": invalid dtype");
  std::vector<int64_t> shape = to_vec(w->shape());
  if (shape.empty()) return Status::Error(ctx + ": empty shape");
  for (int64_t d : shape)
    if (d <= 0) return Status::Error(ctx + ": shape " + shape_str(shape) + " has a non-positive dimension");
  if (!w->sources() || w->sources()->size() == 0) return Status::Error(ctx + ": no sources");
  const int rank = static_cast<int>(shape.size());
  const int axis = w->concat_axis();
  if (axis < 0 || axis >= rank)
    return Status::Error(StrCat() << ctx << ": concat_axis " << axis << " out of range for rank " << rank);
  int64_t total = 0;
  for (size_t si = 0; si < w->sources()->size(); ++si) {
    const plan::SourceTensor* s = w->sources()->Get(si);
    const std::string sctx = StrCat() << ctx << ".sources[" << si << "]";
    if (!s || !s->name() || s->name()->size() == 0) return Status::Error(sctx + ": missing name");
    if (!s->file() || s->file()->size() == 0) return Status::Error(sctx + ": missing file");
    if (!valid_dtype(s->dtype())) return Status::Error(sctx + ": invalid dtype");
    std::vector<int64_t> sshape = to_vec(s->shape());
    for (int64_t d : sshape)
      if (d < 0) return Status::Error(sctx + ": negative dimension in shape " + shape_str(sshape));
    const int srank = static_cast<int>(sshape.size());
    if (s->slice_axis() != -1) {
      if (s->slice_axis() < 0 || s->slice_axis() >= srank)
        return Status::Error(StrCat() << sctx << ": slice_axis " << s->slice_axis() << " out of range for rank " << srank);
      if (s->slice_size() <= 0 || s->slice_start() < 0 || s->slice_rank_stride() < 0 || s->slice_rank_divisor() < 1)
        return Status::Error(StrCat() << sctx << ": invalid slice (start " << s->slice_start() << ", size "
                                      << s->slice_size() << ", rank stride " << s->slice_rank_stride()
                                      << ", rank divisor " << s->slice_rank_divisor() << ")");
      // Every rank's slice must lie inside the source (the start grows with the rank).
      const int last_rank = p.tp_size() - 1;
      const int64_t last_start = source_slice_start(*s, last_rank);
      if (last_start + s->slice_size() > sshape[s->slice_axis()])
        return Status::Error(StrCat() << sctx << " '" << s->name()->str() << "': slice [" << last_start << ", "
                                      << last_start + s->slice_size() << ") of rank " << last_rank << " on axis "
                                      << s->slice_axis() << " exceeds its dimension " << sshape[s->slice_axis()]);
    }
    std::vector<int64_t> eff = sliced_source_shape(*s);
    // A source either has the weight's rank (concatenated along concat_axis) or
    // one less (stacked along a new concat_axis, e.g. MoE experts).
    std::vector<int64_t> expect = shape;
    int64_t along;
    if (srank == rank) {
      along = eff[axis];
      expect[axis] = eff[axis];
    } else if (srank + 1 == rank) {
      along = 1;
      expect.erase(expect.begin() + axis);
    } else {
      return Status::Error(StrCat() << sctx << " '" << s->name()->str() << "': rank " << srank
                                    << " does not fit weight rank " << rank);
    }
    if (eff != expect)
      return Status::Error(StrCat() << sctx << " '" << s->name()->str() << "': shape " << shape_str(eff)
                                    << " (after slicing) is inconsistent with weight shape " << shape_str(shape)
                                    << " concatenated on axis " << axis);
    total += along;
  }
  if (total != shape[axis])
    return Status::Error(StrCat() << ctx << ": sources add up to " << total << " along concat_axis " << axis
                                  << " but the weight shape " << shape_str(shape) << " has " << shape[axis]);
  return Status::Ok();
}

Status validate_arena(const plan::Arena& a) {
  const int64_t align = a.alignment();
  if (align <= 0 || (align & (align - 1)) != 0)
    return Status::Error(StrCat() << "arena.alignment " << align << " is not a positive power of two");
  if (a.bytes_per_token() < 0 || a.bytes_per_token() % align != 0)
    return Status::Error(StrCat() << "arena.bytes_per_token " << a.bytes_per_token() << " is not a multiple of the alignment");
  if (!a.buffers()) return Status::Ok();
  for (size_t i = 0; i < a.buffers()->size(); ++i) {
    const plan::Buffer* b = a.buffers()->Get(i);
    const std::string ctx = StrCat() << "arena.buffers[" << i << "]"
                                     << (b && b->name() ? " '" + b->name()->str() + "'" : std::string());
    if (!b) return Status::Error(ctx + ": null");
    if (!valid_dtype(b->dtype())) return Status::Error(ctx + ": invalid dtype");
    int64_t row = 1;
    for (int64_t d : to_vec(b->row_shape())) {
      if (d <= 0) return Status::Error(ctx + ": row_shape has a non-positive dimension");
      row *= d;
    }
    const int64_t need = row * static_cast<int64_t>(dtype_size(static_cast<DType>(b->dtype())));
    if (b->bytes_per_token() < need)
      return Status::Error(StrCat() << ctx << ": bytes_per_token " << b->bytes_per_token() << " < " << need
                                    << " needed by row_shape " << shape_str(to_vec(b->row_shape())));
    if (b->offset_per_token() < 0 || b->offset_per_token() % align != 0)
      return Status::Error(StrCat() << ctx << ": offset_per_token " << b->offset_per_token()
                                    << " is negative or not a multiple of the alignment " << align);
    if (b->offset_per_token() + b->bytes_per_token() > a.bytes_per_token())
      return Status::Error(StrCat() << ctx << ": [" << b->offset_per_token() << ", "
                                    << b->offset_per_token() + b->bytes_per_token()
                                    << ") per token exceeds arena.bytes_per_token " << a.bytes_per_token());
  }
  return Status::Ok();
}

Status validate_kernel(const plan::Kernel& k, size_t ki) {
  const std::string ctx = StrCat() << "kernels[" << ki << "]" << (k.name() ? " '" + k.name()->str() + "'" : std::string());
  if (!k.name() || k.name()->size() == 0) return Status::Error(ctx + ": missing name");
  if (k.attrs())
    for (const plan::Attr* a : *k.attrs())
      if (!a || !a->key()) return Status::Error(ctx + ": attribute without key");
  if (k.kind() == plan::KernelKind::builtin) {
    if (!k.op() || k.op()->size() == 0) return Status::Error(ctx + ": builtin kernel without op");
    return Status::Ok();
  }
  if (k.kind() != plan::KernelKind::fused) return Status::Error(ctx + ": unknown kind");
  if (k.num_inputs() < 0) return Status::Error(ctx + ": negative num_inputs");
  if (!k.fused_ops() || k.fused_ops()->size() == 0) return Status::Error(ctx + ": fused kernel without fused_ops");
  const int n = static_cast<int>(k.fused_ops()->size());
  for (int i = 0; i < n; ++i) {
    const plan::FusedOp* op = k.fused_ops()->Get(i);
    const std::string octx = StrCat() << ctx << ".fused_ops[" << i << "]";
    if (!op || !op->op() || op->op()->size() == 0) return Status::Error(octx + ": missing op");
    if (op->attrs())
      for (const plan::Attr* a : *op->attrs())
        if (!a || !a->key()) return Status::Error(octx + ": attribute without key");
    if (op->operands())
      for (int o : *op->operands())
        if (o < 0 || o >= k.num_inputs() + i)
          return Status::Error(StrCat() << octx << " (" << op->op()->str() << "): operand " << o
                                        << " is neither a group input (< " << k.num_inputs()
                                        << ") nor an earlier fused op");
  }
  // A group may have no results when it only writes the KV cache.
  if (k.results())
    for (int r : *k.results())
      if (r < 0 || r >= n) return Status::Error(StrCat() << ctx << ": result index " << r << " out of range [0, " << n << ")");
  return Status::Ok();
}

Status validate_ref(const plan::Plan& p, const plan::ValueRef& v, const std::string& ctx) {
  int64_t limit = 0;
  switch (v.kind()) {
    case plan::ValueKind::arena: limit = p.arena()->buffers() ? p.arena()->buffers()->size() : 0; break;
    case plan::ValueKind::weight: limit = p.weights() ? p.weights()->size() : 0; break;
    case plan::ValueKind::kv_cache: limit = p.kv_cache()->layers()->size(); break;
    case plan::ValueKind::input: limit = kNumStepInputs; break;
    case plan::ValueKind::output: limit = kNumStepOutputs; break;
    default: return Status::Error(ctx + ": unknown value kind");
  }
  if (v.index() < 0 || v.index() >= limit)
    return Status::Error(StrCat() << ctx << ": " << kind_name(v.kind()) << " index " << v.index()
                                  << " out of range [0, " << limit << ")");
  return Status::Ok();
}

}  // namespace

int64_t source_slice_start(const plan::SourceTensor& s, int rank) {
  const int64_t divisor = s.slice_rank_divisor() >= 1 ? s.slice_rank_divisor() : 1;
  return s.slice_start() + (rank / divisor) * s.slice_rank_stride();
}

std::vector<int64_t> sliced_source_shape(const plan::SourceTensor& s) {
  std::vector<int64_t> shape = to_vec(s.shape());
  if (s.slice_axis() >= 0 && s.slice_axis() < static_cast<int>(shape.size())) shape[s.slice_axis()] = s.slice_size();
  return shape;
}

Result<uint32_t> peek_plan_format_version(std::string_view b, const std::string& origin) {
  if (b.size() < 8) return Status::Error(StrCat() << "plan " << origin << " is too small (" << b.size() << " bytes) to be a plan");
  if (std::memcmp(b.data() + 4, "DSPL", 4) != 0)
    return Status::Error(StrCat() << "plan " << origin << " is not a dsrt plan (file identifier is not \"DSPL\")");
  const uint64_t root = load_le<uint32_t>(b.data());
  if (root + 4 > b.size()) return Status::Error(StrCat() << "plan " << origin << " is corrupt (root offset out of range)");
  const int64_t vtable = static_cast<int64_t>(root) - load_le<int32_t>(b.data() + root);
  if (vtable < 0 || static_cast<uint64_t>(vtable) + 4 > b.size())
    return Status::Error(StrCat() << "plan " << origin << " is corrupt (vtable out of range)");
  const uint16_t vsize = load_le<uint16_t>(b.data() + vtable);
  if (vsize < 6 || static_cast<uint64_t>(vtable) + vsize > b.size()) return 0u;  // field absent: default 0
  const uint16_t field = load_le<uint16_t>(b.data() + vtable + 4);
  if (field == 0) return 0u;
  if (root + field + 4 > b.size()) return Status::Error(StrCat() << "plan " << origin << " is corrupt (format_version out of range)");
  return load_le<uint32_t>(b.data() + root + field);
}

Result<std::unique_ptr<LoadedPlan>> LoadedPlan::from_file(const std::string& path) {
  DS_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  return from_bytes(std::move(bytes), path);
}

Result<std::unique_ptr<LoadedPlan>> LoadedPlan::from_bytes(std::string bytes, std::string origin) {
  DS_ASSIGN_OR_RETURN(uint32_t version, peek_plan_format_version(bytes, origin));
  if (version != kPlanFormatVersion)
    return Status::Error(StrCat() << "plan " << origin << " has format version " << version
                                  << " but this dsrt reads version " << kPlanFormatVersion
                                  << "; recompile it with a matching dscc");
  std::unique_ptr<LoadedPlan> lp(new LoadedPlan());
  lp->bytes_ = std::move(bytes);
  lp->origin_ = std::move(origin);
  flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t*>(lp->bytes_.data()), lp->bytes_.size(),
                                 /*max_depth=*/64, /*max_tables=*/10000000);
  if (!plan::VerifyPlanBuffer(verifier))
    return Status::Error(StrCat() << "plan " << lp->origin_ << " is corrupt (flatbuffers verification failed)");
  lp->plan_ = plan::GetPlan(lp->bytes_.data());
  DS_RETURN_IF_ERROR(validate_plan(*lp->plan_).with_context(StrCat() << "invalid plan " << lp->origin_));
  return lp;
}

Status validate_plan(const plan::Plan& p) {
  if (!p.model()) return Status::Error("missing model");
  if (!p.arena()) return Status::Error("missing arena");
  if (!p.kv_cache() || !p.kv_cache()->layers() || p.kv_cache()->layers()->size() == 0)
    return Status::Error("missing kv_cache or kv_cache.layers");
  if (!p.kernels() || p.kernels()->size() == 0) return Status::Error("missing kernels");
  if (!p.program() || p.program()->size() == 0) return Status::Error("missing program");
  if (!valid_dtype(p.activation_dtype())) return Status::Error("invalid activation_dtype");
  if (p.tp_size() < 1) return Status::Error(StrCat() << "tp_size " << p.tp_size() << " < 1");
  const plan::ModelInfo& m = *p.model();
  if (m.vocab_size() <= 0) return Status::Error(StrCat() << "model.vocab_size " << m.vocab_size() << " must be positive");
  if (m.max_model_len() <= 0) return Status::Error(StrCat() << "model.max_model_len " << m.max_model_len() << " must be positive");

  const plan::KvCacheLayout& kv = *p.kv_cache();
  if (!valid_dtype(kv.dtype())) return Status::Error("kv_cache.dtype invalid");
  if (kv.page_size() <= 0) return Status::Error(StrCat() << "kv_cache.page_size " << kv.page_size() << " must be positive");
  if (kv.layout() && kv.layout()->size() > 0 && kv.layout()->str() != "NHD")
    return Status::Error("kv_cache.layout '" + kv.layout()->str() + "' is not supported (expected \"NHD\")");
  for (size_t i = 0; i < kv.layers()->size(); ++i) {
    const plan::KvCacheLayer* l = kv.layers()->Get(i);
    if (!l || l->k_dim() <= 0 || l->v_dim() < 0 || l->num_kv_heads() <= 0)
      return Status::Error(StrCat() << "kv_cache.layers[" << i << "]: k_dim, num_kv_heads must be positive, v_dim >= 0");
  }

  std::set<std::string> names;
  if (p.weights()) {
    for (size_t i = 0; i < p.weights()->size(); ++i) {
      DS_RETURN_IF_ERROR(validate_weight(p, i));
      if (!names.insert(p.weights()->Get(i)->name()->str()).second)
        return Status::Error(StrCat() << "weights[" << i << "]: duplicate name '" << p.weights()->Get(i)->name()->str() << "'");
    }
  }
  DS_RETURN_IF_ERROR(validate_arena(*p.arena()));
  for (size_t i = 0; i < p.kernels()->size(); ++i) {
    if (!p.kernels()->Get(i)) return Status::Error(StrCat() << "kernels[" << i << "]: null");
    DS_RETURN_IF_ERROR(validate_kernel(*p.kernels()->Get(i), i));
  }
  for (size_t i = 0; i < p.program()->size(); ++i) {
    const plan::Instr* ins = p.program()->Get(i);
    const std::string ctx = StrCat() << "program[" << i << "]";
    if (!ins) return Status::Error(ctx + ": null");
    if (ins->kernel() < 0 || ins->kernel() >= static_cast<int>(p.kernels()->size()))
      return Status::Error(StrCat() << ctx << ": kernel " << ins->kernel() << " out of range [0, " << p.kernels()->size() << ")");
    if (ins->inputs())
      for (size_t j = 0; j < ins->inputs()->size(); ++j)
        DS_RETURN_IF_ERROR(validate_ref(p, *ins->inputs()->Get(j), StrCat() << ctx << ".inputs[" << j << "]"));
    if (ins->outputs())
      for (size_t j = 0; j < ins->outputs()->size(); ++j)
        DS_RETURN_IF_ERROR(validate_ref(p, *ins->outputs()->Get(j), StrCat() << ctx << ".outputs[" << j << "]"));
    const plan::Kernel* k = p.kernels()->Get(ins->kernel());
    if (k->kind() == plan::KernelKind::fused) {
      const int nin = ins->inputs() ? static_cast<int>(ins->inputs()->size()) : 0;
      if (nin != k->num_inputs())
        return Status::Error(StrCat() << ctx << ": fused kernel '" << k->name()->str() << "' takes " << k->num_inputs()
                                      << " inputs but the instruction passes " << nin);
    }
  }
  return Status::Ok();
}

}  // namespace ds

// dsrt inspect: a readable dump of a plan.
#include <cstdio>
#include <iostream>
#include <sstream>

#include "runtime/common/dtype.h"
#include "runtime/plan/plan_attrs.h"
#include "serve/cli/commands.h"

namespace ds::cli {
namespace {

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

std::string dt(plan::DType t) { return dtype_name(static_cast<DType>(t)); }

template <typename V>
std::string list(const V* v) {
  std::ostringstream os;
  os << "[";
  if (v)
    for (size_t i = 0; i < v->size(); ++i) os << (i ? "," : "") << v->Get(i);
  os << "]";
  return os.str();
}

std::string ref(const plan::Plan& p, const plan::ValueRef& r) {
  std::ostringstream os;
  switch (r.kind()) {
    case plan::ValueKind::arena: {
      const plan::Buffer* b = p.arena()->buffers()->Get(r.index());
      os << "%" << (b->name() && b->name()->size() ? b->name()->str() : std::to_string(r.index()));
      break;
    }
    case plan::ValueKind::weight: os << "@" << p.weights()->Get(r.index())->name()->str(); break;
    case plan::ValueKind::kv_cache: os << "kv[" << r.index() << "]"; break;
    case plan::ValueKind::input: {
      static const char* kNames[] = {"tokens", "positions", "logit_rows"};
      os << "in." << kNames[r.index()];
      break;
    }
    case plan::ValueKind::output: os << "out.logits"; break;
  }
  return os.str();
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return buf;
}

void print_model(const plan::Plan& p, std::ostream& os) {
  const plan::ModelInfo& m = *p.model();
  os << "model:\n"
     << "  name: " << str(m.name()) << "\n  architecture: " << str(m.architecture()) << " (" << str(m.model_type()) << ")\n"
     << "  checkpoint: " << str(m.checkpoint_path()) << "\n"
     << "  hidden " << m.hidden_size() << ", intermediate " << m.intermediate_size() << ", layers " << m.num_layers()
     << ", heads " << m.num_attention_heads() << " (kv " << m.num_kv_heads() << "), head_dim " << m.head_dim()
     << ", vocab " << m.vocab_size() << "\n"
     << "  max_model_len " << m.max_model_len() << ", rms_norm_eps " << m.rms_norm_eps() << ", tie_word_embeddings "
     << (m.tie_word_embeddings() ? "true" : "false") << "\n";
  if (const plan::RopeConfig* r = m.rope()) {
    os << "  rope: theta " << r->theta() << ", " << plan::EnumNameRopeStyle(r->style()) << ", rotary_dim "
       << r->rotary_dim() << ", scaling " << plan::EnumNameRopeScaling(r->scaling());
    if (r->scaling() != plan::RopeScaling::none) os << " (factor " << r->factor() << ")";
    if (r->scaling() == plan::RopeScaling::yarn)
      os << " original_max_position " << r->original_max_position() << ", beta_fast " << r->beta_fast() << ", beta_slow "
         << r->beta_slow() << ", mscale " << r->mscale() << ", mscale_all_dim " << r->mscale_all_dim();
    os << "\n";
  }
}

void print_tokenizer(const plan::Plan& p, std::ostream& os) {
  os << "tokenizer:";
  const plan::TokenizerInfo* t = p.tokenizer();
  if (!t) {
    os << " (none)\n";
    return;
  }
  os << "\n  tokenizer.json " << human_bytes(t->tokenizer_json() ? t->tokenizer_json()->size() : 0)
     << ", tokenizer_config.json " << human_bytes(t->tokenizer_config_json() ? t->tokenizer_config_json()->size() : 0)
     << ", chat template " << (t->chat_template() && t->chat_template()->size() ? "yes" : "no") << "\n"
     << "  bos " << t->bos_token_id() << ", eos " << list(t->eos_token_ids()) << ", pad " << t->pad_token_id() << "\n";
  if (const plan::GenerationDefaults* g = p.generation())
    os << "generation defaults: do_sample " << (g->do_sample() ? "true" : "false") << ", temperature "
       << g->temperature() << ", top_p " << g->top_p() << ", top_k " << g->top_k() << ", min_p " << g->min_p()
       << ", repetition_penalty " << g->repetition_penalty() << ", eos " << list(g->eos_token_ids()) << "\n";
}

void print_weights(const plan::Plan& p, std::ostream& os) {
  const size_t n = p.weights() ? p.weights()->size() : 0;
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    const plan::Weight* w = p.weights()->Get(i);
    double e = 1;
    for (int64_t d : *w->shape()) e *= static_cast<double>(d);
    total += e * static_cast<double>(dtype_size(static_cast<DType>(w->dtype())));
  }
  os << "weights: " << n << " (" << human_bytes(total) << ")\n";
  for (size_t i = 0; i < n; ++i) {
    const plan::Weight* w = p.weights()->Get(i);
    os << "  [" << i << "] " << str(w->name()) << ": " << dt(w->dtype()) << list(w->shape());
    if (w->sources()->size() > 1) os << " = concat(axis " << w->concat_axis() << ")";
    os << "\n";
    for (const plan::SourceTensor* s : *w->sources()) {
      os << "      <- " << str(s->name()) << " (" << str(s->file()) << ") " << dt(s->dtype()) << list(s->shape());
      if (s->slice_axis() >= 0) {
        os << " slice axis " << s->slice_axis() << " [" << s->slice_start() << ", +" << s->slice_size() << ")";
        if (s->slice_rank_stride()) {
          if (s->slice_rank_divisor() > 1)
            os << " + (rank/" << s->slice_rank_divisor() << ")*" << s->slice_rank_stride();
          else
            os << " + rank*" << s->slice_rank_stride();
        }
      }
      if (s->dtype() != w->dtype()) os << " cast to " << dt(w->dtype());
      os << "\n";
    }
  }
}

void print_arena_kv(const plan::Plan& p, std::ostream& os) {
  const plan::Arena& a = *p.arena();
  const size_t nb = a.buffers() ? a.buffers()->size() : 0;
  os << "arena: " << a.bytes_per_token() << " bytes per token, alignment " << a.alignment() << ", " << nb << " buffers\n";
  for (size_t i = 0; i < nb; ++i) {
    const plan::Buffer* b = a.buffers()->Get(i);
    os << "  [" << i << "] " << str(b->name()) << ": " << dt(b->dtype()) << list(b->row_shape()) << " at "
       << b->offset_per_token() << "+" << b->bytes_per_token() << " per token, live [" << b->first_instr() << ", "
       << b->last_instr() << "]\n";
  }
  const plan::KvCacheLayout& kv = *p.kv_cache();
  os << "kv cache: " << dt(kv.dtype()) << ", page_size " << kv.page_size() << ", layout " << str(kv.layout()) << ", "
     << kv.layers()->size() << " layers\n";
  // Runs of identical layers on one line.
  size_t i = 0;
  while (i < kv.layers()->size()) {
    const plan::KvCacheLayer* l = kv.layers()->Get(i);
    size_t j = i + 1;
    while (j < kv.layers()->size() && kv.layers()->Get(j)->k_dim() == l->k_dim() &&
           kv.layers()->Get(j)->v_dim() == l->v_dim() && kv.layers()->Get(j)->num_kv_heads() == l->num_kv_heads())
      ++j;
    os << "  layers " << i << (j - 1 > i ? "-" + std::to_string(j - 1) : "") << ": " << l->num_kv_heads()
       << " kv heads, k_dim " << l->k_dim() << ", v_dim " << l->v_dim() << "\n";
    i = j;
  }
}

void print_kernels_program(const plan::Plan& p, std::ostream& os) {
  os << "kernels: " << p.kernels()->size() << "\n";
  for (size_t i = 0; i < p.kernels()->size(); ++i) {
    const plan::Kernel* k = p.kernels()->Get(i);
    os << "  [" << i << "] " << str(k->name()) << ": " << plan::EnumNameKernelKind(k->kind()) << " impl "
       << str(k->impl());
    if (k->kind() == plan::KernelKind::builtin) {
      os << " op " << str(k->op());
      if (k->attrs() && k->attrs()->size()) os << " {" << format_attrs(k->attrs()) << "}";
      os << "\n";
      continue;
    }
    os << ", " << k->num_inputs() << " inputs, results " << list(k->results()) << "\n";
    for (size_t f = 0; f < k->fused_ops()->size(); ++f) {
      const plan::FusedOp* fo = k->fused_ops()->Get(f);
      os << "      #" << f << " = " << str(fo->op()) << "(";
      if (fo->operands())
        for (size_t o = 0; o < fo->operands()->size(); ++o) {
          const int v = fo->operands()->Get(o);
          os << (o ? ", " : "") << (v < k->num_inputs() ? "in" + std::to_string(v) : "#" + std::to_string(v - k->num_inputs()));
        }
      os << ")";
      if (fo->attrs() && fo->attrs()->size()) os << " {" << format_attrs(fo->attrs()) << "}";
      if (fo->row_shape() && fo->row_shape()->size()) os << " -> " << list(fo->row_shape());
      os << "\n";
    }
    if (const plan::GeneratedKernel* g = k->generated())
      os << "      generated: entry " << str(g->entry()) << ", arch " << str(g->arch()) << ", source "
         << (g->source() ? g->source()->size() : 0) << " chars, binary " << (g->binary() ? g->binary()->size() : 0)
         << " bytes, block_dim " << g->block_dim() << ", rows_per_block " << g->rows_per_block() << "\n";
  }
  os << "program: " << p.program()->size() << " instructions\n";
  for (size_t i = 0; i < p.program()->size(); ++i) {
    const plan::Instr* in = p.program()->Get(i);
    os << "  " << i << ": ";
    if (in->outputs())
      for (size_t j = 0; j < in->outputs()->size(); ++j) os << (j ? ", " : "") << ref(p, *in->outputs()->Get(j));
    os << " = " << str(p.kernels()->Get(in->kernel())->name()) << "(";
    if (in->inputs())
      for (size_t j = 0; j < in->inputs()->size(); ++j) os << (j ? ", " : "") << ref(p, *in->inputs()->Get(j));
    os << ")\n";
  }
}

}  // namespace

Status run_inspect(const std::string& plan_path) {
  DS_ASSIGN_OR_RETURN(auto lp, LoadedPlan::from_file(plan_path));
  const plan::Plan& p = lp->plan();
  std::ostringstream os;
  os << "plan: " << plan_path << " (" << human_bytes(static_cast<double>(lp->bytes().size())) << ")\n"
     << "  format_version " << p.format_version() << ", producer " << str(p.producer()) << ", target " << str(p.target())
     << ", activation dtype " << dt(p.activation_dtype()) << ", tp_size " << p.tp_size() << "\n";
  print_model(p, os);
  print_tokenizer(p, os);
  print_weights(p, os);
  print_arena_kv(p, os);
  print_kernels_program(p, os);
  if (p.mlir() && p.mlir()->size()) os << "mlir: " << p.mlir()->size() << " chars (final IR kept in the plan)\n";
  std::cout << os.str();
  return Status::Ok();
}

}  // namespace ds::cli

// dsrt generate and dsrt score.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "runtime/common/file_util.h"
#include "runtime/engine/engine.h"
#include "runtime/executor/dist_executor.h"
#include "serve/cli/commands.h"

namespace ds::cli {
namespace {

using json = nlohmann::json;

Result<std::unique_ptr<Engine>> make_engine(const LoadedModel& m, int64_t chunk, int64_t kv_tokens,
                                            const CudaArgs& cuda, int64_t max_logit_rows = 0) {
  EngineOptions eo;
  eo.token_capacity = chunk;
  eo.max_logit_rows = max_logit_rows;
  eo.kv_tokens = kv_tokens;
  eo.dist = m.dist.get();
  eo.mem_fraction_static = cuda.mem_fraction_static;
  eo.gpu = device_options(m.options, cuda);
  DS_ASSIGN_OR_RETURN(auto engine, Engine::create(*m.plan, *m.weights, eo));
  if (is_cuda_plan(*m.plan)) print_weight_load(engine->startup().weight_bytes, engine->startup().weights_load_s);
  return engine;
}

Status check_cuda_args(const CudaArgs& c) {
  if (c.mem_fraction_static != 0 && !(c.mem_fraction_static > 0 && c.mem_fraction_static < 1))
    return Status::Error(StrCat() << "--mem-fraction-static " << c.mem_fraction_static << " must be in (0, 1)");
  if (c.cuda_graph_max_bs < 0) return Status::Error("--cuda-graph-max-bs must be >= 0");
  return Status::Ok();
}

// NumPy .npy (format 1.0) of a little-endian float32 [rows, cols] array.
std::string npy_f32(const std::vector<float>& data, int64_t rows, int64_t cols) {
  std::string header = StrCat() << "{'descr': '<f4', 'fortran_order': False, 'shape': (" << rows << ", " << cols
                                << "), }";
  // Magic (6) + version (2) + header length (2) + header + '\n', padded to a multiple of 64 bytes.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>((header.size() >> 8) & 0xff));
  out += header;
  out.append(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));  // x86/ARM: little endian
  return out;
}

}  // namespace

Status run_generate(const GenerateArgs& a) {
  if (a.has_prompt == a.has_prompt_ids) return Status::Error("pass exactly one of --prompt and --prompt-ids");
  if (a.chunked_prefill_size < 0) return Status::Error("--chunked-prefill-size must be positive");
  if (a.max_new_tokens < 0) return Status::Error("--max-new-tokens must be >= 0");
  DS_RETURN_IF_ERROR(check_cuda_args(a.cuda));
  DS_ASSIGN_OR_RETURN(LoadedModel m, load_model(a.load));
  if (m.follower())  // rank 0 prints the result
    return run_rank_follower(*m.plan, *m.weights, *m.dist, follower_executor_options(a.load));
  std::unique_ptr<PlanTokenizer> tok;
  if (tokenizer_available()) {
    auto t = PlanTokenizer::create(*m.plan);
    if (t.ok()) tok = std::move(t).value();
    else if (a.has_prompt) return t.status();
  }
  std::vector<int32_t> prompt;
  if (a.has_prompt) {
    if (!tok) return Status::Error("--prompt needs the tokenizer, which this dsrt was built without; use --prompt-ids");
    DS_ASSIGN_OR_RETURN(prompt, tok->encode(a.prompt));
  } else {
    DS_ASSIGN_OR_RETURN(prompt, parse_id_list(a.prompt_ids, "--prompt-ids"));
  }
  if (prompt.empty()) return Status::Error("the prompt has no tokens");
  const int64_t max_len = m.plan->plan().model()->max_model_len();
  const int64_t kv_tokens = std::min<int64_t>(max_len, static_cast<int64_t>(prompt.size()) + a.max_new_tokens);
  DS_ASSIGN_OR_RETURN(auto engine, make_engine(m, a.chunked_prefill_size, std::max<int64_t>(kv_tokens, 1), a.cuda));
  GenerateOptions go;
  go.max_new_tokens = a.max_new_tokens;
  go.sampling.temperature = a.temperature;
  go.sampling.top_p = a.top_p;
  go.sampling.top_k = a.top_k;
  go.sampling.min_p = a.min_p;
  go.sampling.seed = a.seed;
  go.ignore_eos = a.ignore_eos;
  DS_ASSIGN_OR_RETURN(GenerateResult r, engine->generate(prompt, go));
  std::string text;
  if (tok) {
    DS_ASSIGN_OR_RETURN(text, tok->decode(r.output_ids));
  }
  if (a.json) {
    json j;
    j["output_ids"] = r.output_ids;
    j["text"] = text;
    // Wall-clock around the engine's steps (host sampling included).
    json t;
    t["prefill_ms"] = r.prefill_ms;
    t["ttft_ms"] = r.ttft_ms;
    t["decode_ms"] = r.decode_ms;
    t["decode_tokens_per_s"] = r.decode_ms > 0 ? static_cast<double>(r.decode_tokens) * 1000.0 / r.decode_ms : 0.0;
    j["timings"] = std::move(t);
    std::cout << j.dump(-1, ' ', false, json::error_handler_t::replace) << std::endl;
  } else if (tok) {
    std::cout << text << std::endl;
  } else {
    for (size_t i = 0; i < r.output_ids.size(); ++i) std::cout << (i ? "," : "") << r.output_ids[i];
    std::cout << std::endl;
  }
  return Status::Ok();
}

Status run_score(const ScoreArgs& a) {
  if (a.top_k < 0) return Status::Error("--top-k must be >= 0");
  if (a.chunked_prefill_size < 0) return Status::Error("--chunked-prefill-size must be positive");
  if (a.max_logit_rows < 0) return Status::Error("--max-logit-rows must be >= 0");
  DS_RETURN_IF_ERROR(check_cuda_args(a.cuda));
  DS_ASSIGN_OR_RETURN(std::vector<int32_t> ids, parse_id_list(a.ids, "--ids"));
  DS_ASSIGN_OR_RETURN(LoadedModel m, load_model(a.load));
  if (m.follower())  // rank 0 prints the result
    return run_rank_follower(*m.plan, *m.weights, *m.dist, follower_executor_options(a.load));
  DS_ASSIGN_OR_RETURN(auto engine, make_engine(m, a.chunked_prefill_size, static_cast<int64_t>(ids.size()), a.cuda,
                                               a.max_logit_rows));
  const int64_t vocab = engine->vocab_size();
  // --logits-out asks the engine for every logit (top-k over the whole vocabulary) and scatters them back
  // by token id; the JSON still reports --top-k of them.
  DS_ASSIGN_OR_RETURN(std::vector<PositionScore> scores, engine->score(ids, a.logits_out.empty() ? a.top_k : vocab));
  if (!a.logits_out.empty()) {
    std::vector<float> logits(scores.size() * static_cast<size_t>(vocab), 0.0f);
    for (size_t i = 0; i < scores.size(); ++i) {
      PositionScore& s = scores[i];
      if (static_cast<int64_t>(s.top_ids.size()) != vocab)
        return Status::Error(StrCat() << "--logits-out: position " << i << " has " << s.top_ids.size()
                                      << " logits, expected the vocabulary size " << vocab);
      for (int64_t j = 0; j < vocab; ++j) logits[i * vocab + s.top_ids[j]] = s.top_logits[j];
      const size_t k = static_cast<size_t>(std::min(a.top_k, vocab));
      s.top_ids.resize(k);
      s.top_logits.resize(k);
    }
    Status st = write_file_atomic(a.logits_out, npy_f32(logits, static_cast<int64_t>(scores.size()), vocab));
    if (!st.ok()) return Status::Error(StrCat() << "--logits-out " << a.logits_out << ": " << st.message());
  }
  json positions = json::array();
  for (const PositionScore& s : scores) {
    json p;
    p["top_ids"] = s.top_ids;
    p["top_logits"] = s.top_logits;
    p["logsumexp"] = s.logsumexp;
    positions.push_back(std::move(p));
  }
  json j;
  j["positions"] = std::move(positions);
  std::cout << j.dump() << std::endl;
  return Status::Ok();
}

}  // namespace ds::cli

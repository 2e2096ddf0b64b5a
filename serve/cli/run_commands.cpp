// dsrt generate and dsrt score.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "runtime/engine/engine.h"
#include "runtime/executor/dist_executor.h"
#include "serve/cli/commands.h"

namespace ds::cli {
namespace {

using json = nlohmann::json;

Result<std::unique_ptr<Engine>> make_engine(const LoadedModel& m, int64_t chunk, int64_t kv_tokens) {
  EngineOptions eo;
  eo.token_capacity = chunk;
  eo.kv_tokens = kv_tokens;
  eo.dist = m.dist.get();
  return Engine::create(*m.plan, *m.weights, eo);
}

}  // namespace

Status run_generate(const GenerateArgs& a) {
  if (a.has_prompt == a.has_prompt_ids) return Status::Error("pass exactly one of --prompt and --prompt-ids");
  if (a.chunked_prefill_size < 0) return Status::Error("--chunked-prefill-size must be positive");
  if (a.max_new_tokens < 0) return Status::Error("--max-new-tokens must be >= 0");
  DS_ASSIGN_OR_RETURN(LoadedModel m, load_model(a.load));
  if (m.follower()) return run_follower(*m.plan, *m.weights, *m.dist);  // rank 0 prints the result
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
  DS_ASSIGN_OR_RETURN(auto engine, make_engine(m, a.chunked_prefill_size, std::max<int64_t>(kv_tokens, 1)));
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
  DS_ASSIGN_OR_RETURN(std::vector<int32_t> ids, parse_id_list(a.ids, "--ids"));
  DS_ASSIGN_OR_RETURN(LoadedModel m, load_model(a.load));
  if (m.follower()) return run_follower(*m.plan, *m.weights, *m.dist);  // rank 0 prints the result
  DS_ASSIGN_OR_RETURN(auto engine, make_engine(m, a.chunked_prefill_size, static_cast<int64_t>(ids.size())));
  DS_ASSIGN_OR_RETURN(std::vector<PositionScore> scores, engine->score(ids, a.top_k));
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

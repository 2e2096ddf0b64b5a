// POST /v1/chat/completions and /v1/completions: validation, chat rendering,
// tokenization, fan-out to the backend, then SSE streaming or one JSON body.
#include <memory>
#include <utility>
#include <vector>

#include "serve/http/connection_watch.h"
#include "serve/http/generation_job.h"
#include "serve/http/server_impl.h"

namespace ds::http {

bool OpenAIServer::Impl::check_model(const ojson& body, httplib::Response& res) const {
  auto it = body.is_object() ? body.find("model") : body.end();
  if (it == body.end() || it->is_null()) return true;
  if (it->is_string() && it->get<std::string>() == model_name) return true;
  if (!it->is_string()) {
    reply_error(res, ApiError::bad_request("model: expected a string", "model"));
    return false;
  }
  reply_error(res, ApiError::not_found(StrCat() << "The model `" << it->get<std::string>() << "` does not exist."));
  return false;
}

ApiResult<std::string> OpenAIServer::Impl::render_chat(const OpenAIRequest& r) const {
  if (!chat_template) {
    return ApiError::bad_request(chat_template_error.empty() ? "this model has no chat template" : chat_template_error,
                                 "messages");
  }
  ojson context = ojson::object();
  context["messages"] = r.messages;
  context["add_generation_prompt"] = r.add_generation_prompt;
  context["bos_token"] = tokenizer->bos_token();
  context["eos_token"] = tokenizer->eos_token();
  if (!r.tools.is_null()) context["tools"] = r.tools;
  if (r.chat_template_kwargs.is_object()) {
    for (auto it = r.chat_template_kwargs.begin(); it != r.chat_template_kwargs.end(); ++it) {
      context[it.key()] = it.value();
    }
  }
  auto rendered = chat_template->render(context);
  if (!rendered.ok()) {
    return ApiError::bad_request(StrCat() << "chat template: " << rendered.status().message(), "messages");
  }
  return std::move(rendered).value();
}

void OpenAIServer::Impl::handle_generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
  const auto arrival = Clock::now();
  if (stopping.load()) return reply_error(res, ApiError::unavailable());
  auto body = parse_body(req);
  if (!body.ok()) return reply_error(res, body.error());
  auto parsed = endpoint == Endpoint::kChat ? parse_chat_request(*body, vocab_size, defaults)
                                            : parse_completion_request(*body, vocab_size, defaults);
  if (!parsed.ok()) return reply_error(res, parsed.error());
  if (!check_model(*body, res)) return;
  OpenAIRequest r = std::move(*parsed);

  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> texts;
  const char* prompt_param = endpoint == Endpoint::kChat ? "messages" : "prompt";
  if (endpoint == Endpoint::kChat) {
    auto rendered = render_chat(r);
    if (!rendered.ok()) return reply_error(res, rendered.error());
    auto ids = tokenizer->encode(*rendered, r.add_special_tokens);
    if (!ids.ok()) return reply_error(res, ApiError::bad_request(ids.status().message(), prompt_param));
    prompts.push_back(std::move(*ids));
    texts.push_back(std::move(*rendered));
  } else {
    for (auto& p : r.prompts) {
      if (p.is_ids) {
        texts.push_back(tokenizer->decode(p.ids, /*skip_special_tokens=*/false));
        prompts.push_back(p.ids);
      } else {
        auto ids = tokenizer->encode(p.text, r.add_special_tokens);
        if (!ids.ok()) return reply_error(res, ApiError::bad_request(ids.status().message(), prompt_param));
        prompts.push_back(std::move(*ids));
        texts.push_back(p.text);
      }
    }
  }
  std::vector<int64_t> max_new;
  for (const auto& p : prompts) {
    if (auto e = resolve_max_tokens(r, static_cast<int64_t>(p.size()), max_model_len)) return reply_error(res, *e);
    max_new.push_back(r.sampling.max_new_tokens);
  }

  JobContext ctx{backend, tokenizer.get(), &metrics, model_name, options.reasoning_parser};
  const bool stream = r.stream;
  auto job = std::make_shared<GenerationJob>(std::move(ctx), std::move(r), std::move(prompts), std::move(texts),
                                             std::move(max_new), arrival);
  if (auto e = job->submit()) return reply_error(res, *e);

  if (!stream) {
    ConnectionWatch client(req.remote_addr, req.remote_port, req.local_addr, req.local_port);
    while (!job->finished()) {
      if (stopping.load()) {
        job->abort_all();
        return reply_error(res, ApiError::unavailable());
      }
      if (client.peer_gone()) {  // nobody to answer: free the KV pages now
        job->abort_all();
        return;
      }
      job->pump(kPumpInterval);
    }
    if (!job->error().empty()) return reply_error(res, ApiError::internal(job->error()));
    return reply_json(res, job->response_body());
  }

  res.set_header("Cache-Control", "no-cache");
  auto opened = std::make_shared<bool>(false);
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, job, opened](size_t /*offset*/, httplib::DataSink& sink) {
        auto send = [&sink](const std::string& bytes) { return sink.write(bytes.data(), bytes.size()); };
        if (!*opened) {
          *opened = true;
          for (const auto& chunk : job->opening_chunks()) {
            if (!send(sse_event(chunk))) return job->abort_all(), false;
          }
        }
        std::vector<json> chunks;
        if (stopping.load()) job->abort_all(&chunks);  // streams end with finish_reason "abort"
        for (auto& chunk : job->pump(kPumpInterval)) chunks.push_back(std::move(chunk));
        for (const auto& chunk : chunks) {
          if (!send(sse_event(chunk))) return job->abort_all(), false;
        }
        if (job->finished()) {
          if (!job->error().empty()) send(sse_event(ApiError::internal(job->error()).to_json()));
          send(sse_done());
          sink.done();
          return true;
        }
        if (!sink.is_writable()) return job->abort_all(), false;
        return true;
      },
      [job](bool success) {
        if (!success) job->abort_all();  // client gone or server stopping
      });
}

}  // namespace ds::http

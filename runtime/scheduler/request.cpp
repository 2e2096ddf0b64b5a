#include "runtime/scheduler/request.h"

#include <cmath>

namespace ds {

Status RequestSampling::validate(int64_t vocab_size) const {
  auto finite = [](float v) { return std::isfinite(v); };
  if (!finite(temperature) || temperature < 0.0f)
    return Status::Error(StrCat() << "temperature " << temperature << " must be a finite number >= 0");
  if (!finite(top_p) || !(top_p > 0.0f && top_p <= 1.0f))
    return Status::Error(StrCat() << "top_p " << top_p << " must be in (0, 1]");
  if (!finite(min_p) || !(min_p >= 0.0f && min_p <= 1.0f))
    return Status::Error(StrCat() << "min_p " << min_p << " must be in [0, 1]");
  if (!finite(presence_penalty) || presence_penalty < -2.0f || presence_penalty > 2.0f)
    return Status::Error(StrCat() << "presence_penalty " << presence_penalty << " must be in [-2, 2]");
  if (!finite(frequency_penalty) || frequency_penalty < -2.0f || frequency_penalty > 2.0f)
    return Status::Error(StrCat() << "frequency_penalty " << frequency_penalty << " must be in [-2, 2]");
  if (!finite(repetition_penalty) || !(repetition_penalty > 0.0f))
    return Status::Error(StrCat() << "repetition_penalty " << repetition_penalty << " must be a finite number > 0");
  if (max_new_tokens < 1)
    return Status::Error(StrCat() << "max_new_tokens " << max_new_tokens << " must be >= 1");
  if (logprobs < -1 || logprobs > kMaxLogprobs)
    return Status::Error(StrCat() << "logprobs " << logprobs << " must be -1 (off) or in [0, " << kMaxLogprobs << "]");
  for (size_t i = 0; i < stop_token_ids.size(); ++i)
    if (stop_token_ids[i] < 0 || stop_token_ids[i] >= vocab_size)
      return Status::Error(StrCat() << "stop_token_ids[" << i << "] = " << stop_token_ids[i]
                                    << " is outside the vocabulary [0, " << vocab_size << ")");
  return Status::Ok();
}

}  // namespace ds

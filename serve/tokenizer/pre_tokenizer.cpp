#include "serve/tokenizer/pre_tokenizer.h"

#include <nlohmann/json.hpp>

namespace ds::tok {
namespace {

using json = nlohmann::json;

// The pattern HF's ByteLevel pre-tokenizer uses when use_regex is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace

Result<PreTokenizer> PreTokenizer::from_json(const json& j, const std::string& what) {
  PreTokenizer pt;
  if (j.is_null()) return pt;
  DS_RETURN_IF_ERROR(add(j, what, &pt));
  return pt;
}

Status PreTokenizer::add(const json& j, const std::string& what, PreTokenizer* pt) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return Status::Error(what + ": expected an object with a string 'type'");
  }
  const std::string type = j["type"].get<std::string>();
  if (pt->byte_level_) {
    return Status::Error(StrCat() << what << ": '" << type
                                  << "' after ByteLevel is not supported (ByteLevel must be last)");
  }
  if (type == "Sequence") {
    auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) return Status::Error(what + ": Sequence without 'pretokenizers' array");
    for (size_t i = 0; i < it->size(); ++i) {
      DS_RETURN_IF_ERROR(add((*it)[i], StrCat() << what << ".pretokenizers[" << i << "]", pt));
    }
    return Status::Ok();
  }
  if (type == "Split") {
    auto p = j.find("pattern");
    if (p == j.end() || !p->is_object()) return Status::Error(what + ": Split without 'pattern' object");
    std::string pattern;
    if (p->contains("Regex") && (*p)["Regex"].is_string()) {
      pattern = (*p)["Regex"].get<std::string>();
    } else if (p->contains("String") && (*p)["String"].is_string()) {
      pattern = Regex::escape((*p)["String"].get<std::string>());
    } else {
      return Status::Error(what + ": Split pattern must be {\"Regex\": ...} or {\"String\": ...}");
    }
    DS_ASSIGN_OR_RETURN(Regex re, Regex::compile(pattern, what + ".pattern"));
    Step step{std::move(re)};
    const std::string behavior = j.value("behavior", std::string("Isolated"));
    if (behavior == "Removed") step.behavior = Behavior::kRemoved;
    else if (behavior == "Isolated") step.behavior = Behavior::kIsolated;
    else if (behavior == "MergedWithPrevious") step.behavior = Behavior::kMergedWithPrevious;
    else if (behavior == "MergedWithNext") step.behavior = Behavior::kMergedWithNext;
    else if (behavior == "Contiguous") step.behavior = Behavior::kContiguous;
    else return Status::Error(StrCat() << what << ": unknown Split behavior '" << behavior << "'");
    step.invert = j.value("invert", false);
    pt->steps_.push_back(std::move(step));
    return Status::Ok();
  }
  if (type == "ByteLevel") {
    DS_ASSIGN_OR_RETURN(Regex re, Regex::compile(kGpt2Pattern, what + " (GPT-2 pattern)"));
    Step step{std::move(re)};
    step.byte_level = true;
    step.add_prefix_space = j.value("add_prefix_space", true);
    step.use_regex = j.value("use_regex", true);
    pt->steps_.push_back(std::move(step));
    pt->byte_level_ = true;
    return Status::Ok();
  }
  return Status::Error(StrCat() << what << ": unsupported pre_tokenizer type '" << type << "'");
}

Status PreTokenizer::split(std::string_view text, WordList* out) const {
  if (out->matches.size() < steps_.size()) {
    out->matches.resize(steps_.size());
    out->pieces.resize(steps_.size());
  }
  return run(0, text, out);
}

Status PreTokenizer::run(size_t depth, std::string_view piece, WordList* out) const {
  if (piece.empty()) return Status::Ok();
  if (depth == steps_.size()) {
    out->words.push_back(piece);
    return Status::Ok();
  }
  const Step& step = steps_[depth];
  if (step.byte_level) {
    if (step.add_prefix_space && piece[0] != ' ') {
      out->owned.push_back(std::string(" ").append(piece));
      piece = out->owned.back();
    }
    if (!step.use_regex) return run(depth + 1, piece, out);
  }
  auto& matches = out->matches[depth];
  auto& pieces = out->pieces[depth];
  matches.clear();
  pieces.clear();
  DS_RETURN_IF_ERROR(step.regex.find_all(piece, &matches));
  if (step.behavior == Behavior::kIsolated) {
    // Every match and every gap is a piece (invert does not matter).
    size_t prev = 0;
    for (size_t k = 0; k < matches.size(); ++k) {
      const auto [b, e] = matches[k];
      if (prev != b) DS_RETURN_IF_ERROR(run(depth + 1, piece.substr(prev, b - prev), out));
      DS_RETURN_IF_ERROR(run(depth + 1, piece.substr(b, e - b), out));
      prev = e;
    }
    if (prev != piece.size()) DS_RETURN_IF_ERROR(run(depth + 1, piece.substr(prev), out));
    return Status::Ok();
  }
  // (start, end, is_match) covering the piece, as HF's Pattern::find_matches.
  size_t prev = 0;
  const bool inv = step.invert;
  for (auto [b, e] : matches) {
    if (prev != b) pieces.emplace_back(prev, b, inv);
    pieces.emplace_back(b, e, !inv);
    prev = e;
  }
  if (prev != piece.size()) pieces.emplace_back(prev, piece.size(), inv);

  // Apply the delimiter behavior in place: the result is a list of kept ranges.
  switch (step.behavior) {
    case Behavior::kIsolated:  // handled above
      break;
    case Behavior::kRemoved: {
      size_t k = 0;
      for (auto& p : pieces) if (!std::get<2>(p)) pieces[k++] = p;
      pieces.resize(k);
      break;
    }
    case Behavior::kContiguous:
    case Behavior::kMergedWithPrevious: {
      const bool contiguous = step.behavior == Behavior::kContiguous;
      size_t k = 0;
      bool prev_match = false;
      for (size_t i = 0; i < pieces.size(); ++i) {
        auto [b, e, m] = pieces[i];
        const bool merge = contiguous ? (m == prev_match) : (m && !prev_match);
        if (merge && k > 0) {
          std::get<1>(pieces[k - 1]) = e;
        } else {
          pieces[k++] = {b, e, false};
        }
        prev_match = m;
      }
      pieces.resize(k);
      break;
    }
    case Behavior::kMergedWithNext: {
      // Same fold from the right.
      std::vector<std::tuple<size_t, size_t, bool>> acc;
      bool prev_match = false;
      for (size_t i = pieces.size(); i-- > 0;) {
        auto [b, e, m] = pieces[i];
        if (m && !prev_match && !acc.empty()) {
          std::get<0>(acc.back()) = b;
        } else {
          acc.emplace_back(b, e, false);
        }
        prev_match = m;
      }
      pieces.assign(acc.rbegin(), acc.rend());
      break;
    }
  }
  // Recursing reuses deeper buffers only, so iterating `pieces` is safe.
  for (size_t i = 0; i < pieces.size(); ++i) {
    auto [b, e, m] = pieces[i];
    (void)m;
    DS_RETURN_IF_ERROR(run(depth + 1, piece.substr(b, e - b), out));
  }
  return Status::Ok();
}

}  // namespace ds::tok

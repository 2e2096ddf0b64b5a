// Byte-level BPE tokenizer driven by a Hugging Face tokenizer.json (Qwen2/3,
// DeepSeek-V3, R1-Distill, GPT-2 style), producing the same ids as the Rust
// `tokenizers` library (checked against it by tests/tokenizer). Thread-safe:
// all methods are const and may be called concurrently.
//
// Supported: model BPE (merges as pairs or "a b", unk/fuse_unk, byte_fallback,
// ignore_merges, subword prefix/suffix); normalizers Sequence, NFC, NFD, NFKC,
// NFKD, Lowercase, Prepend, Replace, Strip; pre-tokenizers Sequence, Split
// (all behaviors, invert), ByteLevel (last); post-processors
// TemplateProcessing, Bert, Roberta, ByteLevel, Sequence; decoder ByteLevel or
// none; added tokens with lstrip/rstrip/single_word/normalized/special.
// Anything else (other models, normalizers, pre-tokenizers, decoders,
// dropout > 0, truncation, padding) is a load error naming the field.
//
//   auto tok = ds::Tokenizer::from_files("tokenizer.json", "tokenizer_config.json");
//   auto ids = (*tok)->encode("Hello world");          // Result<std::vector<int32_t>>
//   std::string text = (*tok)->decode(*ids);
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/common/status.h"

namespace ds {

class Tokenizer {
 public:
  // `tokenizer_config_json` may be "" (no bos/eos information).
  static Result<std::unique_ptr<Tokenizer>> from_json(std::string_view tokenizer_json,
                                                      std::string_view tokenizer_config_json);
  // An empty config path means no tokenizer_config.json.
  static Result<std::unique_ptr<Tokenizer>> from_files(const std::string& tokenizer_json_path,
                                                       const std::string& tokenizer_config_json_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Errors on invalid UTF-8 (naming the byte offset).
  Result<std::vector<int32_t>> encode(std::string_view text, bool add_special_tokens = true) const;
  // A sequence pair (the post-processor's pair template).
  Result<std::vector<int32_t>> encode_pair(std::string_view a, std::string_view b,
                                           bool add_special_tokens = true) const;
  // Unknown ids are skipped; invalid UTF-8 produced by the ids becomes U+FFFD.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  int32_t vocab_size() const;  // max id + 1, added tokens included
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;

  // From tokenizer_config.json (a string or an AddedToken dict); empty / nullopt if absent.
  std::optional<int32_t> bos_token_id() const;
  std::optional<int32_t> eos_token_id() const;
  std::optional<int32_t> pad_token_id() const;
  const std::string& bos_token() const;
  const std::string& eos_token() const;
  const std::string& pad_token() const;

  // Low level, for streaming: appends the decoder's raw bytes for one id (no
  // UTF-8 repair). `first` tells whether it is the first emitted token (the
  // decoder-less join inserts a space between tokens). Returns false if the
  // id produced nothing (unknown id or skipped special token).
  bool append_token_bytes(int32_t id, bool skip_special_tokens, bool first, std::string* out) const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Streaming detokenization: push ids, get only complete UTF-8 text, never a
// broken sequence. The concatenation of all push() results and flush() equals
// Tokenizer::decode of the same ids.
class IncrementalDecoder {
 public:
  IncrementalDecoder(const Tokenizer& tok, bool skip_special_tokens);
  std::string push(int32_t id);
  // Whatever is left (an incomplete sequence becomes U+FFFD, as HF does).
  std::string flush();

 private:
  const Tokenizer& tok_;
  bool skip_special_tokens_;
  bool first_ = true;
  std::string pending_;
};

}  // namespace ds

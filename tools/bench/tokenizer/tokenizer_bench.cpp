// Encode throughput of ds_tokenizer.
//
//   tokenizer_bench --tokenizer tokenizer.json [--chunk BYTES] [--repeat N] FILE...
//
// Each FILE is encoded `repeat` times (split into documents of about --chunk
// bytes at UTF-8 boundaries, 0 = whole file); the first pass runs on a fresh
// tokenizer (cold word cache). Prints one JSON object per file:
//   {"file": ..., "bytes": ..., "tokens": ..., "cold_s": ..., "best_s": ..., "median_s": ...}
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "serve/tokenizer/tokenizer.h"

namespace {

std::vector<std::string_view> split_documents(std::string_view text, size_t chunk) {
  std::vector<std::string_view> docs;
  if (chunk == 0) {
    docs.push_back(text);
    return docs;
  }
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = std::min(text.size(), pos + chunk);
    while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
    docs.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return docs;
}

int usage() {
  std::fprintf(stderr, "usage: tokenizer_bench --tokenizer tokenizer.json [--chunk BYTES] [--repeat N] FILE...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string tokenizer_path;
  size_t chunk = 0;
  int repeat = 5;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--tokenizer" && i + 1 < argc) {
      tokenizer_path = argv[++i];
    } else if (a == "--chunk" && i + 1 < argc) {
      chunk = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--repeat" && i + 1 < argc) {
      repeat = std::max(1, std::atoi(argv[++i]));
    } else if (!a.empty() && a[0] == '-') {
      return usage();
    } else {
      files.push_back(a);
    }
  }
  if (tokenizer_path.empty() || files.empty()) return usage();

  using clock = std::chrono::steady_clock;
  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot open %s\n", file.c_str());
      return 1;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    const auto docs = split_documents(text, chunk);

    // A fresh tokenizer per file, so the first pass measures a cold cache.
    auto tok = ds::Tokenizer::from_files(tokenizer_path, "");
    if (!tok.ok()) {
      std::fprintf(stderr, "%s\n", tok.status().message().c_str());
      return 1;
    }
    std::vector<double> times;
    size_t tokens = 0;
    for (int r = 0; r < repeat + 1; ++r) {
      size_t n = 0;
      const auto t0 = clock::now();
      for (std::string_view d : docs) {
        auto ids = (*tok)->encode(d, false);
        if (!ids.ok()) {
          std::fprintf(stderr, "%s: %s\n", file.c_str(), ids.status().message().c_str());
          return 1;
        }
        n += ids->size();
      }
      times.push_back(std::chrono::duration<double>(clock::now() - t0).count());
      tokens = n;
    }
    const double cold = times[0];
    std::vector<double> warm(times.begin() + 1, times.end());
    std::sort(warm.begin(), warm.end());
    std::printf("{\"file\": \"%s\", \"bytes\": %zu, \"docs\": %zu, \"tokens\": %zu, \"cold_s\": %.6f, "
                "\"best_s\": %.6f, \"median_s\": %.6f}\n",
                file.c_str(), text.size(), docs.size(), tokens, cold, warm.front(), warm[warm.size() / 2]);
  }
  return 0;
}

// dsrt as a process: output formats and error behaviour.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>

#include "runtime/common/file_util.h"
#include "tests/runtime/test_util.h"

namespace ds {
namespace {

struct CmdResult {
  int code = -1;
  std::string out, err;
};

class DsrtCli : public ::testing::Test {
 protected:
  void SetUp() override {
    model_.fused = true;
    test::write_bytes(dir_.file("model.safetensors"), test::safetensors_bytes(model_.checkpoint(3)));
    plan_ = dir_.file("tiny.dsplan");
    ASSERT_TRUE(write_file_atomic(plan_, model_.plan_bytes(dir_.path())).ok());
  }
  CmdResult dsrt(const std::string& args) {
    const std::string out = dir_.file("stdout"), err = dir_.file("stderr");
    const std::string cmd = std::string(DSRT_PATH) + " " + args + " >" + out + " 2>" + err;
    const int status = std::system(cmd.c_str());
    CmdResult r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_file(out).value();
    r.err = read_file(err).value();
    return r;
  }
  test::TempDir dir_;
  test::TinyModel model_;
  std::string plan_;
};

TEST_F(DsrtCli, InspectShowsThePlan) {
  CmdResult r = dsrt("inspect " + plan_);
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* s : {"format_version 2", "target cpu", "weights: ", "<- model.layers.0.self_attn.k_proj.weight",
                        "concat(axis 0)", "kv cache: f32, page_size 4", "layers 0-1: 2 kv heads", "program: ",
                        "= rope(", "out.logits = logits."})
    EXPECT_NE(r.out.find(s), std::string::npos) << "missing '" << s << "' in:\n" << r.out;
}

TEST_F(DsrtCli, GenerateJson) {
  CmdResult r = dsrt("generate " + plan_ + " --prompt-ids 1,2,3 --max-new-tokens 5 --ignore-eos --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.contains("output_ids"));
  ASSERT_TRUE(j.contains("text"));
  EXPECT_EQ(j["output_ids"].size(), 5u);
  // Deterministic: the same command gives the same ids; chunking does not change them.
  CmdResult r2 = dsrt("generate " + plan_ + " --prompt-ids 1,2,3 --max-new-tokens 5 --ignore-eos --json --chunked-prefill-size 1");
  ASSERT_EQ(r2.code, 0) << r2.err;
  EXPECT_EQ(nlohmann::json::parse(r2.out)["output_ids"], j["output_ids"]);
  // Sampling with a seed is reproducible.
  const std::string samp = "generate " + plan_ + " --prompt-ids 4,5 --max-new-tokens 6 --ignore-eos --json --temperature 1 --top-p 0.9 --seed 9";
  CmdResult s1 = dsrt(samp), s2 = dsrt(samp);
  ASSERT_EQ(s1.code, 0) << s1.err;
  EXPECT_EQ(nlohmann::json::parse(s1.out)["output_ids"], nlohmann::json::parse(s2.out)["output_ids"]);
  // Timings around the engine's steps.
  ASSERT_TRUE(j.contains("timings")) << r.out;
  const auto& t = j["timings"];
  for (const char* k : {"prefill_ms", "ttft_ms", "decode_ms", "decode_tokens_per_s"}) {
    ASSERT_TRUE(t.contains(k)) << k;
    EXPECT_GE(t[k].get<double>(), 0.0) << k;
  }
  EXPECT_GE(t["ttft_ms"].get<double>(), t["prefill_ms"].get<double>());
}

TEST_F(DsrtCli, CudaPlansAndFlagsGiveClearErrors) {
  // An sm_90a plan: without the CUDA executor, without a GPU, or (on a GPU) because
  // this hand-built plan has no CUDA kernels, the error names the plan's target.
  test::TinyModel gpu = model_;
  gpu.target = "sm_90a";
  const std::string gpu_plan = dir_.file("tiny.sm_90a.dsplan");
  ASSERT_TRUE(write_file_atomic(gpu_plan, gpu.plan_bytes(dir_.path())).ok());
  CmdResult r = dsrt("score " + gpu_plan + " --ids 1,2 --json");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("sm_90a"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
  // The CUDA flags are checked before anything loads.
  r = dsrt("generate " + plan_ + " --prompt-ids 1 --max-new-tokens 1 --mem-fraction-static 1.5");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--mem-fraction-static 1.5 must be in (0, 1)"), std::string::npos) << r.err;
  r = dsrt("score " + plan_ + " --ids 1 --cuda-graph-max-bs -2");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--cuda-graph-max-bs"), std::string::npos) << r.err;
  // On a CPU plan they change nothing.
  r = dsrt("generate " + plan_ + " --prompt-ids 1,2 --max-new-tokens 3 --ignore-eos --json --disable-cuda-graph "
           "--cuda-graph-max-bs 8 --mem-fraction-static 0.5 --disable-custom-all-reduce");
  ASSERT_EQ(r.code, 0) << r.err;
  CmdResult plain = dsrt("generate " + plan_ + " --prompt-ids 1,2 --max-new-tokens 3 --ignore-eos --json");
  EXPECT_EQ(nlohmann::json::parse(r.out)["output_ids"], nlohmann::json::parse(plain.out)["output_ids"]);
}

// The SGLang / vLLM spellings users' launch commands carry: --tensor-parallel-size
// (--tp), --gpu-memory-utilization (--mem-fraction-static), --enforce-eager
// (--disable-cuda-graph), --dtype (checked against the plan's compiled dtype),
// --trust-remote-code and SGLang's --enable-torch-compile (no effect) and vLLM's
// --enable-reasoning (needs --reasoning-parser).
TEST_F(DsrtCli, SglangAndVllmFlagSpellings) {
  const std::string gen = "generate " + plan_ + " --prompt-ids 1,2 --max-new-tokens 3 --ignore-eos --json";
  CmdResult plain = dsrt(gen);
  ASSERT_EQ(plain.code, 0) << plain.err;
  CmdResult r = dsrt(gen + " --tensor-parallel-size 1 --gpu-memory-utilization 0.4 --enforce-eager --dtype auto "
                           "--trust-remote-code --enable-torch-compile");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["output_ids"], nlohmann::json::parse(plain.out)["output_ids"]);
  r = dsrt("score " + plan_ + " --ids 1,2 --json --dtype float32");  // a CPU plan computes in f32
  EXPECT_EQ(r.code, 0) << r.err;
  // A non-zero exit whose stderr contains `text`.
  auto expect_fails = [&](const std::string& args, const std::string& text) {
    const CmdResult f = dsrt(args);
    EXPECT_NE(f.code, 0) << args;
    EXPECT_NE(f.err.find(text), std::string::npos) << args << ": " << f.err;
  };
  const std::string score = "score " + plan_ + " --ids 1,2 --json ";
  expect_fails(score + "--dtype bfloat16", "--dtype bfloat16: plan " + plan_ + " computes in f32");
  expect_fails("score " + plan_ + " --ids 1 --json --dtype int8",
               "--dtype int8: expected auto, bfloat16, float16 or float32");
  // --kv-cache-dtype: auto, or the plan's (a CPU plan keeps f32); FP8 caches and --quantization are refused by name.
  r = dsrt(gen + " --kv-cache-dtype auto --quantization none");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["output_ids"], nlohmann::json::parse(plain.out)["output_ids"]);
  r = dsrt(score + "--kv-cache-dtype float32");
  EXPECT_EQ(r.code, 0) << r.err;
  expect_fails(score + "--kv-cache-dtype fp8_e5m2",
               "--kv-cache-dtype fp8_e5m2: an FP8 KV cache is not implemented; plan " + plan_ +
                   " keeps its KV cache in f32");
  expect_fails(score + "--kv-cache-dtype bfloat16",
               "--kv-cache-dtype bfloat16: plan " + plan_ + " keeps its KV cache in f32");
  expect_fails(score + "--kv-cache-dtype int4", "--kv-cache-dtype int4: expected auto");
  expect_fails(score + "--quantization fp8", "--quantization fp8: FP8 weight quantization is not implemented");
  expect_fails(score + "--quantization awq", "--quantization awq: not supported");
  expect_fails("generate " + plan_ + " --prompt-ids 1 --max-new-tokens 1 --tensor-parallel-size 2",
               "--tp 2 does not match plan");
  expect_fails("generate " + plan_ + " --prompt-ids 1 --max-new-tokens 1 --gpu-memory-utilization 1.5",
               "--mem-fraction-static 1.5 must be in (0, 1)");
  r = dsrt("serve " + plan_ + " --port 0 --enable-reasoning");
  if (r.err.find("unknown subcommand") == std::string::npos) {  // dsrt built with the HTTP server
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("--enable-reasoning needs --reasoning-parser"), std::string::npos) << r.err;
  }
}

TEST_F(DsrtCli, ScoreJson) {
  CmdResult r = dsrt("score " + plan_ + " --ids 1,2,3,4 --top-k 3 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["positions"].size(), 4u);
  for (const auto& p : j["positions"]) {
    EXPECT_EQ(p["top_ids"].size(), 3u);
    EXPECT_EQ(p["top_logits"].size(), 3u);
    EXPECT_TRUE(p["logsumexp"].is_number());
    EXPECT_GE(p["logsumexp"].get<double>(), p["top_logits"][0].get<double>());
  }
}

TEST_F(DsrtCli, DummyWeightsNeedNoCheckpoint) {
  CmdResult r = dsrt("score " + plan_ + " --ids 1,2 --json --load-format dummy --model-path /nonexistent");
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(DsrtCli, ModelPathOverridesTheCheckpoint) {
  // A plan pointing to a missing checkpoint runs with --model-path, with the
  // same result as the plan that points to the right one.
  ASSERT_TRUE(write_file_atomic(dir_.file("moved.dsplan"), model_.plan_bytes("/nonexistent/ckpt")).ok());
  CmdResult bad = dsrt("score " + dir_.file("moved.dsplan") + " --ids 1,2 --json");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("/nonexistent/ckpt"), std::string::npos) << bad.err;
  CmdResult moved = dsrt("score " + dir_.file("moved.dsplan") + " --ids 1,2 --json --model-path " + dir_.path());
  CmdResult orig = dsrt("score " + plan_ + " --ids 1,2 --json");
  ASSERT_EQ(moved.code, 0) << moved.err;
  EXPECT_EQ(moved.out, orig.out);
}

#ifdef DS_TEST_HAVE_GLOO
TEST_F(DsrtCli, TensorParallelScoreMatchesUnsharded) {
  test::TinyModel sharded = model_;
  sharded.tp = 2;
  const std::string tp2 = dir_.file("tp2.dsplan");
  ASSERT_TRUE(write_file_atomic(tp2, sharded.plan_bytes(dir_.path())).ok());
  CmdResult ref = dsrt("score " + plan_ + " --ids 1,2,3,4,5 --top-k 40 --json");
  CmdResult got = dsrt("score " + tp2 + " --ids 1,2,3,4,5 --top-k 40 --json --tp 2");
  ASSERT_EQ(ref.code, 0) << ref.err;
  ASSERT_EQ(got.code, 0) << got.err;
  auto a = nlohmann::json::parse(ref.out)["positions"], b = nlohmann::json::parse(got.out)["positions"];
  ASSERT_EQ(a.size(), b.size());
  for (size_t t = 0; t < a.size(); ++t) {
    EXPECT_NEAR(a[t]["logsumexp"].get<double>(), b[t]["logsumexp"].get<double>(), 1e-4);
    std::map<int, double> la;
    for (size_t j = 0; j < a[t]["top_ids"].size(); ++j) la[a[t]["top_ids"][j].get<int>()] = a[t]["top_logits"][j].get<double>();
    ASSERT_EQ(b[t]["top_ids"].size(), la.size());
    for (size_t j = 0; j < b[t]["top_ids"].size(); ++j)
      EXPECT_NEAR(la[b[t]["top_ids"][j].get<int>()], b[t]["top_logits"][j].get<double>(), 1e-4);
  }
  CmdResult gen1 = dsrt("generate " + plan_ + " --prompt-ids 1,2,3 --max-new-tokens 4 --ignore-eos --json");
  CmdResult gen2 = dsrt("generate " + tp2 + " --prompt-ids 1,2,3 --max-new-tokens 4 --ignore-eos --json --tp 2");
  ASSERT_EQ(gen2.code, 0) << gen2.err;
  EXPECT_EQ(nlohmann::json::parse(gen1.out)["output_ids"], nlohmann::json::parse(gen2.out)["output_ids"]);
  // --tp must match the plan.
  CmdResult bad = dsrt("score " + tp2 + " --ids 1,2 --json");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("--tp 1 does not match plan"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("tp_size 2"), std::string::npos) << bad.err;
  bad = dsrt("score " + plan_ + " --ids 1,2 --json --tp 2");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("--tp 2 does not match plan"), std::string::npos) << bad.err;
}

// A free loopback TCP port (bound, then released).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

TEST_F(DsrtCli, TwoProcessTensorParallelScore) {
  test::TinyModel sharded = model_;
  sharded.tp = 2;
  const std::string tp2 = dir_.file("tp2.dsplan");
  ASSERT_TRUE(write_file_atomic(tp2, sharded.plan_bytes(dir_.path())).ok());
  const int port = free_port();
  ASSERT_GT(port, 0);
  const std::string dist = " --nnodes 2 --dist-timeout 30 --dist-init-addr 127.0.0.1:" + std::to_string(port);
  const std::string args = "score " + tp2 + " --ids 1,2,3,4,5 --top-k 40 --json" + dist;
  // Rank 1 in its own process; rank 0 drives the engine and prints.
  const std::string cmd1 = std::string(DSRT_PATH) + " " + args + " --node-rank 1 >" + dir_.file("out1") + " 2>" +
                           dir_.file("err1");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd1.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  CmdResult r0 = dsrt(args + " --node-rank 0");
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_EQ(r0.code, 0) << r0.err;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(dir_.file("err1")).value();
  EXPECT_EQ(read_file(dir_.file("out1")).value(), "");  // only rank 0 prints
  CmdResult ref = dsrt("score " + plan_ + " --ids 1,2,3,4,5 --top-k 40 --json");
  ASSERT_EQ(ref.code, 0) << ref.err;
  auto a = nlohmann::json::parse(ref.out)["positions"], b = nlohmann::json::parse(r0.out)["positions"];
  ASSERT_EQ(a.size(), b.size());
  for (size_t t = 0; t < a.size(); ++t) {
    EXPECT_NEAR(a[t]["logsumexp"].get<double>(), b[t]["logsumexp"].get<double>(), 1e-4);
    std::map<int, double> la;
    for (size_t j = 0; j < a[t]["top_ids"].size(); ++j) la[a[t]["top_ids"][j].get<int>()] = a[t]["top_logits"][j].get<double>();
    for (size_t j = 0; j < b[t]["top_ids"].size(); ++j)
      EXPECT_NEAR(la[b[t]["top_ids"][j].get<int>()], b[t]["top_logits"][j].get<double>(), 1e-4);
  }
  // A rank whose peer never comes gives up with a clear error.
  const std::string lonely = "score " + tp2 + " --ids 1,2 --json --nnodes 2 --dist-timeout 1 --dist-init-addr 127.0.0.1:" +
                             std::to_string(free_port());
  CmdResult r = dsrt(lonely + " --node-rank 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("rank 1/2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is rank 0 running?"), std::string::npos) << r.err;
  r = dsrt(lonely + " --node-rank 0");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("rank 0/2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("a peer rank is missing"), std::string::npos) << r.err;
  r = dsrt("score " + tp2 + " --ids 1 --nnodes 3 --node-rank 0 --dist-init-addr 127.0.0.1:1");
  EXPECT_NE(r.err.find("--nnodes 3 does not match"), std::string::npos) << r.err;
}
#else
TEST_F(DsrtCli, TensorParallelWithoutGlooIsAClearError) {
  test::TinyModel sharded = model_;
  sharded.tp = 2;
  const std::string tp2 = dir_.file("tp2.dsplan");
  ASSERT_TRUE(write_file_atomic(tp2, sharded.plan_bytes(dir_.path())).ok());
  CmdResult r = dsrt("score " + tp2 + " --ids 1,2 --json --tp 2");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("built without Gloo"), std::string::npos) << r.err;
}
#endif

TEST_F(DsrtCli, ScoreInChunksOfMaxLogitRowsGivesTheSameLogits) {
  CmdResult whole = dsrt("score " + plan_ + " --ids 1,2,3,4,5,6,7 --top-k 3 --json");
  CmdResult chunked = dsrt("score " + plan_ + " --ids 1,2,3,4,5,6,7 --top-k 3 --json --max-logit-rows 2");
  ASSERT_EQ(whole.code, 0) << whole.err;
  ASSERT_EQ(chunked.code, 0) << chunked.err;
  auto a = nlohmann::json::parse(whole.out)["positions"], b = nlohmann::json::parse(chunked.out)["positions"];
  ASSERT_EQ(a.size(), 7u);
  ASSERT_EQ(b.size(), 7u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["top_ids"], b[i]["top_ids"]) << "position " << i;
    EXPECT_FLOAT_EQ(a[i]["top_logits"][0].get<float>(), b[i]["top_logits"][0].get<float>()) << "position " << i;
  }
  CmdResult bad = dsrt("score " + plan_ + " --ids 1,2 --max-logit-rows -1");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("--max-logit-rows must be >= 0"), std::string::npos) << bad.err;
}

TEST_F(DsrtCli, ErrorsAreOneLineAndExit1) {
  auto expect_error = [&](const std::string& args, const std::string& text) {
    CmdResult r = dsrt(args);
    EXPECT_EQ(r.code, 1) << args;
    EXPECT_EQ(r.err.rfind("dsrt: error: ", 0), 0u) << args << ": " << r.err;
    EXPECT_NE(r.err.find(text), std::string::npos) << args << ": " << r.err;
  };
  expect_error("inspect /nonexistent.dsplan", "/nonexistent.dsplan");
  expect_error("score " + plan_ + " --ids 1,x", "'x' is not a token id");
  expect_error("score " + plan_ + " --ids 1,999 --json", "outside the vocabulary");
  expect_error("generate " + plan_ + " --max-new-tokens 2", "exactly one of --prompt and --prompt-ids");
  expect_error("generate " + plan_ + " --prompt hi --max-new-tokens 2", "tokenizer");
  expect_error("generate " + plan_ + " --prompt-ids 1 --max-new-tokens 2 --top-p 0", "top_p");
  expect_error("score " + plan_ + " --ids 1 --model-path " + dir_.file("nope"), "nope");
  expect_error("frobnicate", "frobnicate");
  test::TinyModel old = model_;
  old.format_version = 1;
  ASSERT_TRUE(write_file_atomic(dir_.file("old.dsplan"), old.plan_bytes(dir_.path())).ok());
  expect_error("inspect " + dir_.file("old.dsplan"), "has format version 1 but this dsrt reads version 2");
  ASSERT_TRUE(write_file_atomic(dir_.file("junk.dsplan"), "this is not a plan at all").ok());
  expect_error("score " + dir_.file("junk.dsplan") + " --ids 1", "DSPL");
}

}  // namespace
}  // namespace ds

// The CUDA executor's device memory plan (pure host arithmetic).
#include <gtest/gtest.h>

#include "runtime/executor/memory_plan.h"

namespace ds {
namespace {

constexpr size_t GiB = size_t{1} << 30;
constexpr size_t MiB = size_t{1} << 20;

// A 7B-class model on an 80 GB card: bf16, 28 layers x 4 KV heads x 128 x 2 (K, V) x 2 bytes per token.
MemoryPlanInput h100_7b() {
  MemoryPlanInput in;
  in.device_total = static_cast<size_t>(79.1 * GiB);
  in.device_free = in.device_total - 500 * MiB;
  in.mem_fraction_static = 0.88;
  in.weight_bytes = static_cast<size_t>(15.2 * GiB);
  in.arena_bytes_per_token = 200 * 1024;
  in.chunked_prefill_size = 2048;
  in.vocab_size = 152064;
  in.kv_bytes_per_page = 16 * 28 * 4 * 128 * 2 * 2;
  in.page_size = 16;
  in.max_model_len = 32768;
  in.max_running_requests = 256;
  return in;
}

void expect_error(const Result<MemoryPlan>& r, std::initializer_list<const char*> parts) {
  ASSERT_FALSE(r.ok());
  for (const char* p : parts)
    EXPECT_NE(r.status().message().find(p), std::string::npos) << "missing '" << p << "' in: " << r.status().message();
}

TEST(MemoryPlan, StaticPartHoldsWeightsAndKvPool) {
  const MemoryPlanInput in = h100_7b();
  auto r = plan_device_memory(in);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const size_t static_bytes = static_cast<size_t>(static_cast<double>(in.device_total) * 0.88);
  EXPECT_EQ(r->static_bytes, static_bytes);
  EXPECT_EQ(r->kv_pages, static_cast<int64_t>((static_bytes - in.weight_bytes) / in.kv_bytes_per_page));
  EXPECT_EQ(r->kv_tokens, r->kv_pages * 16);
  EXPECT_LE(r->kv_pool_bytes + in.weight_bytes, static_bytes);
  EXPECT_EQ(r->activation_bytes, activation_bytes(in, 2048));
  EXPECT_LE(r->activation_bytes, in.device_total - static_bytes);
  EXPECT_EQ(r->max_running_requests, 256);
  EXPECT_TRUE(r->notes.empty());
  EXPECT_NE(r->summary(in.device_total).find("KV pool"), std::string::npos);
}

TEST(MemoryPlan, ActivationsCountEveryPart) {
  MemoryPlanInput in = h100_7b();
  const size_t logits = 2048 * 152064 * 4;
  EXPECT_EQ(activation_bytes(in, 2048), 200 * 1024 * 2048 + 2 * logits + kCublasLtWorkspaceBytes +
                                            kAttentionWorkspaceBytes + kCudaGraphReserveBytes);
  in.enable_cuda_graph = false;
  in.max_logit_rows = 256;
  in.sampler_bytes = 10 * MiB;
  EXPECT_EQ(activation_bytes(in, 2048), 200 * 1024 * 2048 + size_t{256} * 152064 * 4 + 10 * MiB +
                                            kCublasLtWorkspaceBytes + kAttentionWorkspaceBytes);
}

TEST(MemoryPlan, WeightsTooLargeNamesTheFraction) {
  MemoryPlanInput in = h100_7b();
  in.weight_bytes = 61 * GiB;
  in.mem_fraction_static = 0.6;
  // Needs (61 GiB + 32768 tokens of KV = 1.75 GiB) / 79.1 GiB = 0.794 -> 0.80.
  expect_error(plan_device_memory(in), {"the weights (61.0 GiB) do not fit in --mem-fraction-static 0.60 of 79.1 GiB",
                                        "use --mem-fraction-static >= 0.80", "(or --tp 2)"});
  in.weight_bytes = 200 * GiB;
  expect_error(plan_device_memory(in), {"the weights (200.0 GiB)", "does not fit this GPU", "--tp 4"});
}

TEST(MemoryPlan, KvPoolShorterThanMaxModelLen) {
  MemoryPlanInput in = h100_7b();
  in.weight_bytes = 68 * GiB;  // static 69.6 GiB leaves ~1.6 GiB: ~29,000 tokens < 32768
  auto r = plan_device_memory(in);
  ASSERT_FALSE(r.ok());
  const std::string m = r.status().message();
  EXPECT_NE(m.find("tokens, fewer than --max-model-len 32768"), std::string::npos) << m;
  EXPECT_NE(m.find("raise --mem-fraction-static to 0.89"), std::string::npos) << m;
  EXPECT_NE(m.find("or lower --max-model-len to "), std::string::npos) << m;
  // Following the advice works.
  in.mem_fraction_static = 0.89;
  EXPECT_TRUE(plan_device_memory(in).ok());
}

TEST(MemoryPlan, ActivationsTooLargeSuggestChunkAndFraction) {
  MemoryPlanInput in = h100_7b();
  in.chunked_prefill_size = 16384;  // logits alone: 2 x 16384 x 152064 x 4 = 18.6 GiB > 9.5 GiB left
  auto r = plan_device_memory(in);
  ASSERT_FALSE(r.ok());
  const std::string m = r.status().message();
  EXPECT_NE(m.find("activations for --chunked-prefill-size 16384 need"), std::string::npos) << m;
  EXPECT_NE(m.find("lower it to 4096"), std::string::npos) << m;
  EXPECT_NE(m.find("lower --mem-fraction-static to 0."), std::string::npos) << m;
  in.chunked_prefill_size = 4096;
  EXPECT_TRUE(plan_device_memory(in).ok());
}

TEST(MemoryPlan, FreeMemoryShrinksThePoolAndCapsRequests) {
  MemoryPlanInput in = h100_7b();
  in.device_free = 24 * GiB;  // another process holds most of the card
  in.max_running_requests = 100000;
  auto r = plan_device_memory(in);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_LE(in.weight_bytes + r->kv_pool_bytes + r->activation_bytes, in.device_free);
  EXPECT_EQ(r->max_running_requests, r->kv_pages);
  ASSERT_EQ(r->notes.size(), 2u);
  EXPECT_NE(r->notes[0].find("limited to"), std::string::npos);
  EXPECT_NE(r->notes[1].find("--max-running-requests capped to"), std::string::npos);
  in.device_free = 16 * GiB;  // not even weights + activations
  expect_error(plan_device_memory(in), {"only 16.0 GiB of the GPU's 79.1 GiB are free"});
}

TEST(MemoryPlan, InvalidInputsNameTheFlag) {
  MemoryPlanInput in = h100_7b();
  in.mem_fraction_static = 1.0;
  expect_error(plan_device_memory(in), {"--mem-fraction-static 1 must be in (0, 1)"});
  in = h100_7b();
  in.max_running_requests = 0;
  expect_error(plan_device_memory(in), {"--max-running-requests 0"});
  in = h100_7b();
  in.chunked_prefill_size = 0;
  expect_error(plan_device_memory(in), {"--chunked-prefill-size 0"});
}

}  // namespace
}  // namespace ds

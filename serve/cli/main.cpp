// dsrt: runs dscc plans. Subcommands: inspect, generate, score.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "serve/cli/commands.h"
#ifdef DS_HAVE_HTTP
#include "serve/cli/serve_command.h"
#endif

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "dsrt: error: %s\n", message.c_str());
  return 1;
}

void add_load_options(CLI::App* cmd, ds::cli::LoadOptions& load) {
  cmd->add_option("plan", load.plan_path, "Plan file written by dscc")->required();
  cmd->add_option("--model-path", load.model_path, "Checkpoint directory (overrides the plan's checkpoint_path)");
  cmd->add_option("--load-format", load.load_format, "auto | safetensors | dummy (random weights)")
      ->check(CLI::IsMember({"auto", "safetensors", "dummy"}));
  cmd->add_option("--dummy-seed", load.dummy_seed, "Seed of the dummy weights");
  cmd->add_option("--tp,--tensor-parallel-size", load.tp,
                  "Tensor-parallel ranks of the whole group (one thread each in this process, or split over "
                  "--nnodes processes); must equal the plan's tp_size (dscc --tp)");
  cmd->add_option("--dtype", load.dtype,
                  "auto, or the dtype the plan must compute in (bfloat16 | float16 | float32; dscc compiles it in)");
  cmd->add_option("--kv-cache-dtype", load.kv_cache_dtype,
                  "auto, or the KV cache dtype the plan holds (bfloat16 on CUDA plans); fp8_e5m2 / fp8_e4m3 are not "
                  "implemented");
  cmd->add_option("--quantization", load.quantization,
                  "Weight quantization (SGLang / vLLM): none; the plan runs the weights dscc compiled into it (fp8 is "
                  "not implemented)");
  cmd->add_flag("--trust-remote-code", load.trust_remote_code,
                "Accepted for SGLang / vLLM commands; no effect (dsrt runs no code from a checkpoint)");
  cmd->add_flag("--enable-torch-compile", load.enable_torch_compile,
                "Accepted for SGLang commands; no effect (dscc compiled and fused the model ahead of time, and "
                "decode steps replay CUDA graphs)");
  cmd->add_option("--nnodes", load.nnodes,
                  "Multi-process tensor parallelism: number of processes; the plan's tp_size ranks split evenly "
                  "over them (--tp N --nnodes K: N / K ranks, and for CUDA plans N / K GPUs, in each)");
  cmd->add_option("--node-rank", load.node_rank, "This process's rank (0 drives the engine)");
  cmd->add_option("--dist-init-addr", load.dist_init_addr, "HOST:PORT where rank 0 serves the rendezvous store");
  cmd->add_option("--dist-timeout", load.dist_timeout, "Seconds before a missing or dead peer ends every rank (default 20; raise it when nodes start far apart)");
  cmd->add_option("--base-gpu-id", load.base_gpu_id,
                  "CUDA plans: first GPU to use (this process's rank r runs on base + r, with or without --nnodes)");
  cmd->add_flag("--enable-p2p-check", load.enable_p2p_check,
                "CUDA plans with --tp: check that every pair of the ranks' GPUs can access each other");
  cmd->add_flag("--disable-custom-all-reduce", load.disable_custom_all_reduce,
                "CUDA plans with --tp: every all-reduce through NCCL (no one-shot peer-to-peer kernel for the "
                "small decode all-reduces; same as DSRT_CUSTOM_ALLREDUCE=0)");
}

// CUDA executor knobs (sm_* plans); serve registers --mem-fraction-static itself.
void add_cuda_options(CLI::App* cmd, ds::cli::CudaArgs& c, bool mem_fraction) {
  if (mem_fraction)
    cmd->add_option("--mem-fraction-static,--gpu-memory-utilization", c.mem_fraction_static,
                    "CUDA plans: fraction of GPU memory for weights + KV cache; checked before loading");
  cmd->add_option("--cuda-graph-max-bs", c.cuda_graph_max_bs,
                  "CUDA plans: largest decode batch replayed from a CUDA graph (default by GPU memory: 8 below "
                  "20 GiB, 32 below 35, 128 below 60, 256 below 90 (H100), else 512 (H200); capped by the "
                  "running requests)");
  cmd->add_flag("--disable-cuda-graph,--enforce-eager", c.disable_cuda_graph, "CUDA plans: run every step eagerly");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dsrt: runs dscc plans (CPU reference backend; CUDA for sm_* plans)", "dsrt"};
  app.require_subcommand(1);

  std::string inspect_plan;
  CLI::App* inspect = app.add_subcommand("inspect", "Print a plan readably");
  inspect->add_option("plan", inspect_plan, "Plan file")->required();

  ds::cli::GenerateArgs gen;
  CLI::App* generate = app.add_subcommand("generate", "Generate tokens for one prompt");
  add_load_options(generate, gen.load);
  auto* prompt_opt = generate->add_option("--prompt", gen.prompt, "Prompt text (encoded with the plan's tokenizer)");
  auto* ids_opt = generate->add_option("--prompt-ids", gen.prompt_ids, "Prompt token ids, e.g. 1,2,3");
  prompt_opt->excludes(ids_opt);
  generate->add_option("--max-new-tokens", gen.max_new_tokens, "Tokens to generate at most")->required();
  generate->add_option("--temperature", gen.temperature, "0 = greedy");
  generate->add_option("--top-p", gen.top_p, "Nucleus sampling mass in (0, 1]");
  generate->add_option("--top-k", gen.top_k, "Keep the k most likely tokens (-1: off)");
  generate->add_option("--min-p", gen.min_p, "Drop tokens below min_p x the top probability");
  generate->add_option("--seed", gen.seed, "Sampling seed");
  generate->add_flag("--ignore-eos", gen.ignore_eos, "Do not stop at end-of-sequence tokens");
  generate->add_flag("--json", gen.json, "Print {\"output_ids\": [...], \"text\": ...}");
  generate->add_option("--chunked-prefill-size", gen.chunked_prefill_size, "Tokens per step (arena capacity)");
  add_cuda_options(generate, gen.cuda, true);

  ds::cli::ScoreArgs sc;
  CLI::App* score = app.add_subcommand("score", "Teacher-forced logits for a token sequence");
  add_load_options(score, sc.load);
  score->add_option("--ids", sc.ids, "Token ids, e.g. 1,2,3")->required();
  score->add_option("--top-k", sc.top_k, "Top logits reported per position");
  score->add_flag("--json", sc.json, "Print JSON (the only output format)");
  score->add_option("--chunked-prefill-size", sc.chunked_prefill_size, "Tokens per step (arena capacity)");
  score->add_option("--logits-out", sc.logits_out,
                    "Also write every position's full logits to this file (float32 .npy, shape [T, vocab])");
  score->add_option("--max-logit-rows", sc.max_logit_rows,
                    "Logit rows per step (the CUDA logits buffer): the ids are fed in chunks of at most this many "
                    "tokens (0: min(chunked prefill size, 256))");
  add_cuda_options(score, sc.cuda, true);

#ifdef DS_HAVE_HTTP
  ds::cli::ServeArgs srv;
  CLI::App* serve = app.add_subcommand("serve", "OpenAI-compatible HTTP server");
  add_load_options(serve, srv.load);
  ds::cli::add_serve_options(serve, srv);
  add_cuda_options(serve, srv.cuda, false);
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    const std::string first = argc > 1 ? argv[1] : "";
    if (!first.empty() && first[0] != '-' && first != "inspect" && first != "generate" && first != "score")
      return fail(std::string("unknown subcommand '") + argv[1] + "' (expected inspect, generate or score)");
    return fail(e.what());
  }

  try {
    ds::Status st;
    if (*inspect) {
      st = ds::cli::run_inspect(inspect_plan);
    } else if (*generate) {
      gen.has_prompt = prompt_opt->count() > 0;
      gen.has_prompt_ids = ids_opt->count() > 0;
      st = ds::cli::run_generate(gen);
    } else if (*score) {
      st = ds::cli::run_score(sc);
    }
#ifdef DS_HAVE_HTTP
    if (*serve) st = ds::cli::run_serve(srv);
#endif
    if (!st.ok()) return fail(st.message());
  } catch (const std::bad_alloc&) {
    return fail("out of memory");
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what());
  }
  return 0;
}

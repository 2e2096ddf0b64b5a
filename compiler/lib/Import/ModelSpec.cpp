//===- ModelSpec.cpp - Read and validate a HF model directory --------------===//
//
// config.json -> hyper-parameters (Qwen2 / Llama), checkpoint headers -> the
// tensors each layer reads (shape and dtype checked), tokenizer and generation
// files -> metadata. Every error names the file and the field or tensor.
//
// With ModelSpecOptions::dummyWeights (dscc --load-format dummy) no checkpoint
// is read: every tensor gets the header a Hugging Face checkpoint of this
// config has (name, HF shape, the config's torch_dtype, file
// "model.safetensors"), so the plan runs with dsrt --load-format dummy or
// with a real checkpoint passed by --model-path.
//
//===----------------------------------------------------------------------===//

#include "ds/Import/ModelSpec.h"

#include <filesystem>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "JsonFields.h"
#include "TokenizerFiles.h"
#include "runtime/common/file_util.h"
#include "runtime/weights/safetensors.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace ds {
namespace {

std::string shapeStr(const std::vector<int64_t> &shape) {
  StrCat s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

bool isFloatDType(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16;
}

/// Looks up checkpoint tensors and remembers which ones the model uses; or,
/// without a checkpoint, synthesizes each tensor's header.
class TensorCollector {
public:
  explicit TensorCollector(const Checkpoint &ckpt) : ckpt(&ckpt) {}
  /// Checkpoint-less: every tensor is `dtype`, in "model.safetensors".
  explicit TensorCollector(DType dtype) : dummyDType(dtype) {}

  Result<CheckpointTensor> get(const std::string &name, const std::vector<int64_t> &shape) {
    if (!ckpt) return CheckpointTensor{name, "model.safetensors", dummyDType, shape};
    Result<TensorInfo> info = ckpt->info(name);
    if (!info.ok())
      return Status::Error(StrCat() << "checkpoint " << ckpt->dir() << ": missing tensor '" << name
                                    << "' (expected shape " << shapeStr(shape) << ")");
    DS_ASSIGN_OR_RETURN(std::string file, ckpt->file_of(name));
    std::string path = ckpt->dir() + "/" + file;
    if (info->shape != shape)
      return Status::Error(StrCat() << path << ": tensor '" << name << "' has shape "
                                    << shapeStr(info->shape) << ", expected " << shapeStr(shape));
    if (!isFloatDType(info->dtype))
      return Status::Error(StrCat() << path << ": tensor '" << name << "' has dtype "
                                    << dtype_name(info->dtype)
                                    << "; only f32, f16 and bf16 weights are supported");
    used.insert(name);
    return CheckpointTensor{name, file, info->dtype, info->shape};
  }

  Result<std::optional<CheckpointTensor>> getIf(bool present, const std::string &name,
                                                const std::vector<int64_t> &shape) {
    if (!present) return std::optional<CheckpointTensor>();
    DS_ASSIGN_OR_RETURN(CheckpointTensor t, get(name, shape));
    return std::optional<CheckpointTensor>(std::move(t));
  }

  /// Warnings for tensors the model does not read (rotary inv_freq buffers are
  /// silently ignored).
  void warnUnused(std::vector<std::string> &warnings) const {
    if (!ckpt) return;
    std::vector<std::string> unused;
    for (const std::string &name : ckpt->tensor_names()) {
      if (used.count(name)) continue;
      if (name.ends_with("rotary_emb.inv_freq")) continue;
      unused.push_back(name);
    }
    constexpr size_t kMaxListed = 8;
    for (size_t i = 0; i < unused.size() && i < kMaxListed; ++i)
      warnings.push_back(StrCat() << "ignoring unused checkpoint tensor '" << unused[i] << "'");
    if (unused.size() > kMaxListed)
      warnings.push_back(StrCat() << "ignoring " << unused.size() - kMaxListed
                                  << " more unused checkpoint tensors");
  }

private:
  const Checkpoint *ckpt = nullptr;
  DType dummyDType = DType::kBF16;
  std::set<std::string> used;
};

/// The weight dtype of a checkpoint-less model: config.json "torch_dtype"
/// (transformers 4) or "dtype" (transformers 5), bf16 when neither is given.
Result<DType> configWeightDType(const JsonFields &cfg) {
  std::string key = cfg.has("dtype") ? "dtype" : "torch_dtype";
  DS_ASSIGN_OR_RETURN(std::string name, cfg.string(key, "bfloat16"));
  if (name == "bfloat16") return DType::kBF16;
  if (name == "float16") return DType::kF16;
  if (name == "float32") return DType::kF32;
  return cfg.error(key, StrCat() << "'" << name
                                 << "' is not a supported weight dtype (bfloat16, float16 or float32)");
}

/// The checkpoint of `dir`, or an error that suggests --load-format dummy
/// when the directory has no weights at all.
Result<std::unique_ptr<Checkpoint>> openCheckpoint(const std::string &dir) {
  std::error_code ec;
  if (!fs::exists(dir + "/model.safetensors.index.json", ec) && !fs::exists(dir + "/model.safetensors", ec))
    return Status::Error(StrCat() << "checkpoint directory " << dir
                                  << " has neither model.safetensors.index.json nor model.safetensors"
                                     " (to compile from config.json alone, with random weights at run time,"
                                     " pass --load-format dummy)");
  return Checkpoint::open(dir, /*map_data=*/false);
}

Status readHyperParameters(const JsonFields &cfg, ModelSpec &spec) {
  DS_ASSIGN_OR_RETURN(spec.hiddenSize, cfg.positiveInt("hidden_size"));
  DS_ASSIGN_OR_RETURN(spec.intermediateSize, cfg.positiveInt("intermediate_size"));
  DS_ASSIGN_OR_RETURN(spec.numLayers, cfg.positiveInt("num_hidden_layers"));
  DS_ASSIGN_OR_RETURN(spec.numHeads, cfg.positiveInt("num_attention_heads"));
  DS_ASSIGN_OR_RETURN(spec.numKvHeads, cfg.positiveInt("num_key_value_heads", spec.numHeads));
  DS_ASSIGN_OR_RETURN(spec.vocabSize, cfg.positiveInt("vocab_size"));
  DS_ASSIGN_OR_RETURN(spec.maxPositionEmbeddings, cfg.positiveInt("max_position_embeddings"));
  if (spec.numHeads % spec.numKvHeads != 0)
    return cfg.error("num_attention_heads", StrCat() << "(" << spec.numHeads
                                                     << ") must be a multiple of num_key_value_heads ("
                                                     << spec.numKvHeads << ")");
  if (cfg.has("head_dim")) {
    DS_ASSIGN_OR_RETURN(spec.headDim, cfg.positiveInt("head_dim"));
  } else {
    if (spec.hiddenSize % spec.numHeads != 0)
      return cfg.error("hidden_size", StrCat() << "(" << spec.hiddenSize
                                               << ") is not a multiple of num_attention_heads ("
                                               << spec.numHeads << ") and head_dim is not given");
    spec.headDim = spec.hiddenSize / spec.numHeads;
  }
  // The plan stores sizes as int32.
  for (auto [key, value] : {std::pair<const char *, int64_t>{"hidden_size", spec.hiddenSize},
                            {"intermediate_size", spec.intermediateSize},
                            {"num_hidden_layers", spec.numLayers},
                            {"num_attention_heads", spec.numHeads},
                            {"vocab_size", spec.vocabSize},
                            {"max_position_embeddings", spec.maxPositionEmbeddings},
                            {"head_dim", spec.headDim}})
    if (value > std::numeric_limits<int32_t>::max() / 4)
      return cfg.error(key, StrCat() << value << " is too large");
  DS_ASSIGN_OR_RETURN(spec.rmsNormEps, cfg.number("rms_norm_eps", 1e-6));
  if (!(spec.rmsNormEps > 0)) return cfg.error("rms_norm_eps", "must be positive");
  DS_ASSIGN_OR_RETURN(spec.tieWordEmbeddings, cfg.boolean("tie_word_embeddings", false));
  DS_ASSIGN_OR_RETURN(std::string act, cfg.string("hidden_act", "silu"));
  if (act != "silu")
    return cfg.error("hidden_act", StrCat() << "'" << act << "' is not supported (only silu)");
  DS_ASSIGN_OR_RETURN(bool slidingWindow, cfg.boolean("use_sliding_window", false));
  if (slidingWindow) return cfg.error("use_sliding_window", "sliding-window attention is not supported");
  return Status::Ok();
}

/// rope_theta + rope_scaling (transformers 4) or rope_parameters (transformers 5).
Status readRope(const JsonFields &cfg, ModelSpec &spec) {
  RopeSpec &rope = spec.rope;
  DS_ASSIGN_OR_RETURN(rope.theta, cfg.number("rope_theta", 10000.0));
  DS_ASSIGN_OR_RETURN(double partial, cfg.number("partial_rotary_factor", 1.0));
  rope.rotaryDim = static_cast<int64_t>(static_cast<double>(spec.headDim) * partial);
  if (partial <= 0 || partial > 1 || rope.rotaryDim % 2 != 0)
    return cfg.error("partial_rotary_factor", "must give an even number of rotary dims in (0, head_dim]");

  std::string key = cfg.has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  if (!cfg.has(key)) return Status::Ok();
  DS_ASSIGN_OR_RETURN(JsonFields params, cfg.object(key));
  if (params.has("rope_theta")) {
    DS_ASSIGN_OR_RETURN(rope.theta, params.number("rope_theta"));
  }
  if (!(rope.theta > 0)) return cfg.error("rope_theta", "must be positive");
  std::string typeKey = params.has("rope_type") ? "rope_type" : "type";
  DS_ASSIGN_OR_RETURN(std::string type, params.string(typeKey, "default"));
  if (type == "default") return Status::Ok();
  if (type == "linear") {
    rope.scaling = "linear";
    DS_ASSIGN_OR_RETURN(rope.factor, params.number("factor"));
  } else if (type == "yarn") {
    rope.scaling = "yarn";
    DS_ASSIGN_OR_RETURN(rope.factor, params.number("factor"));
    DS_ASSIGN_OR_RETURN(rope.originalMaxPosition,
                        params.positiveInt("original_max_position_embeddings", spec.maxPositionEmbeddings));
    DS_ASSIGN_OR_RETURN(rope.betaFast, params.number("beta_fast", 32.0));
    DS_ASSIGN_OR_RETURN(rope.betaSlow, params.number("beta_slow", 1.0));
    DS_ASSIGN_OR_RETURN(rope.mscale, params.number("mscale", 1.0));
    DS_ASSIGN_OR_RETURN(rope.mscaleAllDim, params.number("mscale_all_dim", 0.0));
    if (params.has("attention_factor"))
      return params.error("attention_factor", "an explicit YaRN attention_factor is not supported");
  } else {
    return params.error(typeKey, StrCat() << "rope scaling type '" << type
                                          << "' is not supported (supported: default, linear, yarn)");
  }
  if (!(rope.factor > 0)) return params.error("factor", "must be positive");
  return Status::Ok();
}

Status readTensors(const JsonFields &cfg, TensorCollector &tc, ModelSpec &spec) {
  bool llama = spec.architecture == "LlamaForCausalLM";
  bool qkvBias = true, oBias = false, mlpBias = false;
  if (llama) {
    DS_ASSIGN_OR_RETURN(qkvBias, cfg.boolean("attention_bias", false));
    oBias = qkvBias;
    DS_ASSIGN_OR_RETURN(mlpBias, cfg.boolean("mlp_bias", false));
  }
  const int64_t h = spec.hiddenSize, inter = spec.intermediateSize;
  const int64_t qDim = spec.numHeads * spec.headDim, kvDim = spec.numKvHeads * spec.headDim;
  DS_ASSIGN_OR_RETURN(spec.embedTokens, tc.get("model.embed_tokens.weight", {spec.vocabSize, h}));
  for (int64_t l = 0; l < spec.numLayers; ++l) {
    std::string p = StrCat() << "model.layers." << l << ".";
    LayerTensors lt;
    DS_ASSIGN_OR_RETURN(lt.inputNorm, tc.get(p + "input_layernorm.weight", {h}));
    DS_ASSIGN_OR_RETURN(lt.qProj, tc.get(p + "self_attn.q_proj.weight", {qDim, h}));
    DS_ASSIGN_OR_RETURN(lt.qBias, tc.getIf(qkvBias, p + "self_attn.q_proj.bias", {qDim}));
    DS_ASSIGN_OR_RETURN(lt.kProj, tc.get(p + "self_attn.k_proj.weight", {kvDim, h}));
    DS_ASSIGN_OR_RETURN(lt.kBias, tc.getIf(qkvBias, p + "self_attn.k_proj.bias", {kvDim}));
    DS_ASSIGN_OR_RETURN(lt.vProj, tc.get(p + "self_attn.v_proj.weight", {kvDim, h}));
    DS_ASSIGN_OR_RETURN(lt.vBias, tc.getIf(qkvBias, p + "self_attn.v_proj.bias", {kvDim}));
    DS_ASSIGN_OR_RETURN(lt.oProj, tc.get(p + "self_attn.o_proj.weight", {h, qDim}));
    DS_ASSIGN_OR_RETURN(lt.oBias, tc.getIf(oBias, p + "self_attn.o_proj.bias", {h}));
    DS_ASSIGN_OR_RETURN(lt.postAttentionNorm, tc.get(p + "post_attention_layernorm.weight", {h}));
    DS_ASSIGN_OR_RETURN(lt.gateProj, tc.get(p + "mlp.gate_proj.weight", {inter, h}));
    DS_ASSIGN_OR_RETURN(lt.gateBias, tc.getIf(mlpBias, p + "mlp.gate_proj.bias", {inter}));
    DS_ASSIGN_OR_RETURN(lt.upProj, tc.get(p + "mlp.up_proj.weight", {inter, h}));
    DS_ASSIGN_OR_RETURN(lt.upBias, tc.getIf(mlpBias, p + "mlp.up_proj.bias", {inter}));
    DS_ASSIGN_OR_RETURN(lt.downProj, tc.get(p + "mlp.down_proj.weight", {h, inter}));
    DS_ASSIGN_OR_RETURN(lt.downBias, tc.getIf(mlpBias, p + "mlp.down_proj.bias", {h}));
    spec.layers.push_back(std::move(lt));
  }
  DS_ASSIGN_OR_RETURN(spec.finalNorm, tc.get("model.norm.weight", {h}));
  if (spec.tieWordEmbeddings) {
    spec.lmHead = spec.embedTokens;
  } else {
    DS_ASSIGN_OR_RETURN(spec.lmHead, tc.get("lm_head.weight", {spec.vocabSize, h}));
  }
  tc.warnUnused(spec.warnings);
  return Status::Ok();
}

}  // namespace

Result<ModelSpec> loadModelSpec(const std::string &modelDir, const ModelSpecOptions &options) {
  std::error_code ec;
  fs::path dir = fs::absolute(fs::path(modelDir), ec).lexically_normal();
  if (ec || !fs::is_directory(dir, ec))
    return Status::Error(StrCat() << modelDir << ": not a model directory");
  std::string dirStr = dir.string();
  if (dirStr.size() > 1 && dirStr.back() == '/') dirStr.pop_back();

  ModelSpec spec;
  spec.checkpointPath = dirStr;
  spec.name = fs::path(dirStr).filename().string();

  std::string configPath = dirStr + "/config.json";
  DS_ASSIGN_OR_RETURN(spec.configJson, read_file(configPath));
  DS_ASSIGN_OR_RETURN(json config, parseJson(spec.configJson, configPath));
  JsonFields cfg(config, configPath);
  if (!config.is_object()) return cfg.error("", "must be a JSON object");

  DS_ASSIGN_OR_RETURN(std::vector<std::string> archs, cfg.stringList("architectures"));
  if (archs.empty()) return cfg.error("architectures", "is empty");
  spec.architecture = archs.front();
  if (spec.architecture != "Qwen2ForCausalLM" && spec.architecture != "LlamaForCausalLM")
    return cfg.error("architectures", StrCat() << "unsupported architecture '" << spec.architecture
                                               << "' (supported: Qwen2ForCausalLM, LlamaForCausalLM)");
  DS_ASSIGN_OR_RETURN(spec.modelType, cfg.string("model_type", ""));
  DS_RETURN_IF_ERROR(readHyperParameters(cfg, spec));
  DS_RETURN_IF_ERROR(readRope(cfg, spec));

  if (options.maxModelLen < 0 || options.maxModelLen > std::numeric_limits<int32_t>::max())
    return Status::Error(StrCat() << "--max-model-len " << options.maxModelLen << " is out of range");
  spec.maxModelLen = options.maxModelLen > 0 ? options.maxModelLen : spec.maxPositionEmbeddings;
  if (spec.maxModelLen > spec.maxPositionEmbeddings && spec.rope.scaling == "none")
    spec.warnings.push_back(StrCat() << "--max-model-len " << spec.maxModelLen
                                     << " exceeds max_position_embeddings " << spec.maxPositionEmbeddings);

  if (options.dummyWeights) {
    DS_ASSIGN_OR_RETURN(DType dtype, configWeightDType(cfg));
    TensorCollector tc(dtype);
    DS_RETURN_IF_ERROR(readTensors(cfg, tc, spec));
  } else {
    DS_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> ckpt, openCheckpoint(dirStr));
    TensorCollector tc(*ckpt);
    DS_RETURN_IF_ERROR(readTensors(cfg, tc, spec));
  }
  DS_RETURN_IF_ERROR(readTokenizerFiles(dirStr, cfg, spec, /*required=*/!options.dummyWeights));
  return spec;
}

}  // namespace ds

//===- ModelSpec.h - Validated description of a HF checkpoint ---*- C++ -*-===//
//
// A ModelSpec is everything dscc needs to know about a Hugging Face model
// directory, read and validated once: the architecture hyper-parameters from
// config.json, the header info (file, dtype, shape) of every checkpoint tensor
// the model uses, the tokenizer files and the generation defaults. It is
// MLIR-free; the importer turns it into ds IR and the exporter copies its
// metadata into the plan.
//
// Supported architectures: Qwen2ForCausalLM and LlamaForCausalLM (dense,
// RMSNorm, rotary embeddings, SiLU-gated MLP, GQA).
//
//===----------------------------------------------------------------------===//

#ifndef DS_IMPORT_MODELSPEC_H
#define DS_IMPORT_MODELSPEC_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/common/dtype.h"
#include "runtime/common/status.h"

namespace ds {

/// Rotary embedding parameters, with the meaning of plan.fbs RopeConfig.
struct RopeSpec {
  double theta = 10000.0;
  std::string style = "neox";    // "neox" | "interleaved"
  int64_t rotaryDim = 0;         // dims rotated per head
  std::string scaling = "none";  // "none" | "linear" | "yarn"
  double factor = 1.0;
  int64_t originalMaxPosition = 0;
  double betaFast = 32.0;
  double betaSlow = 1.0;
  double mscale = 1.0;
  double mscaleAllDim = 0.0;
};

/// One checkpoint tensor the model reads, as its safetensors header says.
struct CheckpointTensor {
  std::string name;
  std::string file;  // relative to the checkpoint directory
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
};

/// Tensors of one decoder layer. Optional biases are absent when the
/// architecture has none.
struct LayerTensors {
  CheckpointTensor inputNorm, postAttentionNorm;
  CheckpointTensor qProj, kProj, vProj, oProj;
  std::optional<CheckpointTensor> qBias, kBias, vBias, oBias;
  CheckpointTensor gateProj, upProj, downProj;
  std::optional<CheckpointTensor> gateBias, upBias, downBias;
};

struct TokenizerSpec {
  std::string tokenizerJson;        // verbatim
  std::string tokenizerConfigJson;  // verbatim
  std::string chatTemplate;         // chat_template.jinja, else tokenizer_config.json
  int64_t bosTokenId = -1;
  std::vector<int64_t> eosTokenIds;
  int64_t padTokenId = -1;
};

struct GenerationSpec {
  bool doSample = false;
  double temperature = 1.0;
  double topP = 1.0;
  int64_t topK = -1;
  double minP = 0.0;
  double repetitionPenalty = 1.0;
  std::vector<int64_t> eosTokenIds;
  std::string generationConfigJson;  // verbatim, empty when the file is absent
};

struct ModelSpec {
  // Identity.
  std::string architecture;  // config.json "architectures"[0]
  std::string modelType;
  std::string name;            // default served model name (directory name)
  std::string checkpointPath;  // absolute
  std::string configJson;      // verbatim

  // Hyper-parameters.
  int64_t hiddenSize = 0;
  int64_t intermediateSize = 0;
  int64_t numLayers = 0;
  int64_t numHeads = 0;
  int64_t numKvHeads = 0;
  int64_t headDim = 0;
  int64_t vocabSize = 0;
  int64_t maxPositionEmbeddings = 0;
  int64_t maxModelLen = 0;  // --max-model-len, else max_position_embeddings
  double rmsNormEps = 1e-6;
  bool tieWordEmbeddings = false;
  RopeSpec rope;

  // Weights.
  CheckpointTensor embedTokens;
  std::vector<LayerTensors> layers;
  CheckpointTensor finalNorm;
  CheckpointTensor lmHead;  // == embedTokens when tied

  TokenizerSpec tokenizer;
  GenerationSpec generation;

  /// Non-fatal findings (unused checkpoint tensors, ...), for the driver to print.
  std::vector<std::string> warnings;
};

struct ModelSpecOptions {
  int64_t maxModelLen = 0;  // 0: config max_position_embeddings
  /// No checkpoint (dscc --load-format dummy): tensor headers come from
  /// config.json (HF names and shapes, torch_dtype, bf16 by default) and the
  /// tokenizer files are optional (without them the plan has no tokenizer).
  bool dummyWeights = false;
};

/// Reads and validates MODEL_DIR. Errors name the file and the field or tensor.
Result<ModelSpec> loadModelSpec(const std::string &modelDir, const ModelSpecOptions &options);

}  // namespace ds

#endif  // DS_IMPORT_MODELSPEC_H

//===- dscc.cpp - Hugging Face checkpoint -> dsrt plan --------------------===//
//
//   dscc compile MODEL_DIR -o PLAN [--target cpu|sm_90a|...] [--max-model-len N]
//        [--tp N] [--emit=plan|mlir|mlir-import] [--print-ir-after-all]
//        [--load-format auto|dummy] [--residual-dtype f32|bf16] [--proj-out-dtype bf16|f32]
//   dscc export IR.mlir --model MODEL_DIR -o PLAN [--load-format auto|dummy]
//
// `--load-format dummy` (the SGLang/vLLM flag name) compiles from config.json
// alone: no safetensors are read, each weight gets the header a Hugging Face
// checkpoint of that config has, and tokenizer files are optional. The plan
// then runs with `dsrt --load-format dummy` (random weights) or with a real
// checkpoint given by `dsrt --model-path`.
//
// `export` writes the plan of an already compiled module (e.g. the output of
// `compile --emit=mlir`, edited by hand, or ds-opt's), taking the model,
// tokenizer and generation metadata from MODEL_DIR.
//
// Reads and validates the model directory (ModelSpec), imports it into ds IR,
// runs the compile pipeline for the target and writes the plan (or prints
// the IR). Exit status 0 on success, 1 on any error, with the message on
// stderr starting "dscc: error: ".
//
//===----------------------------------------------------------------------===//

#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "ds/Export/PlanExporter.h"
#include "ds/Import/Importer.h"
#include "ds/Import/ModelSpec.h"
#include "ds/Transforms/Passes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

namespace {

struct CompileArgs {
  std::string modelDir;
  std::string output;
  std::string target = "cpu";
  int64_t maxModelLen = 0;
  int tp = 1;
  std::string loadFormat = "auto";
  std::string residualDtype = "f32";
  std::string projOutDtype;
  std::string emit = "plan";
  bool printIrAfterAll = false;
  bool printDebugInfo = false;
};

struct ExportArgs {
  std::string irFile;
  std::string modelDir;
  std::string output;
  std::string loadFormat = "auto";
};

int fail(const std::string &message) {
  std::fprintf(stderr, "dscc: error: %s\n", message.c_str());
  return 1;
}

/// "file:line:col" or the op name given by the importer ("l3.q_proj"),
/// names of fused locations joined with '+'; empty when unknown.
std::string locString(mlir::Location loc) {
  if (auto f = dyn_cast<mlir::FileLineColLoc>(loc))
    return (f.getFilename().getValue() + ":" + llvm::Twine(f.getLine()) + ":" + llvm::Twine(f.getColumn())).str();
  if (auto n = dyn_cast<mlir::NameLoc>(loc)) return n.getName().str();
  if (auto c = dyn_cast<mlir::CallSiteLoc>(loc)) return locString(c.getCallee());
  if (auto f = dyn_cast<mlir::FusedLoc>(loc)) {
    std::string out;
    for (mlir::Location part : f.getLocations()) {
      std::string s = locString(part);
      if (!s.empty()) out += (out.empty() ? "" : "+") + s;
    }
    return out;
  }
  return "";
}

/// Prints MLIR diagnostics as "dscc: error: LOCATION: message".
mlir::LogicalResult printDiagnostic(mlir::Diagnostic &diag) {
  const char *severity = "error";
  switch (diag.getSeverity()) {
  case mlir::DiagnosticSeverity::Error: severity = "error"; break;
  case mlir::DiagnosticSeverity::Warning: severity = "warning"; break;
  case mlir::DiagnosticSeverity::Note: severity = "note"; break;
  case mlir::DiagnosticSeverity::Remark: severity = "remark"; break;
  }
  std::string loc = locString(diag.getLocation());
  llvm::errs() << "dscc: " << severity << ": " << (loc.empty() ? "" : loc + ": ") << diag.str() << "\n";
  for (mlir::Diagnostic &note : diag.getNotes()) (void)printDiagnostic(note);
  return mlir::success();
}

mlir::LogicalResult printModule(mlir::ModuleOp module, const std::string &path, bool debugInfo) {
  std::string error;
  std::unique_ptr<llvm::ToolOutputFile> out = mlir::openOutputFile(path.empty() ? "-" : path, &error);
  if (!out) {
    fail(error);
    return mlir::failure();
  }
  mlir::OpPrintingFlags flags;
  if (debugInfo) flags.enableDebugInfo(/*enable=*/true, /*prettyForm=*/false);
  module->print(out->os(), flags);
  out->os() << "\n";
  out->keep();
  return mlir::success();
}

/// --load-format: "auto" (read the checkpoint) or "dummy" (config.json alone).
ds::Result<bool> parseLoadFormat(const std::string &format) {
  if (format == "auto") return false;
  if (format == "dummy") return true;
  return ds::Status::Error("--load-format must be auto or dummy, not '" + format + "'");
}

/// The model dimensions that tensor parallelism over `tp` ranks splits
/// (TP_CONTRACT.md), checked before compiling so the error names the config
/// field.
ds::Status checkTensorParallel(const ds::ModelSpec &spec, int tp) {
  if (tp == 1) return ds::Status::Ok();
  auto indivisible = [&](const char *field, int64_t value) {
    return ds::Status::Error(ds::StrCat() << field << " " << value << " is not divisible by --tp " << tp);
  };
  if (spec.numHeads % tp != 0) return indivisible("num_attention_heads", spec.numHeads);
  if (tp <= spec.numKvHeads && spec.numKvHeads % tp != 0) return indivisible("num_key_value_heads", spec.numKvHeads);
  if (tp > spec.numKvHeads && tp % spec.numKvHeads != 0)
    return ds::Status::Error(ds::StrCat() << "--tp " << tp << " is larger than num_key_value_heads "
                                          << spec.numKvHeads << " but not a multiple of it");
  if (spec.intermediateSize % tp != 0) return indivisible("intermediate_size", spec.intermediateSize);
  if (spec.vocabSize % tp != 0) return indivisible("vocab_size", spec.vocabSize);
  return ds::Status::Ok();
}

int compile(const CompileArgs &args) {
  if (args.tp < 1) return fail("--tp must be at least 1, got " + std::to_string(args.tp));
  if (args.emit != "plan" && args.emit != "mlir" && args.emit != "mlir-import")
    return fail("--emit must be plan, mlir or mlir-import, not '" + args.emit + "'");
  if (args.emit == "plan" && args.output.empty()) return fail("-o PLAN is required with --emit=plan");
  if (ds::Status st = ds::validateTarget(args.target); !st.ok()) return fail(st.message());
  if (ds::Status st = ds::validateResidualDtype(args.residualDtype, args.target); !st.ok())
    return fail("--residual-dtype: " + st.message());
  if (ds::Status st = ds::validateProjOutDtype(args.projOutDtype, args.residualDtype, args.target); !st.ok())
    return fail("--proj-out-dtype: " + st.message());
  if (args.maxModelLen < 0) return fail("--max-model-len must be positive");
  ds::Result<bool> dummy = parseLoadFormat(args.loadFormat);
  if (!dummy.ok()) return fail(dummy.status().message());

  ds::ModelSpecOptions specOptions;
  specOptions.maxModelLen = args.maxModelLen;
  specOptions.dummyWeights = *dummy;
  ds::Result<ds::ModelSpec> spec = ds::loadModelSpec(args.modelDir, specOptions);
  if (!spec.ok()) return fail(spec.status().message());
  for (const std::string &w : spec->warnings) std::fprintf(stderr, "dscc: warning: %s\n", w.c_str());
  if (ds::Status st = checkTensorParallel(*spec, args.tp); !st.ok()) return fail(st.message());

  mlir::MLIRContext context;
  context.printOpOnDiagnostic(false);
  mlir::ScopedDiagnosticHandler handler(&context, printDiagnostic);
  ds::ImportOptions importOptions;
  importOptions.target = args.target;
  importOptions.residualDtype = args.residualDtype;
  importOptions.projOutDtype = args.projOutDtype;
  mlir::OwningOpRef<mlir::ModuleOp> module = ds::importModel(context, *spec, importOptions);
  if (!module) return fail("import of " + args.modelDir + " failed");
  if (args.emit == "mlir-import") return mlir::succeeded(printModule(*module, args.output, args.printDebugInfo)) ? 0 : 1;

  mlir::PassManager pm(&context);
  ds::buildCompilePipeline(pm, args.target, args.tp);
  if (args.printIrAfterAll) {
    context.disableMultithreading();
    pm.enableIRPrinting(/*shouldPrintBeforePass=*/nullptr,
                        /*shouldPrintAfterPass=*/[](mlir::Pass *, mlir::Operation *) { return true; });
  }
  if (mlir::failed(pm.run(*module))) return fail("compilation failed");
  if (args.emit == "mlir") return mlir::succeeded(printModule(*module, args.output, args.printDebugInfo)) ? 0 : 1;

  ds::ExportOptions exportOptions;
  exportOptions.tpSize = args.tp;
  if (mlir::failed(ds::exportPlan(*module, *spec, args.output, exportOptions))) return 1;
  return 0;
}

int exportIr(const ExportArgs &args) {
  ds::Result<bool> dummy = parseLoadFormat(args.loadFormat);
  if (!dummy.ok()) return fail(dummy.status().message());
  mlir::MLIRContext context;
  context.printOpOnDiagnostic(false);
  mlir::ScopedDiagnosticHandler handler(&context, printDiagnostic);
  ds::registerImportDialects(context);
  mlir::OwningOpRef<mlir::ModuleOp> module = mlir::parseSourceFile<mlir::ModuleOp>(args.irFile, &context);
  if (!module) return fail("cannot parse " + args.irFile);
  auto maxLen = (*module)->getAttrOfType<mlir::IntegerAttr>("ds.max_model_len");
  ds::ModelSpecOptions specOptions;
  specOptions.maxModelLen = maxLen ? maxLen.getInt() : int64_t{0};
  specOptions.dummyWeights = *dummy;
  ds::Result<ds::ModelSpec> spec = ds::loadModelSpec(args.modelDir, specOptions);
  if (!spec.ok()) return fail(spec.status().message());
  if (mlir::failed(ds::exportPlan(*module, *spec, args.output, ds::ExportOptions{}))) return 1;
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  CLI::App app{"dscc: compiles a Hugging Face checkpoint directory into a dsrt plan", "dscc"};
  app.set_version_flag("--version", ds::kDsccVersion);
  app.require_subcommand(1);
  CompileArgs args;
  CLI::App *cmd = app.add_subcommand("compile", "Compile MODEL_DIR into a plan");
  cmd->add_option("model_dir", args.modelDir, "Hugging Face model directory")->required();
  cmd->add_option("-o,--output", args.output, "Output plan (or IR file with --emit=mlir*; default stdout)");
  cmd->add_option("--target", args.target, "cpu (f32 activations) or a CUDA arch such as sm_90a")
      ->capture_default_str();
  cmd->add_option("--max-model-len", args.maxModelLen, "Context length (default: max_position_embeddings)");
  cmd->add_option("--load-format", args.loadFormat,
                  "auto (read the checkpoint's safetensors headers) | dummy (config.json alone: HF shapes, "
                  "torch_dtype; run with dsrt --load-format dummy or --model-path)")
      ->capture_default_str();
  cmd->add_option("--residual-dtype", args.residualDtype,
                  "f32 (the residual stream is accumulated in float32; norms write the bf16 GEMM inputs) | "
                  "bf16 (rounded after every residual add; CUDA targets only)")
      ->capture_default_str();
  cmd->add_option("--proj-out-dtype", args.projOutDtype,
                  "f32: o_proj/down_proj write float32 into the f32 residual add (one bf16 rounding less per add; "
                  "tensor parallelism: an f32 all-reduce) | bf16 (CUDA targets). Default: the residual dtype");
  cmd->add_option("--tp", args.tp, "Tensor-parallel size: ranks that share the model (Megatron-style sharding)")->capture_default_str();
  cmd->add_option("--emit", args.emit, "plan | mlir (IR after the pipeline) | mlir-import (IR before it)")
      ->capture_default_str();
  cmd->add_flag("--print-ir-after-all", args.printIrAfterAll, "Print the IR after every pass to stderr");
  cmd->add_flag("--mlir-print-debuginfo", args.printDebugInfo,
                "With --emit=mlir*: print op locations (the names that `dscc export` gives buffers and kernels)");
  ExportArgs exportArgs;
  CLI::App *exp = app.add_subcommand("export", "Write the plan of an already compiled IR file");
  exp->add_option("ir_file", exportArgs.irFile, "Compiled ds module (.mlir)")->required();
  exp->add_option("--model", exportArgs.modelDir, "Model directory (metadata)")->required();
  exp->add_option("-o,--output", exportArgs.output, "Output plan")->required();
  exp->add_option("--load-format", exportArgs.loadFormat, "auto | dummy (as for compile)")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp &e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    return fail(std::string(e.what()) + " (see dscc compile --help)");
  }
  if (exp->parsed()) return exportIr(exportArgs);
  return compile(args);
}

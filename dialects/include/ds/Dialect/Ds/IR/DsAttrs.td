//===- DsAttrs.td - ds dialect attributes ------------------------*- tablegen -*-===//

#ifndef DS_DIALECT_DS_IR_DSATTRS_TD
#define DS_DIALECT_DS_IR_DSATTRS_TD

include "ds/Dialect/Ds/IR/DsDialect.td"
include "mlir/IR/AttrTypeBase.td"

class Ds_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Ds_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

// A float (as an f64 APFloat, hashable) printed/parsed as a float literal.
class Ds_F64Parameter<string default, string desc = "">
    : DefaultValuedParameter<"::llvm::APFloat", "::llvm::APFloat(" # default # ")", desc> {
  let comparator = "$_lhs.bitwiseIsEqual($_rhs)";
  let parser = [{ [&]() -> ::mlir::FailureOr<::llvm::APFloat> {
      double value = 0;
      if ($_parser.parseFloat(value))
        return ::mlir::failure();
      return ::llvm::APFloat(value);
    }() }];
  let printer = [{ $_printer.printFloat($_self) }];
}

// `[1, 2, 3]` (also `[]`).
def Ds_ShapeParameter : ArrayRefParameter<"int64_t", "tensor shape"> {
  let parser = [{ [&]() -> ::mlir::FailureOr<::llvm::SmallVector<int64_t>> {
      ::llvm::SmallVector<int64_t> dims;
      if ($_parser.parseCommaSeparatedList(::mlir::AsmParser::Delimiter::Square,
              [&]() { return $_parser.parseInteger(dims.emplace_back()); }))
        return ::mlir::failure();
      return dims;
    }() }];
  let printer = [{ $_printer << '[';
      ::llvm::interleaveComma($_self, $_printer);
      $_printer << ']' }];
}

def Ds_SourceAttr : Ds_Attr<"Source", "source"> {
  let summary = "one checkpoint tensor that a ds.weight is built from";
  let description = [{
    Mirrors `SourceTensor` in runtime/plan/plan.fbs: tensor `name` of the
    safetensors `file` (relative to the checkpoint directory), with its
    checkpoint `dtype` and `shape`. An optional slice along `slice_axis`
    (-1: none) selects elements `[slice_start + (rank / slice_rank_divisor) *
    slice_rank_stride, +slice_size)` of that axis (the rank term is for tensor
    parallelism; integer division; a divisor d > 1 lets d consecutive ranks
    share one slice, e.g. a KV head when tp_size > num_kv_heads).

    ```mlir
    #ds.source<name = "model.layers.0.self_attn.q_proj.weight",
               file = "model.safetensors", dtype = bf16, shape = [896, 896]>
    #ds.source<name = "lm_head.weight", file = "model-00002.safetensors",
               dtype = bf16, shape = [151936, 896], slice_axis = 0,
               slice_start = 0, slice_size = 75968, slice_rank_stride = 75968>
    ```
  }];
  let parameters = (ins
    StringRefParameter<"checkpoint tensor name">:$name,
    StringRefParameter<"safetensors file, relative to the checkpoint dir">:$file,
    "::mlir::Type":$dtype,
    Ds_ShapeParameter:$shape,
    DefaultValuedParameter<"int64_t", "-1", "sliced axis, -1 for none">:$slice_axis,
    DefaultValuedParameter<"int64_t", "0">:$slice_start,
    DefaultValuedParameter<"int64_t", "0">:$slice_size,
    DefaultValuedParameter<"int64_t", "0">:$slice_rank_stride,
    DefaultValuedParameter<"int64_t", "1">:$slice_rank_divisor
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The shape after slicing (rank 0 tensor parallel rank).
    ::llvm::SmallVector<int64_t> getSlicedShape() const;
  }];
}

def Ds_RopeAttr : Ds_Attr<"Rope", "rope"> {
  let summary = "rotary position embedding configuration";
  let description = [{
    Mirrors `RopeConfig` in plan.fbs. `style` is "neox" (rotate halves) or
    "interleaved" (rotate pairs); `rotary_dim` dims of each head are rotated.
    `scaling` is "none", "linear" (positions divided by `factor`) or "yarn"
    (`factor`, `original_max_position`, `beta_fast`, `beta_slow`, `mscale`,
    `mscale_all_dim` as in DeepSeek-V3's config).

    ```mlir
    #ds.rope<theta = 1000000.0, rotary_dim = 64>
    #ds.rope<theta = 10000.0, style = "interleaved", rotary_dim = 64, scaling = "yarn",
             factor = 40.0, original_max_position = 4096, mscale = 1.0, mscale_all_dim = 1.0>
    ```
  }];
  let parameters = (ins
    Ds_F64Parameter<"10000.0", "base frequency">:$theta,
    StringRefParameter<"neox | interleaved", [{"neox"}]>:$style,
    "int64_t":$rotary_dim,
    StringRefParameter<"none | linear | yarn", [{"none"}]>:$scaling,
    Ds_F64Parameter<"1.0">:$factor,
    DefaultValuedParameter<"int64_t", "0">:$original_max_position,
    Ds_F64Parameter<"32.0">:$beta_fast,
    Ds_F64Parameter<"1.0">:$beta_slow,
    Ds_F64Parameter<"1.0">:$mscale,
    Ds_F64Parameter<"0.0">:$mscale_all_dim
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

#endif // DS_DIALECT_DS_IR_DSATTRS_TD

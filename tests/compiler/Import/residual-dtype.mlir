// --residual-dtype: the element type of the residual stream. f32 (the
// default) keeps every residual add in float32 on a bf16 target: the first
// add widens the bf16 embedding row, later adds accumulate the layer outputs,
// and each rms_norm writes the bf16 input of the next GEMM. bf16 rounds the
// stream after every add. --proj-out-dtype: the type o_proj/down_proj write
// into the adds, by default the residual's. The cpu target is f32 throughout.
// REQUIRES: dscc

// RUN: rm -rf %t && %python %inputs/make_checkpoint.py %t/m --layers 2
// RUN: %dscc compile %t/m --emit=mlir-import --target sm_90a --proj-out-dtype bf16 | FileCheck %s --check-prefix=F32
// RUN: %dscc compile %t/m --emit=mlir-import --target sm_90a --residual-dtype f32 --proj-out-dtype bf16 | FileCheck %s --check-prefix=F32
// RUN: %dscc compile %t/m --emit=mlir-import --target sm_90a --residual-dtype bf16 | FileCheck %s --check-prefix=BF16
// RUN: %dscc compile %t/m --emit=mlir-import | FileCheck %s --check-prefix=CPU

// F32: %[[X0:.*]] = ds.embedding {{.*}} -> tensor<?x64xbf16>
// F32: ds.rms_norm %[[X0]], {{.*}} : (tensor<?x64xbf16>, tensor<64xbf16>) -> tensor<?x64xbf16>
// F32: %[[O0:.*]] = ds.linear {{.*}} : (tensor<?x64xbf16>, tensor<64x64xbf16>) -> tensor<?x64xbf16>
// F32: %[[X1:.*]] = ds.add %[[X0]], %[[O0]] : tensor<?x64xbf16>, tensor<?x64xbf16> -> tensor<?x64xf32>
// F32: ds.rms_norm %[[X1]], {{.*}} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xbf16>
// F32: %[[D0:.*]] = ds.linear {{.*}} : (tensor<?x128xbf16>, tensor<64x128xbf16>) -> tensor<?x64xbf16>
// F32: %[[X2:.*]] = ds.add %[[X1]], %[[D0]] : tensor<?x64xf32>, tensor<?x64xbf16> -> tensor<?x64xf32>
// F32: ds.rms_norm %[[X2]], {{.*}} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xbf16>
// F32: ds.add {{.*}} : tensor<?x64xf32>, tensor<?x64xbf16> -> tensor<?x64xf32>
// F32: %[[X4:.*]] = ds.add {{.*}} : tensor<?x64xf32>, tensor<?x64xbf16> -> tensor<?x64xf32>
// F32: %[[H:.*]] = ds.rms_norm %[[X4]], {{.*}} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xbf16>
// F32: ds.logits %[[H]], {{.*}} : (tensor<?x64xbf16>, tensor<320x64xbf16>, tensor<?xi32>) -> tensor<?x320xf32>

// BF16-NOT: xf32>, tensor<?x64xbf16> ->
// BF16: %[[X1:.*]] = ds.add %{{.*}}, %{{.*}} : tensor<?x64xbf16>{{$}}
// BF16: ds.rms_norm %[[X1]], {{.*}} : (tensor<?x64xbf16>, tensor<64xbf16>) -> tensor<?x64xbf16>
// BF16: ds.add %{{.*}}, %{{.*}} : tensor<?x64xbf16>{{$}}

// CPU: ds.embedding {{.*}} -> tensor<?x64xf32>
// CPU: ds.add %{{.*}}, %{{.*}} : tensor<?x64xf32>{{$}}
// CPU: ds.rms_norm {{.*}} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32>

// The whole pipeline: each residual add lands in a fused group with the norm
// that reads it; the group stores the residual as float and the norm as bf16.
// RUN: %if nvrtc %{ %dscc compile %t/m --emit=mlir --target sm_90a --proj-out-dtype bf16 | FileCheck %s --check-prefix=GROUP %}
// GROUP: ds.fused_group({{.*}}const __nv_bfloat16* __restrict__ in0,{{.*}}float* __restrict__ out0,\0A    __nv_bfloat16* __restrict__ out1)
// GROUP-SAME: : (tensor<?x64xbf16>, tensor<?x64xbf16>, tensor<64xbf16>) -> (tensor<?x64xf32>, tensor<?x64xbf16>)
// GROUP: ds.fused_group({{.*}}const float* __restrict__ in0,{{.*}}float* __restrict__ out0,\0A    __nv_bfloat16* __restrict__ out1)
// GROUP-SAME: : (tensor<?x64xf32>, tensor<?x64xbf16>, tensor<64xbf16>) -> (tensor<?x64xf32>, tensor<?x64xbf16>)

// --proj-out-dtype f32 (the default with the f32 residual): o_proj and
// down_proj write float32 into the residual adds.
// RUN: %dscc compile %t/m --emit=mlir-import --target sm_90a | FileCheck %s --check-prefix=PROJ
// RUN: %dscc compile %t/m --emit=mlir-import --target sm_90a --proj-out-dtype f32 | FileCheck %s --check-prefix=PROJ
// PROJ: %[[X0:.*]] = ds.embedding {{.*}} -> tensor<?x64xbf16>
// PROJ: ds.linear {{.*}} : (tensor<?x64xbf16>, tensor<64x64xbf16>, tensor<64xbf16>) -> tensor<?x64xbf16>
// PROJ: %[[O0:.*]] = ds.linear {{.*}} : (tensor<?x64xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
// PROJ: %[[X1:.*]] = ds.add %[[X0]], %[[O0]] : tensor<?x64xbf16>, tensor<?x64xf32> -> tensor<?x64xf32>
// PROJ: ds.linear {{.*}} : (tensor<?x64xbf16>, tensor<128x64xbf16>) -> tensor<?x128xbf16>
// PROJ: %[[D0:.*]] = ds.linear {{.*}} : (tensor<?x128xbf16>, tensor<64x128xbf16>) -> tensor<?x64xf32>
// PROJ: ds.add %[[X1]], %[[D0]] : tensor<?x64xf32>{{$}}
// RUN: %if nvrtc %{ %dscc compile %t/m --emit=mlir --target sm_90a | FileCheck %s --check-prefix=PROJGROUP %}
// The first add widens the bf16 embedding (mixed types: an add + norm group);
// from then on the f32 projections take the f32 stream as their residual
// (ds-fuse-residual-add) and the norm groups read it as their one f32 input.
// PROJGROUP: ds.linear {{.*}} : (tensor<?x64xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
// PROJGROUP: ds.fused_group({{.*}}const __nv_bfloat16* __restrict__ in0,\0A    const float* __restrict__ in1,
// PROJGROUP-SAME: : (tensor<?x64xbf16>, tensor<?x64xf32>, tensor<64xbf16>) -> (tensor<?x64xf32>, tensor<?x64xbf16>)
// PROJGROUP: ds.linear {{.*}} residual {{.*}} : (tensor<?x128xbf16>, tensor<64x128xbf16>, tensor<?x64xf32>) -> tensor<?x64xf32>
// PROJGROUP: ds.fused_group({{.*}}const float* __restrict__ in0,\0A    const __nv_bfloat16* __restrict__ in1,\0A    __nv_bfloat16* __restrict__ out0)
// PROJGROUP-SAME: : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xbf16>

// Errors name the option.
// RUN: not %dscc compile %t/m --emit=mlir-import --target sm_90a --residual-dtype f16 2>&1 | FileCheck %s --check-prefix=BADTYPE
// BADTYPE: dscc: error: --residual-dtype: unsupported residual dtype 'f16' (expected f32 or bf16)
// RUN: not %dscc compile %t/m --emit=mlir-import --residual-dtype bf16 2>&1 | FileCheck %s --check-prefix=BADCPU
// BADCPU: dscc: error: --residual-dtype: residual dtype bf16 needs a CUDA target: the cpu target computes in float32
// RUN: not %dscc compile %t/m --emit=mlir-import --target sm_90a --residual-dtype bf16 --proj-out-dtype f32 2>&1 | FileCheck %s --check-prefix=BADPROJ
// BADPROJ: dscc: error: --proj-out-dtype: o_proj/down_proj output dtype f32 needs the f32 residual stream (--residual-dtype f32)
// RUN: not %dscc compile %t/m --emit=mlir-import --proj-out-dtype bf16 2>&1 | FileCheck %s --check-prefix=BADPROJCPU
// BADPROJCPU: dscc: error: --proj-out-dtype: o_proj/down_proj output dtype bf16 needs a CUDA target
// RUN: %dscc compile --help | FileCheck %s --check-prefix=HELP
// HELP: --residual-dtype
// HELP: --proj-out-dtype

// Tensor-parallel plans compute the same model: dsrt --tp N (in-process
// ranks) running a plan compiled with dscc --tp N matches the plain-Python
// float64 forward pass (inputs/reference_forward.py), for KV heads split
// across ranks (tp <= num_kv_heads), shared by ranks (tp > num_kv_heads,
// slice_rank_divisor > 1), untied and tied (+ sharded checkpoint) embeddings.
// REQUIRES: dscc, dsrt

// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %inputs/make_checkpoint.py %t/qwen2
// RUN: %dscc compile %t/qwen2 --tp 2 -o %t/qwen2-tp2.dsplan
// RUN: %dsrt score %t/qwen2-tp2.dsplan --tp 2 --ids 1,2,3,40,50,60 --top-k 4 --json | %python %inputs/reference_forward.py %t/qwen2 --ids 1,2,3,40,50,60 | FileCheck %s
// RUN: %dscc compile %t/qwen2 --tp 4 -o %t/qwen2-tp4.dsplan
// RUN: %dsrt score %t/qwen2-tp4.dsplan --tp 4 --ids 1,2,3,40,50,60 --top-k 4 --json | %python %inputs/reference_forward.py %t/qwen2 --ids 1,2,3,40,50,60 | FileCheck %s

// RUN: %python %inputs/make_checkpoint.py %t/tied --tied --sharded --layers 3 --kv-heads 1 --seed 7
// RUN: %dscc compile %t/tied --tp 4 -o %t/tied-tp4.dsplan
// RUN: %dsrt score %t/tied-tp4.dsplan --tp 4 --ids 9,8,7,6,5 --top-k 4 --json | %python %inputs/reference_forward.py %t/tied --ids 9,8,7,6,5 | FileCheck %s

// The sharded plan is not the model of another checkpoint (the check can fail).
// RUN: %dsrt score %t/tied-tp4.dsplan --tp 4 --ids 1,2,3 --top-k 4 --json | not %python %inputs/reference_forward.py %t/qwen2 --ids 1,2,3 | FileCheck %s --check-prefix=WRONG

// CHECK-NOT: MISMATCH
// CHECK: reference match
// WRONG: reference MISMATCH

// A row-parallel linear with a bias (Llama attention_bias: o_proj.bias) is
// reported, not silently summed tp times.
// RUN: %python %inputs/make_checkpoint.py %t/llama --arch LlamaForCausalLM --attention-bias --seed 11
// RUN: not %dscc compile %t/llama --tp 2 -o %t/llama.dsplan 2>&1 | FileCheck %s --check-prefix=OBIAS
// OBIAS: dscc: error: l0.o_proj: 'ds.linear' op ds-shard: the row-parallel o_proj has a bias, which tensor parallelism does not support yet

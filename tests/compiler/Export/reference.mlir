// The compiled plans compute what the checkpoints describe: dsrt's logits for
// a prompt match a plain-Python float64 forward pass (inputs/reference_forward.py)
// for Qwen2 (q/k/v bias, untied; tied + sharded) and Llama (attention_bias
// with o_proj bias, head_dim != hidden/heads, linear rope scaling).
// REQUIRES: dscc, dsrt

// RUN: rm -rf %t && mkdir -p %t
// RUN: %python %inputs/make_checkpoint.py %t/qwen2
// RUN: %dscc compile %t/qwen2 -o %t/qwen2.dsplan
// RUN: %dsrt score %t/qwen2.dsplan --ids 1,2,3,40,50,60 --top-k 4 --json | %python %inputs/reference_forward.py %t/qwen2 --ids 1,2,3,40,50,60 | FileCheck %s

// RUN: %python %inputs/make_checkpoint.py %t/tied --tied --sharded --layers 3 --seed 7
// RUN: %dscc compile %t/tied -o %t/tied.dsplan
// RUN: %dsrt score %t/tied.dsplan --ids 9,8,7,6,5 --top-k 4 --json | %python %inputs/reference_forward.py %t/tied --ids 9,8,7,6,5 | FileCheck %s

// RUN: %python %inputs/make_checkpoint.py %t/llama --arch LlamaForCausalLM --attention-bias --head-dim 32 --explicit-head-dim --rope-scaling linear --seed 11
// RUN: %dscc compile %t/llama -o %t/llama.dsplan
// RUN: %dsrt score %t/llama.dsplan --ids 100,200,300,7,8 --top-k 4 --json | %python %inputs/reference_forward.py %t/llama --ids 100,200,300,7,8 | FileCheck %s

// A plan of another model does not match (the check can fail).
// RUN: %dsrt score %t/llama.dsplan --ids 1,2,3 --top-k 4 --json | not %python %inputs/reference_forward.py %t/qwen2 --ids 1,2,3 | FileCheck %s --check-prefix=WRONG

// CHECK-NOT: MISMATCH
// CHECK: reference match
// WRONG: reference MISMATCH

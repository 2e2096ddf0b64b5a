// Tokenizer and generation metadata in the plan: a list of named chat
// templates, special tokens given as objects, eos fallbacks (tokenizer_config
// -> config.json; generation_config -> config.json), top_k 0 meaning "off",
// and errors for out-of-range generation defaults.
// REQUIRES: dscc, flatc

// RUN: rm -rf %t && mkdir -p %t && %python %inputs/make_checkpoint.py %t/m --layers 1
// RUN: %python %inputs/edit_json.py %t/m/tokenizer_config.json -eos_token 'pad_token={"content": "<|im_start|>", "special": true}' 'chat_template=[{"name": "tool_use", "template": "TOOLS"}, {"name": "default", "template": "DEFAULT"}]'
// RUN: %python %inputs/edit_json.py %t/m/config.json 'eos_token_id=[257, 258]'
// RUN: %python %inputs/edit_json.py %t/m/generation_config.json -eos_token_id top_k=0 do_sample=false min_p=0.05
// RUN: %dscc compile %t/m -o %t/plan.dsplan
// RUN: flatc --json --strict-json --raw-binary -o %t %plan_fbs -- %t/plan.dsplan
// RUN: FileCheck %s --input-file=%t/plan.json
// CHECK:      "tokenizer": {
// CHECK:        "chat_template": "DEFAULT",
// CHECK-NEXT:   "eos_token_ids": [
// CHECK-NEXT:     257,
// CHECK-NEXT:     258
// CHECK-NEXT:   ],
// CHECK-NEXT:   "pad_token_id": 257
// CHECK-NEXT: },
// CHECK-NEXT: "generation": {
// CHECK-NEXT:   "temperature": 0.7,
// CHECK-NEXT:   "top_p": 0.8,
// CHECK-NEXT:   "min_p": 0.05,
// CHECK-NEXT:   "repetition_penalty": 1.05,
// CHECK-NEXT:   "eos_token_ids": [
// CHECK-NEXT:     257,
// CHECK-NEXT:     258
// CHECK-NEXT:   ],

// RUN: %python %inputs/edit_json.py %t/m/generation_config.json top_p=1.5
// RUN: not %dscc compile %t/m -o %t/bad.dsplan 2>&1 | FileCheck %s --check-prefix=TOPP
// TOPP: dscc: error: {{.*}}generation_config.json: field 'top_p': must be in (0, 1]
// RUN: %python %inputs/edit_json.py %t/m/generation_config.json top_p=0.9 temperature=hot
// RUN: not %dscc compile %t/m -o %t/bad.dsplan 2>&1 | FileCheck %s --check-prefix=TEMP
// TEMP: dscc: error: {{.*}}generation_config.json: field 'temperature': must be a number, got "hot"
// RUN: %python %inputs/edit_json.py %t/m/generation_config.json temperature=1.0 'eos_token_id=[999]'
// RUN: not %dscc compile %t/m -o %t/bad.dsplan 2>&1 | FileCheck %s --check-prefix=EOS
// EOS: dscc: error: {{.*}}: generation eos token id 999 is outside the vocabulary [0, 320)
// RUN: %python %inputs/edit_json.py %t/m/tokenizer_config.json chat_template=5
// RUN: not %dscc compile %t/m -o %t/bad.dsplan 2>&1 | FileCheck %s --check-prefix=TEMPLATE
// TEMPLATE: dscc: error: {{.*}}tokenizer_config.json: field 'chat_template': must be a string or a list of {name, template} objects
// RUN: test ! -e %t/bad.dsplan

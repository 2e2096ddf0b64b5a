#!/usr/bin/env python3
"""Edits one kernel attribute of a plan's JSON (flatc --json) for the lit tests.

Usage: edit_kernel_attr.py PLAN_JSON OUT_JSON KERNEL_NAME KEY [INT_VALUE]
  With INT_VALUE the kernel's attribute KEY becomes that integer (added if
  missing); without it the attribute is removed. Used to build plans that the
  exporter never writes (a residual input without its attribute, ...) and
  check the runtime's errors.
"""

import json
import sys


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    src, dst, kernel_name, key = sys.argv[1:5]
    with open(src) as f:
        plan = json.load(f)
    kernels = [k for k in plan["kernels"] if k.get("name") == kernel_name]
    if len(kernels) != 1:
        sys.exit(f"edit_kernel_attr.py: no single kernel named {kernel_name!r}")
    kernel = kernels[0]
    attrs = [a for a in kernel.get("attrs", []) if a.get("key") != key]
    if len(sys.argv) == 6:
        attrs.append({"key": key, "type": "int_", "i": int(sys.argv[5])})
    kernel["attrs"] = sorted(attrs, key=lambda a: a["key"])
    with open(dst, "w") as f:
        json.dump(plan, f, indent=1)


if __name__ == "__main__":
    main()

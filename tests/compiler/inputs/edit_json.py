#!/usr/bin/env python3
"""Edits a JSON file in place for the dscc lit tests.

Usage: edit_json.py FILE KEY=JSON_VALUE ... [-KEY ...]
  KEY=VALUE  sets a top-level key to VALUE parsed as JSON (a bare word that is
             not valid JSON is taken as a string)
  -KEY       deletes a top-level key
"""

import json
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path = sys.argv[1]
    with open(path) as f:
        data = json.load(f)
    for arg in sys.argv[2:]:
        if arg.startswith("-"):
            data.pop(arg[1:], None)
            continue
        key, _, text = arg.partition("=")
        try:
            data[key] = json.loads(text)
        except json.JSONDecodeError:
            data[key] = text
    with open(path, "w") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)


if __name__ == "__main__":
    main()

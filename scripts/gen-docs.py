#!/usr/bin/env python3
"""Regenerates the finding-code lists in docs/findings.md and docs/report.schema.json from
the catalogue in src/finding.rs (a unit test fails when they drift apart)."""
import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
src = open(os.path.join(ROOT, "src/finding.rs")).read()
block = src.split("pub const CATALOGUE")[1].split("];")[0]
catalogue = re.findall(r'\("([a-z_0-9]+)",\s*"((?:[^"\\]|\\.)*)"\)', block)

schema_path = os.path.join(ROOT, "docs/report.schema.json")
schema = json.load(open(schema_path))
schema["$defs"]["code"]["enum"] = [c for c, _ in catalogue]
open(schema_path, "w").write(json.dumps(schema, indent=2) + "\n")

doc_path = os.path.join(ROOT, "docs/findings.md")
doc = open(doc_path).read()
head = doc.split("| code | meaning |")[0]
rows = ["| code | meaning |", "|---|---|"] + [f"| `{c}` | {d.replace(chr(92) + chr(34), chr(34))} |" for c, d in catalogue]
open(doc_path, "w").write(head + "\n".join(rows) + "\n")
print(f"{len(catalogue)} codes")

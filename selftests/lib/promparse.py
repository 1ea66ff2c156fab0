#!/usr/bin/python3
"""Parses Prometheus text exposition on stdin with prometheus_client's own
parser (so a format error fails the test) and prints one line per sample:
NAME{label="v",...} VALUE (labels sorted), then one line per family:
# FAMILY NAME TYPE.  Every family must have HELP text."""
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
if not text.endswith("\n"):
    sys.exit("exposition does not end with a newline")
for fam in text_string_to_metric_families(text):
    if not fam.documentation:
        sys.exit(f"family {fam.name} has no HELP")
    if fam.type not in ("counter", "gauge"):
        sys.exit(f"family {fam.name} has type {fam.type}")
    print(f"# FAMILY {fam.name} {fam.type}")
    for s in fam.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        v = s.value
        print(f"{s.name}{{{labels}}} {int(v) if v == int(v) else v}")

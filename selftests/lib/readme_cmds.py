#!/usr/bin/env python3
"""Prints the README's "Using it" commands, one per line, for readme.bats.

Each line is "MUST<TAB>cmd" (it must succeed on a scratch PF) or
"TRY<TAB>cmd" (it needs what a test machine lacks: a running VM, QEMU,
libvirt, a peer host; it may fail, but never as a usage error, exit 2).
Lines "in the VM", and make/systemctl/ln/echo lines, are left out.  Names
are swapped for the test's own: eth0 -> PF, eth1 -> PF2, files -> TMP.
Usage: readme_cmds.py README PF PF2 TMP
"""
import re
import sys

readme, pf, pf2, tmp = sys.argv[1:5]
text = open(readme).read()
block = text.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]

# Joined continuation lines, comments dropped.
cmds, cur = [], ""
for line in block.splitlines():
    if not line.startswith("    ") or line.strip().startswith("#"):
        continue
    line = line[4:]
    cont = line.rstrip().endswith("\\")
    cur += line.rstrip().rstrip("\\") + " " if cont else line
    if cont:
        continue
    cmds.append(cur)
    cur = ""

SKIP = ("make ", "systemctl ", "ln ", "echo ")
# Commands that need something beyond a scratch PF and its files.
TRY = ("migrate", "qemu migrate", "libvirt", "guest attach eth0 --fn 1 --mem ram.file",
       "metrics eth0 --listen", "vf-emu assign")

for c in cmds:
    in_vm = "# in the VM" in c
    c = re.sub(r"\s+#.*$", "", c).strip()
    if in_vm or not c or c.startswith(SKIP):
        continue
    c = re.sub(r"\s*\[[^\]]*\]", "", c)          # [--json]: optional parts
    background = c.endswith("&")
    c = c.rstrip("&").strip()
    tool = c.split()[0]
    rest = c[len(tool):].strip()
    kind = "TRY" if background or any(rest.startswith(t) or c.startswith(t) for t in TRY) else "MUST"
    c = c.replace("eth1r0b", pf2 + "s").replace("eth0", pf).replace("eth1", pf2)
    c = re.sub(r"(?<![\w/.-])(vm0(-b)?\.mem|ram\.file|m\.prom(\.tmp)?)", lambda m: tmp + "/" + m.group(1), c)
    c = c.replace("/run/", tmp + "/").replace("--mac MAC", "--mac 02:00:00:00:00:42")
    print(f"{kind}\t{c}")

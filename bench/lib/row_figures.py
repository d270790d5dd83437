#!/usr/bin/env python3
"""One benchmark row as a JSON line: tokens/s per GPU over the steps after the first 3 (real tokens,
from trainer_log.jsonl), peak GPU memory, and the time from the agent's first log line to step 1.
Usage: row_figures.py OUTPUT_DIR LAUNCH_LOG NAME PEAK_MIB WORLD [REPEAT]"""
import json
import os
import re
import sys
from datetime import datetime

out_dir, log_path, name, mib, world = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
repeat = int(sys.argv[6]) if len(sys.argv) > 6 else 1
trainer_log = os.path.join(out_dir, "trainer_log.jsonl")
if mib < 0 or not os.path.exists(trainer_log):
    print(json.dumps({"row": name, "world": world, "failed": True, "repeat": repeat}))
    sys.exit()
records = [json.loads(l) for l in open(trainer_log)]
measured = records[3:] or records
tokens = sum(r["tokens"] for r in measured)
seconds = sum(r["tokens"] / r["tokens_per_s"] for r in measured)
stamps = [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f")
          for m in re.finditer(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\]", open(log_path, errors="replace").read())]
first_step = None
for line in open(log_path, errors="replace"):
    m = re.search(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\].*\bstep 1/", line)
    if m:
        first_step = (datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f") - min(stamps)).total_seconds()
        break
print(json.dumps({"row": name, "world": world, "tokens_per_s_per_gpu": tokens / seconds / world,
                  "peak_gib": mib / 1024, "time_to_first_step_s": first_step, "repeat": repeat}))

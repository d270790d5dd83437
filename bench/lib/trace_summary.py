#!/usr/bin/env python3
"""Where a profiled rank's GPU time goes: a one-screen summary of a PDSD_PROFILE chrome trace.

The worker's PDSD_PROFILE=<first>:<steps> writes profile-rank<r>.json (kineto's chrome trace). This
reads one and answers the questions that matter for data-parallel scaling:
  - how long the compute stream (the stream with the most non-NCCL kernels) is busy and idle;
  - of its idle time, how much passes while an NCCL kernel runs (waiting for a collective: the peer
    or the wire), while the host sits in a synchronising CUDA call (the host waits for the GPU, so
    the GPU then waits for the host to launch again), or otherwise (the host is simply behind);
  - NCCL kernels: calls, time, and how much of it overlaps compute kernels;
  - the host's CUDA runtime calls by total time, and the longest compute-stream gaps with the host
    operator that was running when each began.

Usage: python3 bench/lib/trace_summary.py profile-rank0.json [more.json ...]
"""
import bisect
import json
import sys
from collections import defaultdict

SYNCING = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy", "cudaMemcpyAsync")


def merged(intervals):
    out = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def total(intervals):
    return sum(e - s for s, e in intervals)


def overlap(a, b):
    """Length of the intersection of two merged, sorted interval lists."""
    i = j = 0
    n = 0.0
    while i < len(a) and j < len(b):
        s, e = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if e > s:
            n += e - s
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return n


def complement(intervals, start, end):
    out, at = [], start
    for s, e in intervals:
        if s > at:
            out.append([at, min(s, end)])
        at = max(at, e)
    if at < end:
        out.append([at, end])
    return [g for g in out if g[1] > g[0]]


def summarize(path):
    events = json.load(open(path))["traceEvents"]
    kernels = defaultdict(list)  # stream -> [(ts, end, name)]
    runtime, cpu_ops = [], []
    ops_by_thread = defaultdict(list)
    for e in events:
        if e.get("ph") != "X" or "dur" not in e:
            continue
        cat, ts, dur = e.get("cat", ""), float(e["ts"]), float(e["dur"])
        if cat in ("kernel", "gpu_memcpy", "gpu_memset"):
            stream = e.get("args", {}).get("stream", e.get("tid"))
            kernels[stream].append((ts, ts + dur, e["name"]))
        elif cat == "cuda_runtime" or cat == "cuda_driver":
            runtime.append((ts, ts + dur, e["name"]))
        elif cat == "cpu_op":
            cpu_ops.append((ts, ts + dur, e["name"]))
            ops_by_thread[e.get("tid")].append((ts, ts + dur, e["name"]))
    if not kernels:
        print(f"{path}: no GPU activity in the trace")
        host_operators(ops_by_thread)
        return
    is_nccl = lambda name: "nccl" in name.lower()
    compute_stream = max(kernels, key=lambda s: sum(1 for k in kernels[s] if not is_nccl(k[2])))
    compute = merged([[s, e] for s, e, _ in kernels[compute_stream]])
    nccl = merged([[s, e] for ks in kernels.values() for s, e, n in ks if is_nccl(n)])
    syncs = merged([[s, e] for s, e, n in runtime if n.startswith(SYNCING)])
    start = min(k[0] for ks in kernels.values() for k in ks)
    end = max(k[1] for ks in kernels.values() for k in ks)
    window = end - start
    idle = complement(compute, start, end)
    idle_nccl = overlap(idle, nccl)
    idle_sync = overlap(idle, syncs)
    print(f"{path}")
    print(f"  window {window / 1e3:9.1f} ms   compute stream {compute_stream}: busy {total(compute) / 1e3:8.1f} ms "
          f"({100 * total(compute) / window:4.1f}%), idle {total(idle) / 1e3:8.1f} ms")
    print(f"    idle while an NCCL kernel runs   {idle_nccl / 1e3:8.1f} ms")
    print(f"    idle while the host synchronises {idle_sync / 1e3:8.1f} ms (may overlap the line above)")
    print(f"    idle otherwise (host behind)     {max(0.0, total(idle) - idle_nccl - idle_sync) / 1e3:8.1f} ms (at least)")
    nccl_calls = sum(1 for ks in kernels.values() for k in ks if is_nccl(k[2]))
    print(f"  NCCL kernels: {nccl_calls} calls, {total(nccl) / 1e3:.1f} ms of wall time, "
          f"{overlap(nccl, compute) / 1e3:.1f} ms of it overlapping compute")
    by_name = defaultdict(lambda: [0, 0.0])
    for s, e, n in runtime:
        by_name[n][0] += 1
        by_name[n][1] += e - s
    print("  host CUDA calls by time:")
    for n, (c, t) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[:8]:
        print(f"    {t / 1e3:9.1f} ms {c:7d}  {n}")
    launches = [e - s for s, e, n in runtime if n == "cudaLaunchKernel"]
    if launches:
        print(f"  cudaLaunchKernel: mean {sum(launches) / len(launches):.2f} us over {len(launches)} "
              "(the host's speed: the same call costs more on a slower or busier CPU)")
    host_operators(ops_by_thread)
    # The longest gaps and what the host was doing as each began (the innermost operator running then).
    starts = sorted(cpu_ops)
    keys = [op[0] for op in starts]
    print("  longest compute-stream gaps:")
    for g in sorted(idle, key=lambda g: g[0] - g[1])[:10]:
        i = bisect.bisect_right(keys, g[0])
        running = [op for op in starts[max(0, i - 400):i] if op[1] >= g[0]]
        inner = min(running, key=lambda op: op[1] - op[0])[2] if running else "-"
        sync = any(s <= g[0] <= e for s, e in syncs)
        print(f"    {(g[1] - g[0]) / 1e3:7.2f} ms at +{(g[0] - start) / 1e3:8.1f} ms  host in: {inner[:70]}"
              f"{'  (host synchronising)' if sync else ''}")


def host_operators(ops_by_thread, threads=2, top=12):
    """The host's side: per thread (the busiest first: the main thread, autograd's backward thread),
    the top-level operators (not nested in another on that thread) by total time. Comparing a 1-GPU
    and a 2-GPU trace shows what data parallelism adds on the host, and whether the same operators
    simply run slower."""
    tops = {}
    for tid, ops in ops_by_thread.items():
        outer, end = [], float("-inf")
        for s, e, n in sorted(ops, key=lambda op: (op[0], -op[1])):
            if s >= end:
                outer.append((s, e, n))
                end = e
        tops[tid] = outer
    # Self time (an operator's time less its children's), over all threads: where the host's time
    # actually goes, also inside autograd's nodes and the checkpointed layers' recomputation.
    self_time = defaultdict(lambda: [0, 0.0])
    for ops in ops_by_thread.values():
        stack = []  # [end, name, time left to itself]
        def close(upto):
            while stack and stack[-1][0] <= upto:
                end, n, own = stack.pop()
                self_time[n][0] += 1
                self_time[n][1] += own
        for s, e, n in sorted(ops, key=lambda op: (op[0], -op[1])):
            close(s)
            if stack:
                stack[-1][2] -= min(e, stack[-1][0]) - s
            stack.append([e, n, e - s])
        close(float("inf"))
    print(f"  host operators by self time (all threads):")
    for n, (c, t) in sorted(self_time.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"    {t / 1e3:9.1f} ms {c:7d}  {t / c:8.1f} us  {n[:60]}")
    for tid in sorted(tops, key=lambda t: -total([[s, e] for s, e, _ in tops[t]]))[:threads]:
        by_name = defaultdict(lambda: [0, 0.0])
        for s, e, n in tops[tid]:
            by_name[n][0] += 1
            by_name[n][1] += e - s
        busy = sum(t for _, t in by_name.values())
        print(f"  host thread {tid}: {len(tops[tid])} top-level operators, {busy / 1e3:.1f} ms; by time:")
        for n, (c, t) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[:top]:
            print(f"    {t / 1e3:9.1f} ms {c:7d}  {t / c:8.1f} us  {n[:60]}")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        summarize(p)

#!/usr/bin/env bash
# One agent of a 2-node job killed with kill -9: its own workers die with it (parent-death signal),
# and the other node's workers are gone within a bounded time, its agent naming the cause.
#   a. the agent of node 1 dies: the coordinator (node 0) misses its heartbeats and fails the job;
#   b. the agent of node 0, which hosts the coordinator, dies: node 1 stops hearing from it.
# Workers are shell loops tagged with a marker unique to this run; none may survive.
set -euo pipefail
bin=$1
python=$2
out=$(mktemp -d)
marker="pdsd-node-loss-$$"
export PDSD_RUNTIME_DIR=$out/runtime PDSD_JOB_TOKEN=node-loss-test-token-$$
mkdir -m 700 "$PDSD_RUNTIME_DIR"
trap 'pkill -9 -f "$marker" 2>/dev/null || true; rm -rf "$out"' EXIT
port() { "$python" tests/e2e/free_port.py; }
worker=(sh -c 'touch '"$out"'/up.$RANK; while true; do sleep 0.2; done' "$marker")
workers() { pgrep "$@" -f "^sh -c touch .*$marker"; }  # the agents' command lines carry the marker too
bound=20  # seconds: heartbeat_timeout (2) + stop grace (3) + slack for a loaded machine

run_case() {  # $1: which node's agent to kill
  local victim_node=$1 p pid0 pid1 survivor_pid survivor_node
  p=$(port)
  rm -f "$out"/up.*
  for n in 0 1; do
    "$bin/pdsd-launch" --nnodes 2 --nproc 2 --node-rank $n --rdzv-endpoint "127.0.0.1:$p" --stop-grace 3 \
      --rdzv-conf heartbeat_interval=0.25,heartbeat_timeout=2 -- "${worker[@]}" > "$out/case$victim_node.agent$n.txt" 2>&1 &
    eval "pid$n=\$!"
  done
  for _ in $(seq 400); do [ -e "$out/up.0" ] && [ -e "$out/up.1" ] && [ -e "$out/up.2" ] && [ -e "$out/up.3" ] && break; sleep 0.05; done
  [ -e "$out/up.3" ] || { echo "workers did not start"; cat "$out"/case$victim_node.*; exit 1; }
  [ "$(workers -c)" = 4 ] || { echo "expected 4 workers"; workers -a; exit 1; }
  eval "kill -9 \$pid$victim_node"
  survivor_node=$((1 - victim_node))
  eval "survivor_pid=\$pid$survivor_node"
  local t0=$SECONDS code=0
  for _ in $(seq $((bound * 10))); do workers > /dev/null || break; sleep 0.1; done
  if workers > /dev/null; then echo "workers still alive $bound s after agent $victim_node was killed:"; workers -a; exit 1; fi
  wait "$survivor_pid" || code=$?
  local log="$out/case$victim_node.agent$survivor_node.txt"
  [ "$code" != 0 ] || { echo "the surviving agent exited 0"; cat "$log"; exit 1; }
  echo "agent $victim_node killed: every worker gone within $((SECONDS - t0)) s; agent $survivor_node exited $code"
  if [ "$victim_node" = 1 ]; then
    grep -q "root cause : node 1" "$log" && grep -q "node lost: no heartbeat from its agent" "$log" \
      || { echo "agent 0 does not name the lost node"; cat "$log"; exit 1; }
  else
    grep -q "no answer from the coordinator at 127.0.0.1:$p" "$log" \
      || { echo "agent 1 does not name the lost coordinator"; cat "$log"; exit 1; }
  fi
  grep -E "root cause|status     :|no answer from the coordinator" "$log" | sed 's/^/    /'
}

run_case 1
run_case 0
if pgrep -f "$marker" > /dev/null; then echo "orphans:"; pgrep -af "$marker"; exit 1; fi

#!/usr/bin/env bash
# pdsd-ctl against a running 2-node job (2 agents on loopback, 2 workers each): `checkpoint` makes
# every agent send SIGUSR1 to its workers and the job goes on; `stop` makes every agent send SIGTERM
# and the job ends as stopped (exit 0); a wrong token is refused. The workers are shell loops that
# record the signals they get.
set -euo pipefail
bin=$1
python=$2
out=$(mktemp -d)
marker="pdsd-ctl-test-$$"
export PDSD_RUNTIME_DIR=$out/runtime PDSD_JOB_TOKEN=ctl-test-token-$$
mkdir -m 700 "$PDSD_RUNTIME_DIR"
trap 'pkill -9 -f "$marker" 2>/dev/null || true; rm -rf "$out"' EXIT
p=$("$python" tests/e2e/free_port.py)
script='trap "echo usr1 >> '"$out"'/usr1.\$RANK" USR1; trap "echo term > '"$out"'/term.\$RANK; exit 0" TERM
touch '"$out"'/up.$RANK; while true; do sleep 0.1; done'
for n in 0 1; do
  "$bin/pdsd-launch" --nnodes 2 --nproc 2 --rdzv-endpoint "127.0.0.1:$p" --stop-grace 10 -- sh -c "$script" "$marker" \
    > "$out/agent$n.txt" 2>&1 &
  eval "pid$n=\$!"
  sleep 0.3
done
for _ in $(seq 400); do [ -e "$out/up.0" ] && [ -e "$out/up.1" ] && [ -e "$out/up.2" ] && [ -e "$out/up.3" ] && break; sleep 0.05; done
[ -e "$out/up.3" ] || { echo "workers did not start"; cat "$out"/agent*.txt; exit 1; }

if PDSD_JOB_TOKEN=wrong "$bin/pdsd-ctl" --endpoint "127.0.0.1:$p" status > "$out/wrong.txt" 2>&1; then
  echo "a wrong token was served"; exit 1
fi
grep -q "UNAUTHENTICATED" "$out/wrong.txt" || { cat "$out/wrong.txt"; exit 1; }
grep -q "refused Coordinator/GetStatus .*wrong job token" "$out/agent0.txt" || { echo "the refusal was not logged"; exit 1; }

"$bin/pdsd-ctl" --endpoint "127.0.0.1:$p" checkpoint
for _ in $(seq 200); do [ -e "$out/usr1.0" ] && [ -e "$out/usr1.1" ] && [ -e "$out/usr1.2" ] && [ -e "$out/usr1.3" ] && break; sleep 0.05; done
for r in 0 1 2 3; do [ -e "$out/usr1.$r" ] || { echo "rank $r got no SIGUSR1"; cat "$out"/agent*.txt; exit 1; }; done
"$bin/pdsd-ctl" status --endpoint "127.0.0.1:$p" | tee "$out/status.txt" | head -4
grep -q "running, attempt 0" "$out/status.txt"

"$bin/pdsd-ctl" --endpoint "127.0.0.1:$p" stop --reason "test over"
wait "$pid0" || { echo "agent 0 exited $?"; cat "$out/agent0.txt"; exit 1; }
wait "$pid1" || { echo "agent 1 exited $?"; cat "$out/agent1.txt"; exit 1; }
for r in 0 1 2 3; do [ -e "$out/term.$r" ] || { echo "rank $r got no SIGTERM"; exit 1; }; done
grep -q "job stopped: stop requested by .*test over" "$out/agent1.txt" || { cat "$out/agent1.txt"; exit 1; }
if pgrep -f "$marker" > /dev/null; then echo "orphans:"; pgrep -af "$marker"; exit 1; fi
echo "pdsd-ctl: checkpoint reached all 4 workers (SIGUSR1), stop ended the job (SIGTERM, agents exit 0), a wrong token was refused"

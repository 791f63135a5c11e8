#!/usr/bin/env bash
# Fresh-clone check: clone this repository's HEAD into a temporary folder, run the README's run command
# (`make run`: virtualenv, pinned requirements, simulator + worker + web) in a clean environment, and confirm that
# /health answers and /api/accounts lists the simulator's accounts with live data. Then stop it with SIGTERM and
# confirm everything exited and released its ports.
#
#   scripts/fresh-clone-check.sh            # KEEP=1 keeps the clone and its log; PORT=... picks the web port
set -euo pipefail

SRC=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lb-fresh-clone-XXXXXX")
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
RUN_DEADLINE_S=${RUN_DEADLINE_S:-1200}   # whole run, installs included
READY_DEADLINE_S=${READY_DEADLINE_S:-900} # clone to /health (a fresh virtualenv downloads every requirement)
LOG="$WORK/make-run.log"
RUN_PID=

say() { printf 'fresh-clone-check | %s\n' "$*"; }

cleanup() {
  if [ -n "$RUN_PID" ] && kill -0 "$RUN_PID" 2>/dev/null; then
    kill -TERM "$RUN_PID" 2>/dev/null || true
    wait "$RUN_PID" 2>/dev/null || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

say "cloning $SRC (HEAD $(git -C "$SRC" rev-parse --short HEAD)) into $WORK/repo"
git clone -q "$SRC" "$WORK/repo"

say "starting \`make run\` on port $PORT (log: $LOG)"
# A clean environment, as on a fresh machine: nothing configured, so the demo (simulator) mode starts.
# timeout(1) forwards our SIGTERM to make's whole process group, as a terminal's Ctrl-C would.
(cd "$WORK/repo" && exec env -i HOME="$HOME" PATH="$PATH" LANG=C.UTF-8 PORT="$PORT" SIM_PORT=0 \
  timeout --kill-after=20 "$RUN_DEADLINE_S" make run >"$LOG" 2>&1) &
RUN_PID=$!

status=0
python3 - "$WORK/repo" "$PORT" "$RUN_PID" "$READY_DEADLINE_S" <<'PY' || status=$?
"""Wait for the demo, then compare /api/accounts with the simulator's own account list."""
import json, os, sys, time, urllib.error, urllib.request

repo, port, run_pid, ready_deadline = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
web = f"http://127.0.0.1:{port}"


def say(message):
    print(f"fresh-clone-check | {message}", flush=True)


def get(url, timeout=3):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, json.load(response)


def running():
    try:
        os.kill(run_pid, 0)
        return True
    except ProcessLookupError:
        return False


def wait_for(what, check, deadline_s, pause_s=0.5):
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        if not running():
            raise SystemExit(f"`make run` exited while waiting for {what}")
        try:
            result = check()
            if result:
                return result
        except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
            last = exc
        time.sleep(pause_s)  # a polling interval against a live process, not a test sleep
    raise SystemExit(f"timed out after {deadline_s:.0f} s waiting for {what} (last error: {last})")


started = time.monotonic()
wait_for("/health", lambda: get(f"{web}/health")[0] == 200, ready_deadline)
say(f"/health answered after {time.monotonic() - started:.0f} s")

demo_env = os.path.join(repo, ".cache", "demo.env")
values = dict(line.split("=", 1) for line in open(demo_env).read().splitlines() if line and not line.startswith("#"))
sim = values["LIGHTER_BASE_URL"]
truth = sorted(a["account_index"] for a in get(f"{sim}/_sim/accounts")[1]["accounts"])
say(f"simulator at {sim} has accounts {truth}")


def live_accounts():
    body = get(f"{web}/api/accounts")[1]
    accounts = body["accounts"] if isinstance(body, dict) else body
    if sorted(a["account_index"] for a in accounts) != truth:
        return None
    for a in accounts:
        sections = a["sections"]
        if sections["summary"]["data"] is None or sections["positions"]["data"] is None:
            return None
        if a["age_ms"] is None or a["age_ms"] > 5000 or a["stale"]:
            return None
    return accounts


accounts = wait_for("/api/accounts to list the simulator's accounts with live data", live_accounts, 90)
for a in accounts:
    s = a["sections"]
    say(f"account {a['account_index']}: seq {a['seq']}, age {a['age_ms']} ms, collateral "
        f"{s['summary']['data'].get('collateral')}, {len(s['positions']['data'])} positions, "
        f"orders {'n/a' if s['orders']['data'] is None else len(s['orders']['data'])}")
first = {a["account_index"]: a["seq"] for a in accounts}
wait_for("the accounts to keep moving", lambda: any(
    a["seq"] > first[a["account_index"]] for a in (lambda b: b["accounts"] if isinstance(b, dict) else b)(
        get(f"{web}/api/accounts")[1])), 30)
say("live: snapshots keep advancing")
with open(os.path.join(os.path.dirname(repo), "sim-url"), "w") as handle:
    handle.write(sim)
PY

if [ "$status" != 0 ]; then
  say "FAILED; last lines of the log:"
  tail -n 60 "$LOG" | sed 's/^/    /'
  exit 1
fi

say "stopping with SIGTERM"
t0=$(date +%s.%N)
kill -TERM "$RUN_PID"
rc=0; wait "$RUN_PID" || rc=$?
RUN_PID=
elapsed=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
leftovers=$(for p in /proc/[0-9]*; do  # anything still running inside the clone
  case "$(readlink "$p/cwd" 2>/dev/null)" in "$WORK/repo" | "$WORK/repo"/*) printf '%s ' "${p#/proc/}" ;; esac
done)
sim_port=$(sed -E 's#.*:([0-9]+)$#\1#' "$WORK/sim-url")
busy=$(python3 - "$PORT" "$sim_port" <<'PY'
import socket, sys
for port in map(int, sys.argv[1:]):
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            print(port)
PY
)
if [ -n "$leftovers" ] || [ -n "$busy" ]; then
  say "FAILED: after stopping, processes left: ${leftovers:-none}; ports still open: ${busy:-none}"
  exit 1
fi
if ! grep -q '^run_local | stopped' "$LOG" || grep -q 'SIGKILL' "$LOG"; then
  say "FAILED: the launcher did not stop cleanly; last lines of the log:"
  tail -n 30 "$LOG" | sed 's/^/    /'
  exit 1
fi
# make itself receives the SIGTERM too (it is in the signalled process group), hence its 143.
say "stopped in ${elapsed} s (make: $rc); nothing was SIGKILLed, no process left, ports $PORT and $sim_port closed"
say "PASSED"

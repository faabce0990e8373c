#!/usr/bin/env bash
# tether.sh PARENT_PID COMMAND...
# Runs COMMAND and stops it when PARENT_PID goes away (even by SIGKILL) or when this script is
# signalled, so a crashed or interrupted test run leaves no control-plane process behind.
set -u
parent=$1; shift
"$@" &
child=$!
stop_child() {
  kill -TERM "$child" 2>/dev/null
  # Well inside the 12 s the harness gives this script before it is killed itself.
  for _ in $(seq 25); do kill -0 "$child" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$child" 2>/dev/null
}
trap 'stop_child; exit 0' TERM INT HUP
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do
  sleep 0.5 & wait $!
done
if kill -0 "$child" 2>/dev/null; then stop_child; exit 0; fi
wait "$child"

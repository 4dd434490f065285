#!/bin/sh
# Stops this node's Tomcat and removes its CATALINA_BASE. Run on a leaving
# node by goscaler's distributed_script action (an on_terminate step):
#   stop.sh [TOMCAT_ROOT]
set -eu
root=${1:-/var/tmp/goscaler-tomcat}
base="$root/$GOSCALER_NODE_ID"
pid="$base/tomcat.pid"
if [ -s "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null; then
  p=$(cat "$pid")
  kill "$p"
  i=0
  while kill -0 "$p" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -ge 30 ]; then
      echo "Tomcat $p did not stop in 30 s: killing it" >&2
      kill -9 "$p" 2>/dev/null || true
      break
    fi
    sleep 1
  done
  echo "stopped Tomcat $p"
fi
rm -rf "$base"
echo "removed $base"

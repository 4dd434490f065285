#!/bin/sh
# Deploys a WAR to this node's Tomcat and waits until it answers. Run on each
# node by goscaler's distributed_script action (as a launch step, on the new
# node), with the arguments:
#   deploy.sh WAR_URL_OR_PATH CONTEXT [TOMCAT_ROOT]
# WAR_URL_OR_PATH is a path on the node or an http(s) URL; CONTEXT is the
# application's path (hello serves /hello/). goscaler sets GOSCALER_NODE_ID
# and GOSCALER_ADDRESS (host:port of the node's Tomcat).
set -eu
war=$1
context=$2
root=${3:-/var/tmp/goscaler-tomcat}
base="$root/$GOSCALER_NODE_ID"
[ -d "$base/webapps" ] || { echo "no Tomcat at $base: run the os_configuration step (puppet/tomcat.pp) first" >&2; exit 2; }

tmp="$base/temp/$context.war.new"
case "$war" in
  http://*|https://*) curl -fsS --max-time 60 -o "$tmp" "$war" ;;
  *) cp "$war" "$tmp" ;;
esac
# A rename is atomic: Tomcat's auto-deployer never sees half a WAR.
mv "$tmp" "$base/webapps/$context.war"
echo "copied $war to $base/webapps/$context.war"

# Tomcat's deployer looks at webapps every 10 s or so: wait for the app.
url="http://$GOSCALER_ADDRESS/$context/"
i=0
until curl -fs --max-time 3 -o /dev/null "$url"; do
  i=$((i + 1))
  if [ "$i" -ge 60 ]; then
    echo "$url does not answer 60 s after the deployment; see $base/logs" >&2
    exit 1
  fi
  sleep 1
done
echo "$url answers"

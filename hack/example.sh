#!/usr/bin/env bash
# Installs what is missing, builds Ballast and the example's images, and runs
# `ballast node` on examples/manifests. It waits for the example pod to serve,
# shows `ballast pods -o wide`, asks the pod for a page, and leaves the agent
# running (its log: $DATA/ballast.log; stop it with: kill $(cat $DATA/ballast.pid)).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-/var/lib/ballast}
MANIFESTS=${MANIFESTS:-$PWD/examples/manifests}

hack/deps.sh
make --no-print-directory build images
mkdir -p "$DATA/images"
chmod 700 "$DATA"
cp bin/images/pause.tar bin/images/hello.tar "$DATA/images/"

if [ -f "$DATA/ballast.pid" ] && kill -0 "$(cat "$DATA/ballast.pid")" 2>/dev/null; then
	echo "ballast node already runs (pid $(cat "$DATA/ballast.pid")); stopping it first (pods keep running)"
	kill "$(cat "$DATA/ballast.pid")"
	sleep 1
fi
setsid bin/ballast node --pod-manifest-path "$MANIFESTS" --data-dir "$DATA" >"$DATA/ballast.log" 2>&1 </dev/null &
echo $! >"$DATA/ballast.pid"
echo "ballast node started (pid $(cat "$DATA/ballast.pid"), log $DATA/ballast.log), manifests in $MANIFESTS"

for i in $(seq 1 120); do
	if bin/ballast pods --data-dir "$DATA" 2>/dev/null | grep -q ' Running '; then
		break
	fi
	if ! kill -0 "$(cat "$DATA/ballast.pid")" 2>/dev/null; then
		echo "ballast node exited:" >&2
		tail -20 "$DATA/ballast.log" >&2
		exit 1
	fi
	sleep 0.5
done
bin/ballast pods --data-dir "$DATA" -o wide
ip=$(bin/ballast pods --data-dir "$DATA" -o json | sed -n 's/.*"podIP": "\([0-9.]*\)".*/\1/p' | head -1)
echo
echo "\$ curl http://$ip:8080/"
curl -sS --max-time 5 "http://$ip:8080/"
echo
echo "The agent keeps running. Try: bin/ballast logs --data-dir $DATA hello ; edit $MANIFESTS/hello.yaml ; kill \$(cat $DATA/ballast.pid)"

#!/usr/bin/env bash
# Installs what is missing, builds Ballast and the example's images, and runs
# `ballast up` (API server + node agent in one process) on examples/manifests.
# It waits for the example static pod to run, shows it with `kubectl get pods`
# and `ballast pods -o wide`, asks the pod for a page, and leaves Ballast
# running (log: $DATA/ballast.log; stop it with: kill $(cat $DATA/ballast.pid);
# pods keep running).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-/var/lib/ballast}
MANIFESTS=${MANIFESTS:-$PWD/examples/manifests}

BALLAST_NO_TEST_DEPS=1 hack/deps.sh
make --no-print-directory build images
mkdir -p "$DATA/images"
chmod 700 "$DATA"
cp bin/images/pause.tar bin/images/hello.tar "$DATA/images/"

if [ -f "$DATA/ballast.pid" ] && kill -0 "$(cat "$DATA/ballast.pid")" 2>/dev/null; then
	echo "ballast already runs (pid $(cat "$DATA/ballast.pid")); stopping it first (pods keep running)"
	kill "$(cat "$DATA/ballast.pid")"
	sleep 1
fi
setsid bin/ballast up --pod-manifest-path "$MANIFESTS" --data-dir "$DATA" >"$DATA/ballast.log" 2>&1 </dev/null &
echo $! >"$DATA/ballast.pid"
echo "ballast up started (pid $(cat "$DATA/ballast.pid"), log $DATA/ballast.log), manifests in $MANIFESTS"

export KUBECONFIG="$DATA/kubeconfig"
for i in $(seq 1 120); do
	if bin/ballast pods --data-dir "$DATA" 2>/dev/null | grep -q ' Running ' &&
		{ ! command -v kubectl >/dev/null || kubectl get pods 2>/dev/null | grep -q ' Running '; }; then
		break
	fi
	if ! kill -0 "$(cat "$DATA/ballast.pid")" 2>/dev/null; then
		echo "ballast exited:" >&2
		tail -20 "$DATA/ballast.log" >&2
		exit 1
	fi
	sleep 0.5
done
if command -v kubectl >/dev/null; then
	echo "\$ KUBECONFIG=$KUBECONFIG kubectl get pods"
	kubectl get pods
	echo
fi
echo "\$ ballast pods -o wide"
bin/ballast pods --data-dir "$DATA" -o wide
ip=$(bin/ballast pods --data-dir "$DATA" -o json | sed -n 's/.*"podIP": "\([0-9.]*\)".*/\1/p' | head -1)
echo
echo "\$ curl http://$ip:8080/"
curl -sS --max-time 5 "http://$ip:8080/"
echo
echo "\$ ballast get configmaps"
bin/ballast get configmaps --data-dir "$DATA"
echo
echo "\$ curl http://$ip:8080/file?path=/etc/hello/greeting"
curl -sS --max-time 5 "http://$ip:8080/file?path=/etc/hello/greeting"
echo
echo
echo "Ballast keeps running. Try: KUBECONFIG=$KUBECONFIG kubectl logs hello-<node> ; kubectl get cm ; kubectl delete pod hello-<node> ; edit the greeting in $MANIFESTS/hello.yaml and curl the file again ; kill \$(cat $DATA/ballast.pid)"

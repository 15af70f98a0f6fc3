// Package chaos holds Ballast's chaos suite (`make chaos`; a short run is
// part of `make test`): on a private containerd that `ballast node` manages
// (test/e2e/harness), with a separate `ballast server`, a seeded random
// schedule of manifest file adds, edits, breaks, fixes, renames and
// removals, duplicate pod names, kill -9 of the agent (also in the middle
// of a pod's start), of its containerd and of the server, API outages and
// client churn. After each step it waits for the node to converge and
// checks the invariants: every pod the files define runs exactly once (one
// sandbox, one container per container), as a model of the manifest rules
// says; no container restarts; no orphan sandbox, container, mount, veth
// or IP lease; every mirror pod matches a file, agrees with `ballast pods`
// and never flaps; the agent's and the server's goroutines and memory stay
// bounded. A failure prints the seed that replays the schedule
// (CHAOS_SEED=N hack/test.sh chaos). docs/node-agent.md records the runs.
package chaos

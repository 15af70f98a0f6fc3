// Command fleetsim runs a simulated fleet of nodes (package
// test/fleet: the project's own mirror sync per node, static pods faked
// at the agent's published view) against the API server of any
// kubeconfig, and prints Lease renewal and mirror status update latencies
// and, with --watchers, how late informers on all pods see the changes.
//
//	go run ./test/fleet/cmd/fleetsim --kubeconfig /var/lib/ballast/kubeconfig \
//	    --node-ca-cert /var/lib/ballast/pki/ca.crt --node-ca-key /var/lib/ballast/pki/ca.key \
//	    --nodes 100 --pods 30 --changes-per-second 20 --watchers 10 --duration 2m
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ballast-dev/ballast/test/fleet"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fleetsim:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg fleet.Config
	var watchers int
	var duration time.Duration
	flag.StringVar(&cfg.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "the API server's kubeconfig (an admin's)")
	flag.IntVar(&cfg.Nodes, "nodes", 100, "simulated nodes")
	flag.IntVar(&cfg.PodsPerNode, "pods", 30, "static (mirror) pods per node")
	flag.Float64Var(&cfg.StatusChangesPerSecond, "changes-per-second", 10, "status changes per second across the fleet")
	flag.Float64Var(&cfg.StartRate, "start-rate", 50, "nodes started per second (0: all at once)")
	flag.StringVar(&cfg.Prefix, "prefix", "sim", "node names are PREFIX-0000, PREFIX-0001, ...")
	flag.StringVar(&cfg.NodeCACert, "node-ca-cert", "", "the server's client CA certificate, to mint each node's certificate (system:node:NAME)")
	flag.StringVar(&cfg.NodeCAKey, "node-ca-key", "", "that CA's private key")
	flag.IntVar(&watchers, "watchers", 0, "client-go informers on all pods, each measuring how late it sees changes")
	flag.DurationVar(&duration, "duration", 2*time.Minute, "how long to run once every mirror pod exists")
	flag.Parse()
	if cfg.Kubeconfig == "" {
		return fmt.Errorf("--kubeconfig (or $KUBECONFIG) is required")
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return err
	}
	rc.QPS, rc.Burst = -1, 0
	admin, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	start := time.Now()
	f, err := fleet.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer f.Stop()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	if err := f.WaitMirrors(wctx, admin); err != nil {
		return err
	}
	fmt.Printf("%d nodes x %d pods: every mirror pod listed after %v\n", cfg.Nodes, cfg.PodsPerNode, time.Since(start).Round(time.Second))
	var w *fleet.Watchers
	if watchers > 0 {
		if w, err = fleet.StartWatchers(ctx, rc, watchers); err != nil {
			return err
		}
		defer w.Stop()
		if err := w.WaitSynced(wctx, watchers); err != nil {
			return err
		}
		fmt.Printf("%d watchers synced\n", watchers)
	}
	f.Lat.Reset()
	end := time.After(duration)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	report := func() {
		fmt.Printf("%s: %v\n%s: %v\n", fleet.LeaseRenewal, f.Lat.Summary(fleet.LeaseRenewal), fleet.StatusUpdate, f.Lat.Summary(fleet.StatusUpdate))
		if w != nil {
			fmt.Printf("informer delay: %v (%d updates seen)\n", w.Delays(), w.Events())
		}
	}
	for {
		select {
		case <-ctx.Done():
			report()
			return nil
		case <-end:
			report()
			return nil
		case <-tick.C:
			report()
		}
	}
}

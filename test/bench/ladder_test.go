package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/cri"
	"github.com/ballast-dev/ballast/internal/events"
	"github.com/ballast-dev/ballast/internal/executor"
	"github.com/ballast-dev/ballast/internal/hostinfo"
	"github.com/ballast-dev/ballast/internal/logs"
	"github.com/ballast-dev/ballast/internal/manifest"
	"github.com/ballast-dev/ballast/internal/planner"
	"github.com/ballast-dev/ballast/internal/podconfig"
	"github.com/ballast-dev/ballast/internal/podplan"
	"github.com/ballast-dev/ballast/internal/podruntime"
	"github.com/ballast-dev/ballast/internal/validation"
	"github.com/ballast-dev/ballast/internal/volumes"
)

// The attribution ladder: from the honest floor (the minimal CRI sequence
// that yields a serving container) to Ballast's own sequence, one piece of
// configuration or one runtime call at a time. Each rung is a contender of
// its own, measured in the same rounds as the others, so the difference of
// two neighbouring rungs' medians is what that piece costs. The top raw
// rung sends exactly the configs Ballast builds (checked: the benchmark
// fails if podconfig grows a field no rung adds), then come Ballast's
// executor run in-process on the same pods, and the Ballast node itself.

// piece is one part of Ballast's pod start that the floor does without.
type piece uint32

const (
	// On the sandbox.
	sbLabels   piece = 1 << iota // labels and annotations, the pod as JSON among them
	sbHostname                   // the pod's hostname
	sbDNS                        // the resolver config from the node's resolv.conf
	sbLinux                      // pid and IPC namespace modes, privilege, users and groups, sysctls, port mappings
	sbSeccomp                    // the sandbox's seccomp profile
	// On the container.
	ctrLog      // a log file (LogPath)
	ctrLabels   // labels and annotations, the image as the user wrote it
	ctrLinux    // resources and security context (namespace modes, masked paths, seccomp, OOM score)
	callStatus  // PodSandboxStatus before CreateContainer (the pod's IPs; pod network only)
	ctrHostFile // host files prepared and mounted: the managed /etc/hosts, the termination-message file
	callList    // the read of the pod after the start (ListPodSandbox, ListContainers, ContainerStatus, PodSandboxStatus)
)

const allPieces = sbLabels | sbHostname | sbDNS | sbLinux | sbSeccomp | ctrLog | ctrLabels | ctrLinux | callStatus | ctrHostFile | callList

// A rung of the ladder. The contenders of a group are its rungs in order.
type rung struct {
	name   string // what it adds, as printed
	pieces piece  // raw: what it sends beyond the floor
	exec   bool   // Ballast's executor, in-process
	node   bool   // the Ballast node, from manifest files
}

// ladder is every rung, in order; one-pod groups measure them all.
var ladder = []rung{
	{name: "floor: minimal CRI sequence"},
	{name: "+ sandbox labels, annotations (the pod as JSON)", pieces: sbLabels},
	{name: "+ sandbox hostname", pieces: sbLabels | sbHostname},
	{name: "+ sandbox DNS config (node's resolv.conf)", pieces: sbLabels | sbHostname | sbDNS},
	{name: "+ sandbox pid/IPC modes, groups, sysctls, ports", pieces: sbLabels | sbHostname | sbDNS | sbLinux},
	{name: "+ sandbox seccomp profile (Ballast's, below)", pieces: sbLabels | sbHostname | sbDNS | sbLinux | sbSeccomp},
	{name: "+ container log file", pieces: sbLabels | sbHostname | sbDNS | sbLinux | sbSeccomp | ctrLog},
	{name: "+ container labels, annotations", pieces: sbLabels | sbHostname | sbDNS | sbLinux | sbSeccomp | ctrLog | ctrLabels},
	{name: "+ container resources, security context", pieces: sbLabels | sbHostname | sbDNS | sbLinux | sbSeccomp | ctrLog | ctrLabels | ctrLinux},
	{name: "+ PodSandboxStatus (pod IPs)", pieces: allPieces &^ (ctrHostFile | callList)},
	{name: "+ host files: /etc/hosts, termination log", pieces: allPieces &^ callList},
	{name: "+ List of the pod after the start", pieces: allPieces},
	{name: "Ballast's executor (in-process)", exec: true},
	{name: "Ballast node: file -> serving", node: true},
}

// ladder20 are the rungs 20-pod groups measure (20-pod rounds are long): a
// difference there covers every piece since the previous rung measured.
var ladder20 = []int{0, 5, 8, 10, 11, 12, 13}

// allRungs are the indexes of every rung.
func allRungs() []int {
	is := make([]int, len(ladder))
	for i := range is {
		is[i] = i
	}
	return is
}

// netMode is the pods' network: their own (CNI), or the node's.
type netMode bool

const (
	podNet  netMode = false
	hostNet netMode = true
)

func (m netMode) String() string {
	if m == hostNet {
		return "host network"
	}
	return "pod network"
}

// rawNode is the node name raw and replayed pods are built for: the agent
// under test manages only its own node's pods, so it leaves them alone.
const rawNode = "raw"

// podSpec is one pod of a round: its manifest, and where it serves.
type podSpec struct {
	name string
	port int // host network: the port it listens on (env PORT); 0: 8080 on its own IP
}

func (p podSpec) yaml(image string) string {
	if p.port == 0 {
		return manifestYAML(p.name, image)
	}
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  labels:\n    app: %s\nspec:\n  hostNetwork: true\n  containers:\n  - name: app\n    image: %s\n    env:\n    - name: PORT\n      value: \"%d\"\n", p.name, p.name, image, p.port)
}

// parse returns the pod as Ballast's manifest source gives it to the
// planner, for node.
func (p podSpec) parse(image, node string) (*corev1.Pod, error) {
	path := filepath.Join("/bench", p.name+".yaml")
	pods, err := manifest.Parse(path, []byte(p.yaml(image)), node)
	if err != nil {
		return nil, err
	}
	validation.SetDefaults(pods[0])
	return pods[0], nil
}

// rawNodeInfo is what podconfig needs of the node, read as the executor does.
func (bn *bench) rawNodeInfo() podconfig.Node {
	var resolv *runtimeapi.DNSConfig
	if data, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		resolv = podconfig.ParseResolvConf(data)
	}
	return podconfig.Node{Name: rawNode, DataDir: bn.rawDir, HostIP: hostinfo.DefaultIPv4(), ResolvConf: resolv, Capacity: hostinfo.Capacity()}
}

// sandboxFor is the sandbox config of a rung: the floor (metadata, log
// directory, network mode) plus the pieces asked for, each copied from the
// config Ballast builds.
func sandboxFor(exact *runtimeapi.PodSandboxConfig, p piece) *runtimeapi.PodSandboxConfig {
	sb := &runtimeapi.PodSandboxConfig{
		Metadata:     proto.Clone(exact.Metadata).(*runtimeapi.PodSandboxMetadata),
		LogDirectory: exact.LogDirectory,
	}
	if nw := exact.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork(); nw != runtimeapi.NamespaceMode_POD {
		sb.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: nw},
		}}
	}
	if p&sbLabels != 0 {
		sb.Labels, sb.Annotations = exact.Labels, exact.Annotations
	}
	if p&sbHostname != 0 {
		sb.Hostname = exact.Hostname
	}
	if p&sbDNS != 0 {
		sb.DnsConfig = exact.DnsConfig
	}
	if p&sbLinux != 0 {
		sb.Linux, sb.PortMappings = proto.Clone(exact.Linux).(*runtimeapi.LinuxPodSandboxConfig), exact.PortMappings
		if sc := sb.Linux.GetSecurityContext(); sc != nil {
			sc.Seccomp = nil
		}
	}
	if seccomp := exact.GetLinux().GetSecurityContext().GetSeccomp(); p&sbSeccomp != 0 && seccomp != nil {
		if sb.Linux == nil {
			sb.Linux = &runtimeapi.LinuxPodSandboxConfig{}
		}
		if sb.Linux.SecurityContext == nil {
			sb.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{}
		}
		sb.Linux.SecurityContext.Seccomp = seccomp
	}
	return sb
}

// floorCommand is the floor container's command: the hello image's entrypoint.
var floorCommand = []string{"/hello"}

// containerFor is the container config of a rung: the floor (name, image by
// ID, command, the pod's own env) plus the pieces asked for.
func containerFor(exact *runtimeapi.ContainerConfig, p piece) *runtimeapi.ContainerConfig {
	c := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: exact.Metadata.Name},
		Image:    &runtimeapi.ImageSpec{Image: exact.Image.Image},
		Command:  floorCommand,
		Envs:     exact.Envs,
	}
	if p&ctrLog != 0 {
		c.LogPath = exact.LogPath
	}
	if p&ctrLabels != 0 {
		c.Labels, c.Annotations = exact.Labels, exact.Annotations
		c.Image.UserSpecifiedImage = exact.Image.UserSpecifiedImage
		c.Metadata.Attempt = exact.Metadata.Attempt
	}
	if p&ctrLinux != 0 {
		c.Linux = exact.Linux
	}
	if p&ctrHostFile != 0 {
		c.Mounts = exact.Mounts
	}
	return c
}

// checkLadder fails the benchmark if the top raw rung would not send what
// Ballast sends (a field podconfig sets that no piece adds): the ladder
// would then hide that field's cost.
func (bn *bench) checkLadder(m netMode) {
	ps := podSpec{name: "ladder-check"}
	if m == hostNet {
		ps.port = 1
	}
	pod, err := ps.parse(bn.image, rawNode)
	if err != nil {
		bn.b.Fatal(err)
	}
	node := bn.rawNodeInfo()
	exact, err := podconfig.Sandbox(pod, node, 0)
	if err != nil {
		bn.b.Fatal(err)
	}
	bn.sandboxSeccomp = append(bn.sandboxSeccomp, fmt.Sprintf("%s on the %s", exact.GetLinux().GetSecurityContext().GetSeccomp().GetProfileType(), m))
	if got := sandboxFor(exact, allPieces); !proto.Equal(got, exact) {
		bn.b.Fatalf("the attribution ladder does not rebuild Ballast's sandbox config (%s): a piece is missing in sandboxFor\nBallast: %v\nladder: %v", m, exact, got)
	}
	defer os.RemoveAll(volumes.PodDir(node.DataDir, string(pod.UID)))
	ctr, _, err := bn.rawContainer(pod, node, allPieces, []string{"10.0.0.1"})
	if err != nil {
		bn.b.Fatal(err)
	}
	exactCtr, err := bn.exactContainer(pod, node, []string{"10.0.0.1"})
	if err != nil {
		bn.b.Fatal(err)
	}
	ctr.Command = nil // the floor names the entrypoint, Ballast leaves it to the image
	if !proto.Equal(ctr, exactCtr) {
		bn.b.Fatalf("the attribution ladder does not rebuild Ballast's container config (%s): a piece is missing in containerFor\nBallast: %v\nladder: %v", m, exactCtr, ctr)
	}
}

// exactContainer is the container config Ballast builds for the pod's
// container (volumes prepared on the host as the executor prepares them).
func (bn *bench) exactContainer(pod *corev1.Pod, node podconfig.Node, podIPs []string) (*runtimeapi.ContainerConfig, error) {
	ctr := &pod.Spec.Containers[0]
	in := podconfig.ContainerInput{Node: node, ImageRef: bn.imageRef, PodIPs: podIPs}
	vols, err := podconfig.Volumes(pod, node, nil)
	if err != nil {
		return nil, err
	}
	dir := volumes.PodDir(node.DataDir, string(pod.UID))
	if in.Volumes, err = volumes.Prepare(dir, vols); err != nil {
		return nil, err
	}
	if !podconfig.MountsEtcHosts(ctr) {
		if in.HostsFile, err = volumes.WriteHostsFile(dir, pod, podIPs); err != nil {
			return nil, err
		}
	}
	if ctr.TerminationMessagePath != "" {
		if in.TerminationMessageFile, err = volumes.TerminationMessageFile(dir, ctr.Name, 0); err != nil {
			return nil, err
		}
	}
	cfg, subPaths, err := podconfig.Container(pod, ctr, in)
	if err != nil {
		return nil, err
	}
	if err := volumes.ResolveSubPaths(ctr.Name, cfg.Mounts, subPaths); err != nil {
		return nil, err
	}
	return cfg, nil
}

// rawContainer is a rung's container config; with ctrHostFile it prepares
// the host files first (that is part of what the rung costs).
func (bn *bench) rawContainer(pod *corev1.Pod, node podconfig.Node, p piece, podIPs []string) (*runtimeapi.ContainerConfig, time.Duration, error) {
	if p&ctrHostFile != 0 {
		t0 := time.Now()
		cfg, err := bn.exactContainer(pod, node, podIPs)
		if err != nil {
			return nil, 0, err
		}
		return containerFor(cfg, p), time.Since(t0), nil
	}
	// The same config without touching the host: the mounts are dropped anyway.
	ctr := &pod.Spec.Containers[0]
	cfg, _, err := podconfig.Container(pod, ctr, podconfig.ContainerInput{Node: node, ImageRef: bn.imageRef, PodIPs: podIPs})
	if err != nil {
		return nil, 0, err
	}
	return containerFor(cfg, p), 0, nil
}

// callTimes are the runtime calls (and host work) of one pod, as the
// harness timed them, indexed by the call* constants; zero for a call the
// rung does not make.
type callTimes [len(callNames)]time.Duration

const (
	callRun = iota
	callSandboxStatus
	callFiles
	callCreate
	callStart
	callListPod
)

var callNames = [...]string{"RunPodSandbox", "PodSandboxStatus", "host files", "CreateContainer", "StartContainer", "List"}

// medianCalls is each call's median over a round's pods.
func medianCalls(ts []callTimes) callTimes {
	var m callTimes
	for c := range m {
		ds := make([]time.Duration, len(ts))
		for i, t := range ts {
			ds[i] = t[c]
		}
		m[c] = median(ds)
	}
	return m
}

// rawRound starts n pods with raw CRI calls in parallel goroutines, as rung
// r says, until each serves; then removes them.
func (bn *bench) rawRound(m netMode, n int, label string, p piece) (roundResult, error) {
	if err := bn.waitClean(); err != nil {
		return roundResult{}, err
	}
	specs := bn.podSpecs(m, n, label)
	node := bn.rawNodeInfo()
	type rawPod struct {
		pod *corev1.Pod
		sb  *runtimeapi.PodSandboxConfig
	}
	pods := make([]rawPod, n)
	for i, ps := range specs {
		pod, err := ps.parse(bn.image, rawNode)
		if err != nil {
			return roundResult{}, err
		}
		exact, err := podconfig.Sandbox(pod, node, 0)
		if err != nil {
			return roundResult{}, err
		}
		pods[i] = rawPod{pod: pod, sb: sandboxFor(exact, p)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), roundTimeout)
	defer cancel()
	runs := make([]podRun, n)
	var wg sync.WaitGroup
	w := bn.watch(m, specs)
	a0, c0 := cpuMs(bn.agent.pid()), cpuMs(bn.env.Containerd.Pid())
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i] = bn.rawPod(ctx, m, node, pods[i].pod, pods[i].sb, p)
		}()
	}
	got, werr := w.wait(roundTimeout)
	res := roundResult{n: n, stalls: w.stalls.Load(), probes: w.probes.Load(), slow: w.slow,
		agentCPU: cpuMs(bn.agent.pid()) - a0, containerdCPU: cpuMs(bn.env.Containerd.Pid()) - c0}
	wg.Wait()
	ids := make([]string, n)
	errs := []error{werr}
	var times []callTimes
	var runDone, startDone []time.Time
	for i, r := range runs {
		ids[i] = r.id
		errs = append(errs, r.err)
		times, runDone, startDone = append(times, r.calls), append(runDone, r.runDone), append(startDone, r.startDone)
	}
	if werr == nil {
		res.total = latest(got).Sub(t0)
		res.phases = []time.Duration{maxSince(t0, runDone), maxSince(t0, startDone)}
		res.calls = medianCalls(times)
	}
	errs = append(errs, bn.removeSandboxes(ids))
	for _, rp := range pods {
		_ = os.RemoveAll(volumes.PodDir(node.DataDir, string(rp.pod.UID)))
		_ = os.RemoveAll(rp.sb.LogDirectory)
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("raw round %s: %w", label, err)
	}
	return res, nil
}

// podRun is what happened to one pod of a raw round.
type podRun struct {
	id                 string // its sandbox, once created
	calls              callTimes
	runDone, startDone time.Time
	err                error
}

// rawPod makes one pod's calls.
func (bn *bench) rawPod(ctx context.Context, m netMode, node podconfig.Node, pod *corev1.Pod, sb *runtimeapi.PodSandboxConfig, p piece) (r podRun) {
	fail := func(err error) podRun {
		r.err = err
		return r
	}
	if err := os.MkdirAll(sb.LogDirectory, 0o755); err != nil {
		return fail(err)
	}
	t := time.Now()
	rs, err := bn.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sb})
	if err != nil {
		return fail(fmt.Errorf("RunPodSandbox: %w", err))
	}
	r.id, r.runDone = rs.PodSandboxId, time.Now()
	r.calls[callRun] = r.runDone.Sub(t)
	var ips []string
	if m == hostNet {
		ips = []string{node.HostIP}
	} else if p&callStatus != 0 {
		t = time.Now()
		st, err := bn.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: r.id})
		if err != nil {
			return fail(fmt.Errorf("PodSandboxStatus: %w", err))
		}
		r.calls[callSandboxStatus] = time.Since(t)
		if ip := st.GetStatus().GetNetwork().GetIp(); ip != "" {
			ips = []string{ip}
		}
	}
	cfg, files, err := bn.rawContainer(pod, node, p, ips)
	if err != nil {
		return fail(err)
	}
	r.calls[callFiles] = files
	t = time.Now()
	c, err := bn.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: r.id, Config: cfg, SandboxConfig: sb})
	if err != nil {
		return fail(fmt.Errorf("CreateContainer: %w", err))
	}
	r.calls[callCreate] = time.Since(t)
	t = time.Now()
	if _, err := bn.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		return fail(fmt.Errorf("StartContainer: %w", err))
	}
	r.startDone = time.Now()
	r.calls[callStart] = r.startDone.Sub(t)
	if p&callList != 0 {
		t = time.Now()
		if _, err := bn.observer.List(ctx, string(pod.UID)); err != nil {
			return fail(fmt.Errorf("List: %w", err))
		}
		r.calls[callListPod] = time.Since(t)
	}
	return r
}

// removeSandboxes stops and removes sandboxes (and so their containers), all at once.
func (bn *bench) removeSandboxes(ids []string) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, id := range ids {
		if id == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := bn.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
			if err == nil {
				_, err = bn.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("removing sandbox %s: %w", id, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// newReplay returns Ballast's executor for node rawNode, on its own
// connection to the runtime, kept for the whole run as the agent keeps its
// own (its image cache included).
func (bn *bench) newReplay() {
	rt, err := cri.Dial(bn.env.Endpoint)
	if err != nil {
		bn.b.Fatal(err)
	}
	bn.b.Cleanup(func() { _ = rt.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bn.observer = cri.NewObserver(rt, rawNode)
	bn.exec = executor.New(rt, bn.observer, events.New(rawNode, 1000, log), executor.Options{
		NodeName: rawNode, DataDir: bn.rawDir, HostIP: hostinfo.DefaultIPv4(), Log: log,
	})
}

// execRound runs n pods' first start through Ballast's executor, each on
// its own goroutine as the agent's workers do: the job the planner gives a
// new pod (create the sandbox, start the container).
func (bn *bench) execRound(m netMode, n int, label string) (roundResult, error) {
	if err := bn.waitClean(); err != nil {
		return roundResult{}, err
	}
	specs := bn.podSpecs(m, n, label)
	jobs := make([]planner.Job, n)
	for i, ps := range specs {
		pod, err := ps.parse(bn.image, rawNode)
		if err != nil {
			return roundResult{}, err
		}
		uid := string(pod.UID)
		jobs[i] = planner.Job{UID: uid, Desired: pod, Runtime: &podruntime.Pod{UID: uid, Name: pod.Name, Namespace: pod.Namespace},
			Plan: podplan.Plan{CreateSandbox: true, Start: []podplan.Start{{Name: pod.Spec.Containers[0].Name}}}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), roundTimeout)
	defer cancel()
	done := make([]planner.Done, n)
	var wg sync.WaitGroup
	w := bn.watch(m, specs)
	a0, c0 := cpuMs(bn.agent.pid()), cpuMs(bn.env.Containerd.Pid())
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done[i] = bn.exec.Run(ctx, jobs[i])
		}()
	}
	got, werr := w.wait(roundTimeout)
	res := roundResult{n: n, stalls: w.stalls.Load(), probes: w.probes.Load(), slow: w.slow,
		agentCPU: cpuMs(bn.agent.pid()) - a0, containerdCPU: cpuMs(bn.env.Containerd.Pid()) - c0}
	wg.Wait()
	if werr == nil {
		res.total = latest(got).Sub(t0)
	}
	var ids []string
	errs := []error{werr}
	for _, d := range done {
		errs = append(errs, d.Err)
		if d.Runtime != nil {
			for _, sb := range d.Runtime.Sandboxes {
				ids = append(ids, sb.ID)
			}
		}
	}
	errs = append(errs, bn.removeSandboxes(ids))
	for _, j := range jobs {
		_ = os.RemoveAll(volumes.PodDir(bn.rawDir, j.UID))
		_ = os.RemoveAll(logs.PodLogDir(bn.rawDir, j.Desired.Namespace, j.Desired.Name, j.UID))
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("executor round %s: %w", label, err)
	}
	return res, nil
}

// podSpecs names a round's pods and, on the host network, gives each a free port.
func (bn *bench) podSpecs(m netMode, n int, label string) []podSpec {
	specs := make([]podSpec, n)
	for i := range specs {
		specs[i].name = fmt.Sprintf("%s-p%02d", label, i)
		if m == hostNet {
			specs[i].port = freePort(bn.b)
		}
	}
	return specs
}

// round runs one round of rung r.
func (bn *bench) round(m netMode, n int, r rung, label string) (res roundResult, err error) {
	switch {
	case r.node:
		res, err = bn.ballastRound(m, n, label)
	case r.exec:
		res, err = bn.execRound(m, n, label)
	default:
		res, err = bn.rawRound(m, n, label, r.pieces)
	}
	res.busyBefore = bn.busyBefore
	return res, err
}

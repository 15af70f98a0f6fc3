// Package executor carries out the planner's jobs against the container
// runtime: it stops and removes pods and containers (running preStop hooks
// within the grace period), creates sandboxes and starts containers (making
// their images present as their pull policy says, preparing their volumes on
// the host, building their CRI configs with internal/podconfig, running
// postStart hooks), and reads the pod back. It holds no pod state and decides
// nothing: what failed goes back to the planner, which decides what it means.
// It records events of what happened (Pulling, Pulled, Created, Started,
// Failed, failed hooks); the planner records those of its decisions.
package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"golang.org/x/sync/singleflight"

	"github.com/ballast-dev/ballast/internal/cri"
	"github.com/ballast-dev/ballast/internal/events"
	"github.com/ballast-dev/ballast/internal/logs"
	"github.com/ballast-dev/ballast/internal/planner"
	"github.com/ballast-dev/ballast/internal/podconfig"
	"github.com/ballast-dev/ballast/internal/podplan"
	"github.com/ballast-dev/ballast/internal/podruntime"
	"github.com/ballast-dev/ballast/internal/registryauth"
)

// Runtime is what the executor asks of the container runtime.
type Runtime interface {
	RunPodSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig) (string, error)
	StopPodSandbox(ctx context.Context, id string) error
	RemovePodSandbox(ctx context.Context, id string) error
	PodSandboxStatus(ctx context.Context, id string) (*runtimeapi.PodSandboxStatus, error)
	CreateContainer(ctx context.Context, sandboxID string, cfg *runtimeapi.ContainerConfig, sandbox *runtimeapi.PodSandboxConfig) (string, error)
	StartContainer(ctx context.Context, id string) error
	StopContainer(ctx context.Context, id string, timeout int64) error
	RemoveContainer(ctx context.Context, id string) error
	ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (cri.ExecResult, error)
	ImageStatus(ctx context.Context, image string) (*runtimeapi.Image, error)
	PullImage(ctx context.Context, image string, auth *runtimeapi.AuthConfig, sandbox *runtimeapi.PodSandboxConfig) (string, error)
}

var _ Runtime = (*cri.Runtime)(nil)

// Reader reads one pod back from the runtime after a job.
type Reader interface {
	List(ctx context.Context, uid string) (map[string]*podruntime.Pod, error)
	// Forget drops what is cached of a removed container.
	Forget(id string)
}

var _ Reader = (*cri.Observer)(nil)

// Recorder records events.
type Recorder interface {
	Event(ref corev1.ObjectReference, eventType, reason, message string)
}

var _ Recorder = (*events.Recorder)(nil)

// Options configure an Executor.
type Options struct {
	NodeName, DataDir, HostIP string
	// ResolvConf is the node's resolver config given to pods (default /etc/resolv.conf).
	ResolvConf string
	Pulls      registryauth.Config
	Log        *slog.Logger
	Now        func() time.Time
}

// Executor carries out jobs. Run may be called from several goroutines, for
// different pods.
type Executor struct {
	rt        Runtime
	reader    Reader
	events    Recorder
	opts      Options
	log       *slog.Logger
	pulls     singleflight.Group
	dnsWarned sync.Once // the warning that static pods have no cluster DNS

	mu sync.Mutex
	// present caches image references known to be in the runtime (image ->
	// image ID), so a container start under IfNotPresent asks nothing. An
	// entry is dropped when creating a container from it fails.
	present map[string]string
}

// New returns an executor.
func New(rt Runtime, reader Reader, events Recorder, opts Options) *Executor {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Executor{rt: rt, reader: reader, events: events, opts: opts, log: opts.Log}
}

// Exec runs a command in a container and returns its output (stdout then
// stderr) and exit code: for exec probes and exec hooks.
func (e *Executor) Exec(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (string, int32, error) {
	r, err := e.rt.ExecSync(ctx, containerID, cmd, timeout)
	if err != nil {
		return "", 0, errors.New(cri.Message(err))
	}
	return string(r.Stdout) + string(r.Stderr), r.ExitCode, nil
}

func (e *Executor) knownImage(image string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id, ok := e.present[image]
	return id, ok
}

// ForgetImages drops what is known of images (new ones were imported: a
// tag may now name another image).
func (e *Executor) ForgetImages() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.present = nil
}

func (e *Executor) setImage(image, id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.present == nil {
		e.present = map[string]string{}
	}
	if id == "" {
		delete(e.present, image)
		return
	}
	e.present[image] = id
}

// Run carries out one pod's plan and reads the pod again.
func (e *Executor) Run(ctx context.Context, j planner.Job) planner.Done {
	log := e.log.With("pod", j.Runtime.Namespace+"/"+j.Runtime.Name, "uid", j.UID)
	if j.Desired != nil {
		log = e.log.With("pod", j.Desired.Namespace+"/"+j.Desired.Name, "uid", j.UID)
	}
	res := planner.Done{UID: j.UID}
	fail := func(container string, step planner.Step, err error) {
		if res.Failed == nil {
			res.Failed = map[string]planner.Failure{}
		}
		res.Failed[container] = planner.Failure{Step: step, Message: cri.Message(err)}
	}
	var errs []error
	p := j.Plan

	for _, k := range p.KillContainers {
		if err := e.stopContainer(ctx, j.Desired, k.Name, k.ID, k.GraceSeconds, sandboxIP(j.Runtime)); err != nil {
			errs = append(errs, err)
		}
	}
	if p.KillPod {
		if err := e.killPod(ctx, j); err != nil {
			errs = append(errs, err)
		} else {
			log.Info("pod stopped")
		}
	}
	if p.RemovePod && len(errs) == 0 {
		for _, sb := range j.Runtime.Sandboxes {
			if err := e.rt.RemovePodSandbox(ctx, sb.ID); err != nil && !cri.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
		for _, c := range j.Runtime.Containers {
			if err := e.rt.RemoveContainer(ctx, c.ID); err != nil && !cri.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
		if len(errs) == 0 {
			_ = logs.RemovePodLogs(e.opts.DataDir, j.Runtime.Namespace, j.Runtime.Name, j.UID)
			_ = e.removePodDir(j.UID)
		}
	}

	if len(p.Refresh) > 0 && j.Desired != nil && len(errs) == 0 {
		if err := e.refreshVolumes(j); err != nil {
			errs = append(errs, err)
		} else {
			log.Info("volume files updated", "volumes", p.Refresh)
		}
	}

	var sandboxID string
	var sandboxCfg *runtimeapi.PodSandboxConfig
	if j.Desired != nil && len(errs) == 0 && (p.CreateSandbox || len(p.Start) > 0) {
		attempt := uint32(0)
		if sb := j.Runtime.LatestSandbox(); sb != nil {
			attempt = sb.Attempt
			if p.CreateSandbox {
				attempt++
			} else {
				sandboxID = sb.ID
			}
		}
		cfg, err := e.sandboxConfig(j.Desired, attempt)
		sandboxCfg = cfg
		switch {
		case err != nil:
			errs = append(errs, err)
		case p.CreateSandbox:
			t0 := time.Now()
			if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
				errs = append(errs, err)
			} else if sandboxID, err = e.rt.RunPodSandbox(ctx, cfg); err != nil {
				if strings.Contains(err.Error(), "sandbox image") {
					err = fmt.Errorf("%w; the runtime's sandbox (pause) image is missing: put its image tarball in the images directory, or configure a sandbox image the runtime can pull (--pod-infra-image for Ballast's own containerd)", err)
				}
				errs = append(errs, err)
				for _, s := range p.Start {
					fail(s.Name, planner.StepSandbox, err)
				}
			} else {
				log.Info("pod sandbox started", "sandbox", short(sandboxID), "took", time.Since(t0).Round(time.Millisecond))
			}
		}
	}
	if sandboxID != "" && len(errs) == 0 {
		for _, s := range p.Start {
			if err := ctx.Err(); err != nil {
				// Cancelled (the pod is no longer wanted): start nothing more.
				errs = append(errs, err)
				break
			}
			ctr := podconfig.FindContainer(j.Desired, s.Name)
			if ctr == nil {
				continue
			}
			ref, pf, err := e.ensureImage(ctx, j.Desired, ctr, sandboxCfg)
			if pf != nil {
				if res.Pulls == nil {
					res.Pulls = map[string]*podplan.PullFailure{}
				}
				res.Pulls[ctr.Image] = pf
				continue
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			res.PullsOK = append(res.PullsOK, ctr.Image)
			if step, err := e.startContainer(ctx, j.Desired, ctr, s, ref, sandboxID, sandboxCfg, sandboxIP(j.Runtime), j.Configs); err != nil {
				fail(ctr.Name, step, err)
				errs = append(errs, err)
			} else {
				log.Info("container started", "container", ctr.Name, "restartCount", s.RestartCount)
			}
		}
	}
	if p.StopSandbox {
		for _, sb := range j.Runtime.Sandboxes {
			if !sb.Ready {
				continue
			}
			if err := e.rt.StopPodSandbox(ctx, sb.ID); err != nil && !cri.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("stopping the sandbox of a finished pod: %w", err))
			} else {
				log.Info("pod finished; sandbox stopped")
			}
		}
	}
	for _, id := range p.RemoveContainers {
		if err := e.rt.RemoveContainer(ctx, id); err != nil && !cri.IsNotFound(err) {
			log.Warn("removing an old container", "err", err)
		}
		e.reader.Forget(id)
	}
	for _, id := range p.RemoveSandboxes {
		if err := e.rt.RemovePodSandbox(ctx, id); err != nil && !cri.IsNotFound(err) {
			log.Warn("removing an old sandbox", "err", err)
		}
	}

	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pods, err := e.reader.List(lctx, j.UID)
	if err != nil {
		errs = append(errs, err)
	} else {
		res.Runtime = pods[j.UID]
		if res.Runtime == nil {
			res.Runtime = &podruntime.Pod{UID: j.UID, Name: j.Runtime.Name, Namespace: j.Runtime.Namespace}
		}
	}
	res.Err = errors.Join(errs...)
	return res
}

// stopsPerPod bounds the container stops of one pod in flight at once.
const stopsPerPod = 16

// killPod stops every running container at once, each after its preStop
// hook and within the pod's grace period, then the sandboxes.
func (e *Executor) killPod(ctx context.Context, j planner.Job) error {
	pod := j.Desired
	if pod == nil {
		pod = j.Runtime.Recorded()
	}
	grace := podGrace(pod)
	ip := sandboxIP(j.Runtime)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	// All at once, as the kubelet, but at most stopsPerPod calls in flight:
	// a pod of a thousand containers must not swamp the runtime.
	sem := make(chan struct{}, stopsPerPod)
	for _, c := range j.Runtime.Containers {
		if c.State != podruntime.StateRunning {
			continue
		}
		wg.Add(1)
		go func(c podruntime.Container) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := e.stopContainer(ctx, pod, c.Name, c.ID, grace, ip); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, sb := range j.Runtime.Sandboxes {
		if !sb.Ready {
			continue
		}
		if err := e.rt.StopPodSandbox(ctx, sb.ID); err != nil && !cri.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// stopContainer runs the container's preStop hook, then stops it with what
// is left of the grace period (SIGTERM, then SIGKILL), as the kubelet.
func (e *Executor) stopContainer(ctx context.Context, pod *corev1.Pod, name, id string, grace int64, podIP string) error {
	start := time.Now()
	if ctr := podconfig.FindContainer(pod, name); ctr != nil && ctr.Lifecycle != nil && ctr.Lifecycle.PreStop != nil && grace > 0 {
		hctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second)
		if err := e.runHook(hctx, ctr.Lifecycle.PreStop, ctr, id, podconfig.Host(pod, podIP, e.opts.HostIP)); err != nil {
			e.events.Event(events.PodRef(pod, name), corev1.EventTypeWarning, "FailedPreStopHook", err.Error())
		}
		cancel()
		grace = max(grace-int64(time.Since(start)/time.Second), 2) // the kubelet leaves at least 2 s
	}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second+30*time.Second)
	defer cancel()
	if err := e.rt.StopContainer(cctx, id, grace); err != nil && !cri.IsNotFound(err) {
		return fmt.Errorf("container %s: %w", name, err)
	}
	return nil
}

func sandboxIP(rt *podruntime.Pod) string {
	if sb := rt.LatestSandbox(); sb != nil {
		return sb.IP
	}
	return ""
}

// ensureImage makes the container's image present as its pull policy says. A
// pull failure comes back as a PullFailure (for back-off), other errors as err.
func (e *Executor) ensureImage(ctx context.Context, pod *corev1.Pod, ctr *corev1.Container, sb *runtimeapi.PodSandboxConfig) (string, *podplan.PullFailure, error) {
	ref := events.PodRef(pod, ctr.Name)
	now := e.opts.Now()
	if id, ok := e.knownImage(ctr.Image); ok && ctr.ImagePullPolicy != corev1.PullAlways {
		e.events.Event(ref, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", ctr.Image))
		return id, nil, nil
	}
	img, err := e.rt.ImageStatus(ctx, ctr.Image)
	if err != nil {
		return "", nil, err
	}
	if img != nil {
		e.setImage(ctr.Image, img.Id)
	}
	switch ctr.ImagePullPolicy {
	case corev1.PullNever:
		if img == nil {
			msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", ctr.Image)
			e.events.Event(ref, corev1.EventTypeWarning, "ErrImageNeverPull", msg)
			return "", &podplan.PullFailure{Image: ctr.Image, At: now, Reason: "ErrImageNeverPull", Err: msg}, nil
		}
		return img.Id, nil, nil
	case corev1.PullIfNotPresent:
		if img != nil {
			e.events.Event(ref, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", ctr.Image))
			return img.Id, nil, nil
		}
	}
	e.events.Event(ref, corev1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", ctr.Image))
	t0 := time.Now()
	v, err, _ := e.pulls.Do(ctr.Image, func() (any, error) {
		e.log.Info("pulling image", "image", ctr.Image)
		t0 := time.Now()
		ref, err := e.pullImage(ctx, ctr.Image, sb)
		if err != nil {
			return "", err
		}
		e.log.Info("image pulled", "image", ctr.Image, "ref", ref, "took", time.Since(t0).Round(time.Millisecond))
		return ref, nil
	})
	if err != nil {
		if cri.IsUnavailable(err) {
			return "", nil, err
		}
		msg := fmt.Sprintf("failed to pull image %q: %s", ctr.Image, cri.Message(err))
		e.events.Event(ref, corev1.EventTypeWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %s", ctr.Image, cri.Message(err)))
		e.events.Event(ref, corev1.EventTypeWarning, "Failed", "Error: ErrImagePull")
		return "", &podplan.PullFailure{Image: ctr.Image, At: now, Reason: "ErrImagePull", Err: msg}, nil
	}
	e.events.Event(ref, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Successfully pulled image %q in %s", ctr.Image, time.Since(t0).Round(time.Millisecond)))
	e.setImage(ctr.Image, v.(string))
	return v.(string), nil, nil
}

// startContainer creates and starts one container and runs its postStart
// hook. When it fails, it says at which step.
func (e *Executor) startContainer(ctx context.Context, pod *corev1.Pod, ctr *corev1.Container, s podplan.Start, imageRef, sandboxID string, sbCfg *runtimeapi.PodSandboxConfig, podIP string, configs podconfig.Configs) (planner.Step, error) {
	ref := events.PodRef(pod, ctr.Name)
	cfg, err := e.containerConfig(ctx, pod, ctr, s, imageRef, sandboxID, configs)
	if err != nil {
		e.events.Event(ref, corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
		return planner.StepConfig, err
	}
	id, err := e.rt.CreateContainer(ctx, sandboxID, cfg, sbCfg)
	if err != nil {
		e.setImage(ctr.Image, "") // perhaps the image went away: look again next time
		e.events.Event(ref, corev1.EventTypeWarning, "Failed", "Error: "+cri.Message(err))
		return planner.StepCreate, err
	}
	e.events.Event(ref, corev1.EventTypeNormal, "Created", "Created container "+ctr.Name)
	if err := e.rt.StartContainer(ctx, id); err != nil {
		e.events.Event(ref, corev1.EventTypeWarning, "Failed", "Error: "+cri.Message(err))
		return planner.StepStart, err
	}
	e.events.Event(ref, corev1.EventTypeNormal, "Started", "Started container "+ctr.Name)
	if ctr.Lifecycle != nil && ctr.Lifecycle.PostStart != nil {
		// As the kubelet: the container counts as started only after its
		// postStart hook; a failed hook kills it (and the restart policy applies).
		if err := e.runHook(ctx, ctr.Lifecycle.PostStart, ctr, id, podconfig.Host(pod, podIP, e.opts.HostIP)); err != nil {
			e.events.Event(ref, corev1.EventTypeWarning, "FailedPostStartHook", err.Error())
			if kerr := e.stopContainer(ctx, pod, ctr.Name, id, podGrace(pod), podIP); kerr != nil {
				return planner.StepPostStart, fmt.Errorf("%v; then stopping the container: %w", err, kerr)
			}
		}
	}
	return 0, nil
}

// podGrace is the pod's termination grace period in seconds.
func podGrace(pod *corev1.Pod) int64 {
	if pod != nil && pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return 30
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

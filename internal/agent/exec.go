package agent

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/ballast-dev/ballast/internal/podruntime"
)

// executor carries out plans with CRI calls. It holds no pod state.
type executor struct {
	a         *Agent
	pulls     singleflight.Group
	dnsWarned sync.Once // the warning that static pods have no cluster DNS

	mu sync.Mutex
	// present caches image references known to be in the runtime (image ->
	// image ID), so a container start under IfNotPresent asks nothing. An
	// entry is dropped when creating a container from it fails.
	present map[string]string
}

func (e *executor) knownImage(image string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id, ok := e.present[image]
	return id, ok
}

// forgetImages drops what is known of images (new ones were imported: a
// tag may now name another image).
func (e *executor) forgetImages() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.present = nil
}

func (e *executor) setImage(image, id string) {
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

// run carries out one pod's plan and reads the pod again.
func (e *executor) run(ctx context.Context, j planner.Job) planner.Done {
	a := e.a
	log := a.log.With("pod", j.Runtime.Namespace+"/"+j.Runtime.Name, "uid", j.UID)
	if j.Desired != nil {
		log = a.log.With("pod", j.Desired.Namespace+"/"+j.Desired.Name, "uid", j.UID)
	}
	res := planner.Done{UID: j.UID}
	var errs []error
	p := j.Plan
	rs := a.opts.Runtime.RS

	for _, k := range p.KillContainers {
		pod := j.Desired
		if err := e.stopContainer(ctx, pod, k.Name, k.ID, k.GraceSeconds, sandboxIP(j.Runtime)); err != nil {
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
			if _, err := rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.ID}); err != nil && !cri.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("removing sandbox %s: %w", sb.ID, err))
			}
		}
		for _, c := range j.Runtime.Containers {
			if _, err := rs.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.ID}); err != nil && !cri.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("removing container %s: %w", c.ID, err))
			}
		}
		if len(errs) == 0 {
			_ = logs.RemovePodLogs(a.opts.DataDir, j.Runtime.Namespace, j.Runtime.Name, j.UID)
			_ = e.removePodDir(j.UID)
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
		if err != nil {
			errs = append(errs, err)
		}
		sandboxCfg = cfg
		if err == nil && p.CreateSandbox {
			if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
				errs = append(errs, err)
			} else {
				t0 := time.Now()
				r, err := rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
				if err != nil {
					msg := cri.Message(err)
					if strings.Contains(msg, "sandbox image") {
						msg += "; the runtime's sandbox (pause) image is missing: put its image tarball in the images directory, or configure a sandbox image the runtime can pull (--pod-infra-image for Ballast's own containerd)"
					}
					err = errors.New(msg)
					errs = append(errs, fmt.Errorf("creating pod sandbox: %s", cri.Message(err)))
					res.Waiting = map[string]podruntime.Waiting{}
					for _, s := range p.Start {
						res.Waiting[s.Name] = podruntime.Waiting{Reason: "ContainerCreating", Message: "creating the pod sandbox failed: " + cri.Message(err)}
					}
				} else {
					sandboxID = r.PodSandboxId
					log.Info("pod sandbox started", "sandbox", short(sandboxID), "took", time.Since(t0).Round(time.Millisecond))
				}
			}
		}
	}
	if sandboxID != "" && len(errs) == 0 {
		for _, s := range p.Start {
			ctr := podconfig.FindContainer(j.Desired, s.Name)
			if ctr == nil {
				continue
			}
			ref, pf, err := e.ensureImage(ctx, j.Desired, ctr, sandboxCfg)
			if pf != nil {
				if res.Pulls == nil {
					res.Pulls = map[string]*planner.PullFailure{}
				}
				res.Pulls[ctr.Image] = pf
				continue
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			res.PullsOK = append(res.PullsOK, ctr.Image)
			if w, err := e.startContainer(ctx, j.Desired, ctr, s, ref, sandboxID, sandboxCfg, sandboxIP(j.Runtime)); err != nil {
				if res.Waiting == nil {
					res.Waiting = map[string]podruntime.Waiting{}
				}
				res.Waiting[ctr.Name] = w
				errs = append(errs, err)
			} else {
				log.Info("container started", "container", ctr.Name, "restartCount", s.RestartCount)
			}
		}
	}
	if p.StopSandbox {
		for _, sb := range j.Runtime.Sandboxes {
			if sb.Ready {
				if _, err := rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.ID}); err != nil && !cri.IsNotFound(err) {
					errs = append(errs, fmt.Errorf("stopping sandbox of finished pod: %w", err))
				} else {
					log.Info("pod finished; sandbox stopped")
				}
			}
		}
	}
	for _, id := range p.RemoveContainers {
		if _, err := rs.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil && !cri.IsNotFound(err) {
			log.Warn("removing old container", "container", short(id), "err", err)
		}
		a.obs.Forget(id)
	}
	for _, id := range p.RemoveSandboxes {
		if _, err := rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil && !cri.IsNotFound(err) {
			log.Warn("removing old sandbox", "sandbox", short(id), "err", err)
		}
	}

	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pods, err := a.obs.List(lctx, j.UID)
	if err != nil {
		errs = append(errs, err)
	} else {
		res.Runtime = pods[j.UID]
		if res.Runtime == nil {
			res.Runtime = &podruntime.Pod{UID: j.UID, Name: j.Runtime.Name, Namespace: j.Runtime.Namespace}
			if j.Desired != nil {
				res.Runtime.Name, res.Runtime.Namespace = j.Desired.Name, j.Desired.Namespace
			}
		}
	}
	res.Err = errors.Join(errs...)
	return res
}

// killPod stops every running container at once, each after its preStop
// hook and within the pod's grace period, then the sandboxes.
func (e *executor) killPod(ctx context.Context, j planner.Job) error {
	rs := e.a.opts.Runtime.RS
	pod := j.Desired
	if pod == nil {
		pod = j.Runtime.Recorded()
	}
	grace := int64(30)
	if pod != nil && pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	ip := sandboxIP(j.Runtime)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, c := range j.Runtime.Containers {
		if c.State != podruntime.StateRunning {
			continue
		}
		wg.Add(1)
		go func(c podruntime.Container) {
			defer wg.Done()
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
		if _, err := rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.ID}); err != nil && !cri.IsNotFound(err) {
			return fmt.Errorf("stopping sandbox %s: %w", short(sb.ID), err)
		}
	}
	return nil
}

// stopContainer runs the container's preStop hook, then stops it with what
// is left of the grace period (SIGTERM, then SIGKILL), as the kubelet.
func (e *executor) stopContainer(ctx context.Context, pod *corev1.Pod, name, id string, grace int64, podIP string) error {
	start := time.Now()
	if ctr := podconfig.FindContainer(pod, name); ctr != nil && ctr.Lifecycle != nil && ctr.Lifecycle.PreStop != nil && grace > 0 {
		hctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second)
		if err := e.a.runHook(hctx, ctr.Lifecycle.PreStop, ctr, id, podconfig.Host(pod, podIP, e.a.opts.HostIP)); err != nil {
			e.a.events.Event(events.PodRef(pod, name), corev1.EventTypeWarning, "FailedPreStopHook", err.Error())
		}
		cancel()
		grace = max(grace-int64(time.Since(start)/time.Second), 2) // the kubelet leaves at least 2 s
	}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second+30*time.Second)
	defer cancel()
	if _, err := e.a.opts.Runtime.RS.StopContainer(cctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: grace}); err != nil && !cri.IsNotFound(err) {
		return fmt.Errorf("stopping container %s (%s): %w", name, short(id), err)
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
func (e *executor) ensureImage(ctx context.Context, pod *corev1.Pod, ctr *corev1.Container, sb *runtimeapi.PodSandboxConfig) (string, *planner.PullFailure, error) {
	ref := events.PodRef(pod, ctr.Name)
	is := e.a.opts.Runtime.IS
	now := e.a.opts.Now()
	if id, ok := e.knownImage(ctr.Image); ok && ctr.ImagePullPolicy != corev1.PullAlways {
		e.a.events.Event(ref, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", ctr.Image))
		return id, nil, nil
	}
	st, err := is.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ctr.Image}})
	if err != nil {
		return "", nil, fmt.Errorf("image %q status: %w", ctr.Image, err)
	}
	present := st.Image != nil
	if present {
		e.setImage(ctr.Image, st.Image.Id)
	}
	switch ctr.ImagePullPolicy {
	case corev1.PullNever:
		if !present {
			e.a.events.Event(ref, corev1.EventTypeWarning, "ErrImageNeverPull", fmt.Sprintf("Container image %q is not present with pull policy of Never", ctr.Image))
			return "", &planner.PullFailure{Image: ctr.Image, At: now, Reason: "ErrImageNeverPull",
				Err: fmt.Sprintf("Container image %q is not present with pull policy of Never", ctr.Image)}, nil
		}
		return st.Image.Id, nil, nil
	case corev1.PullIfNotPresent:
		if present {
			e.a.events.Event(ref, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", ctr.Image))
			return st.Image.Id, nil, nil
		}
	}
	e.a.events.Event(ref, corev1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", ctr.Image))
	t0 := time.Now()
	v, err, _ := e.pulls.Do(ctr.Image, func() (any, error) {
		e.a.log.Info("pulling image", "image", ctr.Image)
		t0 := time.Now()
		r, err := e.pullImage(ctx, ctr.Image, sb)
		if err != nil {
			return "", err
		}
		e.a.log.Info("image pulled", "image", ctr.Image, "ref", r.ImageRef, "took", time.Since(t0).Round(time.Millisecond))
		return r.ImageRef, nil
	})
	if err != nil {
		if cri.IsUnavailable(err) {
			return "", nil, fmt.Errorf("pulling image %q: %w", ctr.Image, err)
		}
		msg := fmt.Sprintf("failed to pull image %q: %s", ctr.Image, cri.Message(err))
		e.a.events.Event(ref, corev1.EventTypeWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %s", ctr.Image, cri.Message(err)))
		e.a.events.Event(ref, corev1.EventTypeWarning, "Failed", "Error: ErrImagePull")
		return "", &planner.PullFailure{Image: ctr.Image, At: now, Reason: "ErrImagePull", Err: msg}, nil
	}
	e.a.events.Event(ref, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Successfully pulled image %q in %s", ctr.Image, time.Since(t0).Round(time.Millisecond)))
	e.setImage(ctr.Image, v.(string))
	return v.(string), nil, nil
}

func (e *executor) startContainer(ctx context.Context, pod *corev1.Pod, ctr *corev1.Container, s planner.Start, imageRef, sandboxID string, sbCfg *runtimeapi.PodSandboxConfig, podIP string) (podruntime.Waiting, error) {
	ref := events.PodRef(pod, ctr.Name)
	rs := e.a.opts.Runtime.RS
	cfg, err := e.containerConfig(ctx, pod, ctr, s, imageRef, sandboxID)
	if err != nil {
		return podruntime.Waiting{Reason: "CreateContainerConfigError", Message: err.Error()}, err
	}
	cr, err := rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sandboxID, Config: cfg, SandboxConfig: sbCfg})
	if err != nil {
		e.setImage(ctr.Image, "") // perhaps the image went away: look again next time
		e.a.events.Event(ref, corev1.EventTypeWarning, "Failed", "Error: "+cri.Message(err))
		return podruntime.Waiting{Reason: "CreateContainerError", Message: cri.Message(err)}, fmt.Errorf("creating container %q: %s", ctr.Name, cri.Message(err))
	}
	e.a.events.Event(ref, corev1.EventTypeNormal, "Created", "Created container "+ctr.Name)
	if _, err := rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		e.a.events.Event(ref, corev1.EventTypeWarning, "Failed", "Error: "+cri.Message(err))
		return podruntime.Waiting{Reason: "RunContainerError", Message: cri.Message(err)}, fmt.Errorf("starting container %q: %s", ctr.Name, cri.Message(err))
	}
	e.a.events.Event(ref, corev1.EventTypeNormal, "Started", "Started container "+ctr.Name)
	if ctr.Lifecycle != nil && ctr.Lifecycle.PostStart != nil {
		// As the kubelet: the container counts as started only after its
		// postStart hook; a failed hook kills it (and the restart policy applies).
		if err := e.a.runHook(ctx, ctr.Lifecycle.PostStart, ctr, cr.ContainerId, podconfig.Host(pod, podIP, e.a.opts.HostIP)); err != nil {
			msg := err.Error()
			e.a.events.Event(ref, corev1.EventTypeWarning, "FailedPostStartHook", msg)
			if kerr := e.stopContainer(ctx, pod, ctr.Name, cr.ContainerId, podGrace(pod), podIP); kerr != nil {
				return podruntime.Waiting{Reason: "PostStartHookError", Message: msg}, kerr
			}
			return podruntime.Waiting{}, nil
		}
	}
	return podruntime.Waiting{}, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// podGrace is the pod's termination grace period in seconds.
func podGrace(pod *corev1.Pod) int64 {
	if pod != nil && pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return 30
}

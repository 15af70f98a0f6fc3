package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/events"
	"github.com/ballast-dev/ballast/internal/hostinfo"
	"github.com/ballast-dev/ballast/internal/planner"
	"github.com/ballast-dev/ballast/internal/podconfig"
	"github.com/ballast-dev/ballast/internal/podplan"
	"github.com/ballast-dev/ballast/internal/registryauth"
	"github.com/ballast-dev/ballast/internal/volumes"
)

// The executor's side of pod configuration: it reads what the translation
// needs from the host and the runtime (resolv.conf, the node's capacity, the
// pod's IPs, the image's user), prepares the pod's volumes, and builds the
// CRI configs with internal/podconfig.

// node is what the translation needs of the node, read now: the resolver
// config and capacity may change while the agent runs.
func (e *Executor) node() podconfig.Node {
	o := e.opts
	path := o.ResolvConf
	if path == "" {
		path = "/etc/resolv.conf"
	}
	var resolv *runtimeapi.DNSConfig
	if data, err := os.ReadFile(path); err == nil {
		resolv = podconfig.ParseResolvConf(data)
	}
	return podconfig.Node{Name: o.NodeName, DataDir: o.DataDir, HostIP: o.HostIP, ResolvConf: resolv, Capacity: hostinfo.Capacity()}
}

// sandboxConfig builds the pod's sandbox config (the planner has admitted
// the pod).
func (e *Executor) sandboxConfig(pod *corev1.Pod, attempt uint32) (*runtimeapi.PodSandboxConfig, error) {
	if podconfig.NoClusterDNS(pod) {
		e.dnsWarned.Do(func() {
			e.log.Warn("pod has dnsPolicy ClusterFirst but there is no cluster DNS for static pods; falling back to the node's resolver (dnsPolicy Default)",
				"pod", pod.Namespace+"/"+pod.Name)
		})
	}
	return podconfig.Sandbox(pod, e.node(), attempt)
}

// containerConfig prepares what one container needs on the host (volumes,
// hosts file, termination message file) and builds its config, in the pod's
// sandbox sandboxID. Errors are the container's CreateContainerConfigError.
func (e *Executor) containerConfig(ctx context.Context, pod *corev1.Pod, ctr *corev1.Container, s podplan.Start, imageRef, sandboxID string, configs podconfig.Configs) (*runtimeapi.ContainerConfig, error) {
	node := e.node()
	in := podconfig.ContainerInput{Node: node, ImageRef: imageRef, RestartCount: s.RestartCount, Backoff: s.Backoff, BackoffSince: s.BackoffSince, Configs: configs}
	if podconfig.NeedsImageUser(pod, ctr) {
		u, err := e.imageUser(ctx, ctr, imageRef)
		if err != nil {
			return nil, err
		}
		in.ImageUser = u
	}
	in.PodIPs = e.podIPs(ctx, pod, sandboxID)
	vols, err := podconfig.Volumes(pod, node, configs)
	if err != nil {
		return nil, err
	}
	dir := volumes.PodDir(e.opts.DataDir, string(pod.UID))
	if in.Volumes, err = volumes.Prepare(dir, vols); err != nil {
		return nil, err
	}
	if !podconfig.MountsEtcHosts(ctr) {
		if in.HostsFile, err = volumes.WriteHostsFile(dir, pod, in.PodIPs); err != nil {
			return nil, fmt.Errorf("writing the pod's /etc/hosts: %w", err)
		}
	}
	if ctr.TerminationMessagePath != "" {
		if in.TerminationMessageFile, err = volumes.TerminationMessageFile(dir, ctr.Name, s.RestartCount); err != nil {
			return nil, err
		}
	}
	cfg, subPaths, err := podconfig.Container(pod, ctr, in)
	if err != nil {
		return nil, err
	}
	if skipped := podconfig.InvalidEnvFromKeys(pod, ctr, configs); len(skipped) > 0 {
		e.events.Event(events.PodRef(pod, ctr.Name), corev1.EventTypeWarning, "InvalidEnvironmentVariableNames",
			fmt.Sprintf("Keys [%s] were skipped since they are considered invalid environment variable names; rename them, or set envFrom's prefix", strings.Join(skipped, ", ")))
	}
	if err := volumes.ResolveSubPaths(ctr.Name, cfg.Mounts, subPaths); err != nil {
		return nil, err
	}
	return cfg, nil
}

// refreshVolumes rewrites the files of the job's Refresh volumes in place,
// from the job's config objects: running containers see the new data at
// once (atomically: the "..data" swap), and nothing restarts.
func (e *Executor) refreshVolumes(j planner.Job) error {
	vols, err := podconfig.Volumes(j.Desired, e.node(), j.Configs)
	if err != nil {
		return err
	}
	var todo []podconfig.Volume
	for _, v := range vols {
		if slices.Contains(j.Plan.Refresh, v.Name) && v.Files != nil {
			todo = append(todo, v)
		}
	}
	_, err = volumes.Prepare(volumes.PodDir(e.opts.DataDir, j.UID), todo)
	return err
}

// imageUser asks the runtime which user the image runs as (nil: the
// runtime does not know the image).
func (e *Executor) imageUser(ctx context.Context, ctr *corev1.Container, imageRef string) (*podconfig.ImageUser, error) {
	img, err := e.rt.ImageStatus(ctx, imageRef)
	if err != nil {
		return nil, fmt.Errorf("cannot read the user of image %q to verify runAsNonRoot: %w", ctr.Image, err)
	}
	if img == nil {
		return nil, nil
	}
	u := &podconfig.ImageUser{Username: img.Username}
	if img.Uid != nil {
		uid := img.Uid.Value
		u.UID = &uid
	}
	return u, nil
}

// podIPs returns the pod's IPs: the host's for a host-network pod, else the
// sandbox's, as the runtime reports them once the sandbox runs.
func (e *Executor) podIPs(ctx context.Context, pod *corev1.Pod, sandboxID string) []string {
	if pod.Spec.HostNetwork {
		if e.opts.HostIP == "" {
			return nil
		}
		return []string{e.opts.HostIP}
	}
	if sandboxID == "" {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := e.rt.PodSandboxStatus(cctx, sandboxID)
	if err != nil || st.GetNetwork() == nil {
		return nil
	}
	n := st.Network
	var ips []string
	if n.Ip != "" {
		ips = append(ips, n.Ip)
	}
	for _, ip := range n.AdditionalIps {
		if ip.GetIp() != "" {
			ips = append(ips, ip.Ip)
		}
	}
	return ips
}

// removePodDir removes the pod's volumes from the host.
func (e *Executor) removePodDir(uid string) error {
	err := volumes.RemovePodDir(volumes.PodDir(e.opts.DataDir, uid))
	if err != nil {
		e.log.Warn("cannot remove the pod's volumes", "uid", uid, "err", err)
	}
	return err
}

// pullImage pulls image with the credentials of its registry, within the
// pull timeout. A timeout comes back as a plain error saying so (not as the
// runtime being unreachable).
func (e *Executor) pullImage(ctx context.Context, image string, sb *runtimeapi.PodSandboxConfig) (string, error) {
	pc := e.opts.Pulls
	auth, src, err := registryauth.Lookup(pc.Files(e.opts.DataDir), image)
	if err != nil {
		e.log.Warn("cannot read registry credentials; pulling without", "err", err)
	} else if auth != nil {
		e.log.Debug("pulling with registry credentials", "image", image, "file", src, "registry", auth.ServerAddress)
	}
	timeout := pc.PullTimeout()
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ref, err := e.rt.PullImage(pctx, image, auth, sb)
	if err != nil && ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) {
		return "", fmt.Errorf("pull timed out after %s (--image-pull-timeout): the registry did not deliver the image in time", timeout)
	}
	return ref, err
}

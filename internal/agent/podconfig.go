package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/cri"
	"github.com/ballast-dev/ballast/internal/logs"
	"github.com/ballast-dev/ballast/internal/planner"
	"github.com/ballast-dev/ballast/internal/podstatus"
)

// sandboxConfig builds the CRI sandbox config of a pod, as the kubelet would.
func (a *Agent) sandboxConfig(pod *corev1.Pod, attempt uint32) (*runtimeapi.PodSandboxConfig, error) {
	raw, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{}
	for k, v := range pod.Labels {
		labels[k] = v
	}
	labels[cri.LabelPodName] = pod.Name
	labels[cri.LabelPodNamespace] = pod.Namespace
	labels[cri.LabelPodUID] = string(pod.UID)
	labels[cri.LabelNode] = a.opts.NodeName
	annotations := map[string]string{}
	for k, v := range pod.Annotations {
		annotations[k] = v
	}
	annotations[cri.AnnotationPod] = string(raw)

	if reason, msg := podstatus.Admit(pod); reason != "" {
		return nil, fmt.Errorf("%s: %s (nodeSelector %v, node labels %v)", reason, msg, pod.Spec.NodeSelector, podstatus.NodeLabels(a.opts.NodeName))
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt},
		Hostname:     podHostname(pod),
		LogDirectory: logs.PodLogDir(a.opts.DataDir, pod.Namespace, pod.Name, string(pod.UID)),
		Labels:       labels,
		Annotations:  annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: a.sandboxSecurityContext(pod),
			Sysctls:         podSysctls(pod),
		},
		DnsConfig:    a.podDNS(pod),
		PortMappings: portMappings(pod),
	}
	if pod.Spec.HostNetwork {
		cfg.Hostname = ""
	}
	return cfg, nil
}

func podHostname(pod *corev1.Pod) string {
	h := pod.Name
	if pod.Spec.Hostname != "" {
		h = pod.Spec.Hostname
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

// hostDNS reads a resolv.conf into a CRI DNS config.
func hostDNS(path string) *runtimeapi.DNSConfig {
	if path == "" {
		path = "/etc/resolv.conf"
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	cfg := &runtimeapi.DNSConfig{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], ";") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			cfg.Servers = append(cfg.Servers, fields[1])
		case "search":
			cfg.Searches = fields[1:]
		case "options":
			cfg.Options = fields[1:]
		}
	}
	return cfg
}

// containerConfig builds the CRI config of one container of a pod, in the
// pod's sandbox sandboxID. Errors are the container's CreateContainerConfigError.
func (a *Agent) containerConfig(ctx context.Context, pod *corev1.Pod, ctr *corev1.Container, s planner.Start, imageRef, sandboxID string) (*runtimeapi.ContainerConfig, error) {
	if err := a.verifyRunAsNonRoot(ctx, pod, ctr, imageRef); err != nil {
		return nil, err
	}
	podIPs := a.podIPs(ctx, pod, sandboxID)
	env := map[string]string{}
	var envs []*runtimeapi.KeyValue
	for _, e := range ctr.Env {
		v := expand(e.Value, env)
		if e.ValueFrom != nil {
			var err error
			if v, err = a.envValueFrom(pod, ctr, e.ValueFrom, podIPs); err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		}
		env[e.Name] = v
		envs = append(envs, &runtimeapi.KeyValue{Key: e.Name, Value: []byte(v)})
	}
	var command, args []string
	for _, c := range ctr.Command {
		command = append(command, expand(c, env))
	}
	for _, c := range ctr.Args {
		args = append(args, expand(c, env))
	}
	mounts, err := a.mounts(pod, ctr, s.RestartCount, env, podIPs)
	if err != nil {
		return nil, err
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: ctr.Name, Attempt: uint32(s.RestartCount)},
		Image:      &runtimeapi.ImageSpec{Image: imageRef, UserSpecifiedImage: ctr.Image},
		Command:    command,
		Args:       args,
		WorkingDir: ctr.WorkingDir,
		Envs:       envs,
		Mounts:     mounts,
		LogPath:    logs.ContainerLogPath(ctr.Name, s.RestartCount),
		Stdin:      ctr.Stdin,
		StdinOnce:  ctr.StdinOnce,
		Tty:        ctr.TTY,
		Labels: map[string]string{
			cri.LabelPodName:       pod.Name,
			cri.LabelPodNamespace:  pod.Namespace,
			cri.LabelPodUID:        string(pod.UID),
			cri.LabelContainerName: ctr.Name,
			cri.LabelNode:          a.opts.NodeName,
		},
		Annotations: map[string]string{
			cri.AnnotationRestartCount:  strconv.Itoa(s.RestartCount),
			cri.AnnotationTermMsgPath:   ctr.TerminationMessagePath,
			cri.AnnotationTermMsgPolicy: string(ctr.TerminationMessagePolicy),
		},
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       a.containerResources(pod, ctr),
			SecurityContext: a.containerSecurityContext(pod, ctr),
		},
	}
	if s.Backoff > 0 {
		cfg.Annotations[cri.AnnotationBackoff] = s.Backoff.String()
		cfg.Annotations[cri.AnnotationBackoffSince] = s.BackoffSince.UTC().Format(time.RFC3339Nano)
	}
	return cfg, nil
}

// podDir is where a pod's volumes and termination-message files live.
func (a *Agent) podDir(uid string) string {
	return filepath.Join(a.opts.DataDir, "volumes", uid)
}

func (a *Agent) mounts(pod *corev1.Pod, ctr *corev1.Container, restart int, env map[string]string, podIPs []string) ([]*runtimeapi.Mount, error) {
	hostDirs, err := a.setUpVolumes(pod)
	if err != nil {
		return nil, err
	}
	privileged := ctr.SecurityContext != nil && ctr.SecurityContext.Privileged != nil && *ctr.SecurityContext.Privileged
	var out []*runtimeapi.Mount
	mountsEtcHosts := false
	for _, vm := range ctr.VolumeMounts {
		vd, ok := hostDirs[vm.Name]
		if !ok {
			return nil, fmt.Errorf("container %q mounts volume %q, which the pod does not define", ctr.Name, vm.Name)
		}
		host := vd.path
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expand(vm.SubPathExpr, env)
			if filepath.IsAbs(sub) || hasDotDot(sub) {
				return nil, fmt.Errorf("volume mount %s: subPathExpr %q expands to %q, which must be a relative path without '..'", vm.MountPath, vm.SubPathExpr, sub)
			}
		}
		if sub != "" {
			if host, err = subPath(vd.path, sub); err != nil {
				return nil, fmt.Errorf("failed to prepare subPath for volumeMount %q of container %q: %w", vm.Name, ctr.Name, err)
			}
		}
		m := &runtimeapi.Mount{ContainerPath: vm.MountPath, HostPath: host, Readonly: vm.ReadOnly || vd.readOnly}
		if vm.MountPropagation != nil {
			switch *vm.MountPropagation {
			case corev1.MountPropagationHostToContainer:
				m.Propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
			case corev1.MountPropagationBidirectional:
				if !privileged {
					return nil, fmt.Errorf("volume mount %s: Bidirectional mount propagation is available only to privileged containers", vm.MountPath)
				}
				m.Propagation = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
			}
		}
		if filepath.Clean(vm.MountPath) == "/etc/hosts" {
			mountsEtcHosts = true
		}
		out = append(out, m)
	}
	if !mountsEtcHosts {
		hosts, err := a.writeHostsFile(pod, podIPs)
		if err != nil {
			return nil, fmt.Errorf("writing the pod's /etc/hosts: %w", err)
		}
		out = append(out, &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: hosts})
	}
	if p := ctr.TerminationMessagePath; p != "" {
		dir := filepath.Join(a.podDir(string(pod.UID)), "containers", ctr.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		f := filepath.Join(dir, strconv.Itoa(restart))
		if err := os.WriteFile(f, nil, 0o666); err != nil {
			return nil, err
		}
		_ = os.Chmod(f, 0o666)
		out = append(out, &runtimeapi.Mount{ContainerPath: p, HostPath: f})
	}
	return out, nil
}

// expand replaces $(VAR) references by earlier variables, as Kubernetes does:
// $$ escapes a dollar, and unknown references are left as written.
func expand(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

package agent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DNS and /etc/hosts, as the kubelet gives them to pods.

// ClusterDomain is the domain of a pod's FQDN (<hostname>.<subdomain>.<ns>.svc.<domain>)
// in its /etc/hosts: kubeadm's default. Static pods have no cluster DNS, so
// the name resolves only inside the pod, through its hosts file.
const ClusterDomain = "cluster.local"

var noClusterDNSWarned sync.Once

// podDNS is the pod's resolver configuration. There is no cluster DNS for
// static pods: ClusterFirst falls back to the node's resolv.conf (Default),
// as the kubelet does without --cluster-dns; None uses dnsConfig only; the
// pod's dnsConfig is merged in as the kubelet merges it.
func (a *Agent) podDNS(pod *corev1.Pod) *runtimeapi.DNSConfig {
	var cfg *runtimeapi.DNSConfig
	switch pod.Spec.DNSPolicy {
	case corev1.DNSNone:
		cfg = &runtimeapi.DNSConfig{}
	case corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet, "":
		if !(pod.Spec.HostNetwork && pod.Spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet) {
			noClusterDNSWarned.Do(func() {
				a.log.Warn("pod has dnsPolicy ClusterFirst but there is no cluster DNS for static pods; falling back to the node's resolver (dnsPolicy Default)",
					"pod", pod.Namespace+"/"+pod.Name)
			})
		}
		fallthrough
	default:
		cfg = hostDNS(a.opts.ResolvConf)
		if cfg == nil {
			cfg = &runtimeapi.DNSConfig{}
		}
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		cfg.Servers = omitDuplicates(append(cfg.Servers, dc.Nameservers...))
		cfg.Searches = omitDuplicates(append(cfg.Searches, dc.Searches...))
		cfg.Options = mergeDNSOptions(cfg.Options, dc.Options)
	}
	if len(cfg.Servers) > 3 {
		cfg.Servers = cfg.Servers[:3]
	}
	if len(cfg.Searches) > 32 {
		cfg.Searches = cfg.Searches[:32]
	}
	if len(cfg.Servers) == 0 && len(cfg.Searches) == 0 && len(cfg.Options) == 0 {
		return nil
	}
	return cfg
}

func omitDuplicates(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// mergeDNSOptions: the pod's options override the node's of the same name.
func mergeDNSOptions(existing []string, opts []corev1.PodDNSConfigOption) []string {
	var order []string
	vals := map[string]string{}
	set := func(name, val string) {
		if _, ok := vals[name]; !ok {
			order = append(order, name)
		}
		vals[name] = val
	}
	for _, o := range existing {
		name, val, _ := strings.Cut(o, ":")
		set(name, val)
	}
	for _, o := range opts {
		v := ""
		if o.Value != nil {
			v = *o.Value
		}
		set(o.Name, v)
	}
	out := make([]string, 0, len(order))
	for _, n := range order {
		if vals[n] == "" {
			out = append(out, n)
		} else {
			out = append(out, n+":"+vals[n])
		}
	}
	return out
}

// podHostDomain is the pod's hostname and domain (empty without subdomain).
func podHostDomain(pod *corev1.Pod) (string, string) {
	h := podHostname(pod)
	if pod.Spec.Subdomain == "" {
		return h, ""
	}
	return h, fmt.Sprintf("%s.%s.svc.%s", pod.Spec.Subdomain, pod.Namespace, ClusterDomain)
}

// writeHostsFile writes the pod's managed /etc/hosts under its directory, as
// the kubelet's: localhost entries, the pod's own name(s) on its IPs, then
// hostAliases; a host-network pod gets the node's hosts file plus hostAliases.
func (a *Agent) writeHostsFile(pod *corev1.Pod, podIPs []string) (string, error) {
	var b bytes.Buffer
	if pod.Spec.HostNetwork {
		b.WriteString("# Kubernetes-managed hosts file (host network).\n")
		node, err := os.ReadFile("/etc/hosts")
		if err != nil && !os.IsNotExist(err) {
			return "", err
		}
		b.Write(node)
		if len(node) > 0 && node[len(node)-1] != '\n' {
			b.WriteByte('\n')
		}
	} else {
		b.WriteString("# Kubernetes-managed hosts file.\n")
		b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
		host, domain := podHostDomain(pod)
		for _, ip := range podIPs {
			if domain != "" {
				fmt.Fprintf(&b, "%s\t%s.%s\t%s\n", ip, host, domain, host)
			} else {
				fmt.Fprintf(&b, "%s\t%s\n", ip, host)
			}
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, ha := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", ha.IP, strings.Join(ha.Hostnames, "\t"))
		}
	}
	dir := a.podDir(string(pod.UID))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, "etc-hosts")
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, b.Bytes()) {
		return p, nil
	}
	// Written in place: running containers bind-mount this very inode.
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		return "", err
	}
	return p, nil
}

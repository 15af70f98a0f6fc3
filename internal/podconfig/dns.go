package podconfig

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DNS, the hostname and /etc/hosts, as the kubelet gives them to pods.

// ClusterDomain is the domain of a pod's FQDN (<hostname>.<subdomain>.<ns>.svc.<domain>)
// in its /etc/hosts: kubeadm's default. Static pods have no cluster DNS, so
// the name resolves only inside the pod, through its hosts file.
const ClusterDomain = "cluster.local"

// Limits of a resolv.conf, as the kubelet applies them.
const (
	maxDNSServers  = 3
	maxDNSSearches = 32
)

// ParseResolvConf reads a resolv.conf's nameserver, search and options lines.
func ParseResolvConf(data []byte) *runtimeapi.DNSConfig {
	cfg := &runtimeapi.DNSConfig{}
	sc := bufio.NewScanner(bytes.NewReader(data))
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

// NoClusterDNS says whether the pod asks for the cluster's DNS, which static
// pods do not have: it gets the node's resolver instead (worth a warning).
func NoClusterDNS(pod *corev1.Pod) bool {
	switch pod.Spec.DNSPolicy {
	case corev1.DNSClusterFirst, "":
		return !pod.Spec.HostNetwork
	case corev1.DNSClusterFirstWithHostNet:
		return true
	}
	return false
}

// DNS is the pod's resolver configuration from the node's (nil: unknown).
// There is no cluster DNS for static pods: ClusterFirst falls back to the
// node's resolv.conf (Default), as the kubelet does without --cluster-dns;
// None uses dnsConfig only; the pod's dnsConfig is merged in as the kubelet
// merges it. Nil when the pod gets no resolver settings at all.
func DNS(pod *corev1.Pod, node *runtimeapi.DNSConfig) *runtimeapi.DNSConfig {
	cfg := &runtimeapi.DNSConfig{}
	if pod.Spec.DNSPolicy != corev1.DNSNone && node != nil {
		cfg.Servers = append([]string(nil), node.Servers...)
		cfg.Searches = append([]string(nil), node.Searches...)
		cfg.Options = append([]string(nil), node.Options...)
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		cfg.Servers = omitDuplicates(append(cfg.Servers, dc.Nameservers...))
		cfg.Searches = omitDuplicates(append(cfg.Searches, dc.Searches...))
		cfg.Options = mergeDNSOptions(cfg.Options, dc.Options)
	}
	if len(cfg.Servers) > maxDNSServers {
		cfg.Servers = cfg.Servers[:maxDNSServers]
	}
	if len(cfg.Searches) > maxDNSSearches {
		cfg.Searches = cfg.Searches[:maxDNSSearches]
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

// Hostname is the pod's hostname: spec.hostname, else its name, cut to 63
// characters.
func Hostname(pod *corev1.Pod) string {
	h := pod.Name
	if pod.Spec.Hostname != "" {
		h = pod.Spec.Hostname
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

// hostDomain is the pod's hostname and domain (empty without subdomain).
func hostDomain(pod *corev1.Pod) (string, string) {
	h := Hostname(pod)
	if pod.Spec.Subdomain == "" {
		return h, ""
	}
	return h, fmt.Sprintf("%s.%s.svc.%s", pod.Spec.Subdomain, pod.Namespace, ClusterDomain)
}

// HostsFile is the content of the pod's managed /etc/hosts, as the
// kubelet's: localhost entries, the pod's own name(s) on its IPs, then
// hostAliases; a host-network pod gets the node's hosts file (nodeHosts)
// plus hostAliases.
func HostsFile(pod *corev1.Pod, podIPs []string, nodeHosts []byte) []byte {
	var b bytes.Buffer
	if pod.Spec.HostNetwork {
		b.WriteString("# Kubernetes-managed hosts file (host network).\n")
		b.Write(nodeHosts)
		if len(nodeHosts) > 0 && nodeHosts[len(nodeHosts)-1] != '\n' {
			b.WriteByte('\n')
		}
	} else {
		b.WriteString("# Kubernetes-managed hosts file.\n")
		b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
		host, domain := hostDomain(pod)
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
	return b.Bytes()
}

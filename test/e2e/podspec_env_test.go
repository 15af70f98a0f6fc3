package e2e

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// env from the downward API, hostname/subdomain/hostAliases in /etc/hosts,
// DNS policy and config, hostPort, termination messages, priority and
// nodeSelector admission.
func TestPodSpecEnvNetwork(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	hostPort := freePort(t)
	n.write("envnet.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: envnet
  labels: {app: envnet}
  annotations: {owner: ops}
spec:
  hostname: web
  subdomain: front
  hostAliases: [{ip: 10.1.2.3, hostnames: [db.local, db]}]
  dnsPolicy: None
  dnsConfig:
    nameservers: [10.9.9.9]
    searches: [corp.example]
    options: [{name: ndots, value: "3"}]
  priorityClassName: system-node-critical
  containers:
  - name: app
    image: %s
    ports: [{containerPort: 8080, hostPort: %d}]
    resources:
      requests: {cpu: 250m, memory: 32Mi}
      limits: {memory: 64Mi}
    env:
    - {name: NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
    - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
    - {name: OWNER, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['owner']"}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: POD_IPS, valueFrom: {fieldRef: {fieldPath: status.podIPs}}}
    - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
    - {name: MEM_LIMIT_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: CPU_REQ_M, valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: 1m}}}
    - {name: CPU_LIMIT, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}
    - {name: GREETING, value: "$(NAME) on $(NODE)"}
`, env.HelloImage(), hostPort))
	p := n.waitPod("envnet", "running", running)
	envOut := podGet(t, p, 0, "/env")
	want := map[string]string{
		"NAME": p.Name, "NS": "default", "UID": string(p.UID), "APP": "envnet", "OWNER": "ops", "NODE": n.name,
		"POD_IP": p.Status.PodIP, "POD_IPS": p.Status.PodIP, "HOST_IP": p.Status.HostIP,
		"MEM_LIMIT_MI": "64", "CPU_REQ_M": "250", "CPU_LIMIT": fmt.Sprint(runtime.NumCPU()),
		"GREETING": p.Name + " on " + n.name,
	}
	for k, v := range want {
		if !strings.Contains(envOut, "\n"+k+"="+v+"\n") && !strings.HasPrefix(envOut, k+"="+v+"\n") {
			t.Errorf("env %s: want %q in\n%s", k, v, envOut)
		}
	}
	if p.Status.PodIP == "" || p.Status.HostIP == "" {
		t.Errorf("pod IP %q host IP %q", p.Status.PodIP, p.Status.HostIP)
	}
	// Hostname, FQDN and aliases in the managed /etc/hosts.
	if got := podGet(t, p, 0, "/file?path=/etc/hostname"); strings.TrimSpace(got) != "web" {
		t.Errorf("/etc/hostname %q", got)
	}
	hosts := podGet(t, p, 0, "/file?path=/etc/hosts")
	for _, line := range []string{p.Status.PodIP + "\tweb.front.default.svc.cluster.local\tweb\n", "10.1.2.3\tdb.local\tdb\n", "127.0.0.1\tlocalhost\n"} {
		if !strings.Contains(hosts, line) {
			t.Errorf("/etc/hosts lacks %q:\n%s", line, hosts)
		}
	}
	resolv := podGet(t, p, 0, "/file?path=/etc/resolv.conf")
	for _, line := range []string{"nameserver 10.9.9.9", "search corp.example", "options ndots:3"} {
		if !strings.Contains(resolv, line) {
			t.Errorf("/etc/resolv.conf lacks %q:\n%s", line, resolv)
		}
	}
	if strings.Count(resolv, "nameserver") != 1 {
		t.Errorf("dnsPolicy None: only dnsConfig's nameserver expected:\n%s", resolv)
	}
	if p.Spec.Priority == nil || *p.Spec.Priority != 2000001000 {
		t.Errorf("priority %v, want 2000001000 from system-node-critical", p.Spec.Priority)
	}
	// hostPort through the CNI portmap plugin, from the host.
	n.eventually("hostPort answers on 127.0.0.1", 30*time.Second, func() error {
		b, err := get(fmt.Sprintf("http://127.0.0.1:%d/", hostPort))
		if err != nil {
			return err
		}
		if !strings.Contains(b, "hello from") {
			return fmt.Errorf("%q", b)
		}
		return nil
	})

	// Termination messages: the file, and the log's tail on error.
	n.write("msg.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: msg}
spec:
  restartPolicy: Never
  containers:
  - name: file
    image: %[1]s
    env: [{name: WRITE_FILE, value: /dev/termination-log=all done}, {name: EXIT_AFTER, value: 300ms}, {name: EXIT_CODE, value: "0"}, {name: PORT, value: "8081"}]
  - name: custom
    image: %[1]s
    terminationMessagePath: /tmp/why
    env: [{name: WRITE_FILE, value: /tmp/why=custom reason}, {name: EXIT_AFTER, value: 300ms}, {name: EXIT_CODE, value: "2"}, {name: PORT, value: "8082"}]
  - name: logs
    image: %[1]s
    terminationMessagePolicy: FallbackToLogsOnError
    env: [{name: LOG_LINES, value: "100"}, {name: EXIT_AFTER, value: 300ms}, {name: EXIT_CODE, value: "3"}, {name: PORT, value: "8083"}]
`, env.HelloImage()))
	mp := n.waitPod("msg", "all exited", func(p *corev1.Pod) error {
		for _, c := range p.Status.ContainerStatuses {
			if c.State.Terminated == nil {
				return fmt.Errorf("%s", reasons(p))
			}
		}
		return nil
	})
	msgs := map[string]string{}
	for _, c := range mp.Status.ContainerStatuses {
		msgs[c.Name] = c.State.Terminated.Message
	}
	if msgs["file"] != "all done" || msgs["custom"] != "custom reason" {
		t.Errorf("termination messages: %q", msgs)
	}
	lm := msgs["logs"]
	if !strings.Contains(lm, "line 100\n") || strings.Contains(lm, "line 20\n") || len(lm) > 2048 {
		t.Errorf("FallbackToLogsOnError message (%d bytes): %q", len(lm), lm)
	}

	// A nodeSelector this node does not match: rejected, as kubelet admission.
	n.write("elsewhere.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: elsewhere}
spec:
  nodeSelector: {kubernetes.io/os: linux, disktype: ssd}
  containers: [{name: app, image: %s}]
`, env.HelloImage()))
	n.waitPod("elsewhere", "rejected", func(p *corev1.Pod) error {
		if p.Status.Phase != corev1.PodFailed || p.Status.Reason != "NodeAffinity" || p.Status.Message != "Pod was rejected: Predicate NodeAffinity failed" {
			return fmt.Errorf("phase %s reason %q message %q", p.Status.Phase, p.Status.Reason, p.Status.Message)
		}
		return nil
	})
	n.write("here.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: here}
spec:
  nodeSelector: {kubernetes.io/os: linux, kubernetes.io/hostname: %s}
  containers: [{name: app, image: %s}]
`, n.name, env.HelloImage()))
	n.waitPod("here", "running", running)
	if e := n.pod("elsewhere"); e != nil && len(e.Status.ContainerStatuses) > 0 && e.Status.ContainerStatuses[0].State.Running != nil {
		t.Errorf("rejected pod runs")
	}
}

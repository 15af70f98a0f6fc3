package manifest

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// What a user reads for each pod-spec value that is refused or invalid.
func TestPodSpecRefusedAndInvalid(t *testing.T) {
	const img = "    image: nginx:1.27\n"
	const vol = "    hostPath:\n      path: /srv/www\n"
	const port = "      name: http\n"
	tests := []struct {
		name, replace, with, want string
	}{
		{"configMapKeyRef without key", "    ports:\n", "    env:\n    - name: A\n      valueFrom: {configMapKeyRef: {name: x}}\n    ports:\n",
			"web.yaml:13: spec.containers[0].env[0].valueFrom.configMapKeyRef.key: Required value: name the key"},
		{"secretKeyRef bad key", "    ports:\n", "    env:\n    - name: A\n      valueFrom: {secretKeyRef: {name: x, key: \"a/b\"}}\n    ports:\n",
			`spec.containers[0].env[0].valueFrom.secretKeyRef.key: Invalid value: "a/b": a valid config key must consist of alphanumeric characters`},
		{"secretKeyRef and fieldRef", "    ports:\n", "    env:\n    - name: A\n      valueFrom: {secretKeyRef: {name: x, key: k}, fieldRef: {fieldPath: metadata.name}}\n    ports:\n",
			"spec.containers[0].env[0].valueFrom: Invalid value: \"\": may not have more than one field specified at a time"},
		{"envFrom with both", "    ports:\n", "    envFrom: [{configMapRef: {name: x}, secretRef: {name: y}}]\n    ports:\n",
			"spec.containers[0].envFrom[0]: Invalid value: \"\": may not have more than one field specified at a time"},
		{"envFrom bad prefix", "    ports:\n", "    envFrom: [{prefix: \"1=\", configMapRef: {name: x}}]\n    ports:\n",
			`spec.containers[0].envFrom[0].prefix: Invalid value: "1="`},
		{"envFrom bad name", "    ports:\n", "    envFrom: [{configMapRef: {name: X_Y}}]\n    ports:\n",
			`spec.containers[0].envFrom[0].configMapRef.name: Invalid value: "X_Y"`},
		{"fieldRef unknown", "    ports:\n", "    env:\n    - name: A\n      valueFrom: {fieldRef: {fieldPath: spec.hostname}}\n    ports:\n",
			`spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: "spec.hostname": supported values: "metadata.annotations['<KEY>']", "metadata.labels['<KEY>']", "metadata.name"`},
		{"fieldRef whole labels in env", "    ports:\n", "    env:\n    - name: A\n      valueFrom: {fieldRef: {fieldPath: metadata.labels}}\n    ports:\n",
			`env[0].valueFrom.fieldRef.fieldPath: Unsupported value: "metadata.labels"`},
		{"value and valueFrom", "    ports:\n", "    env:\n    - name: A\n      value: x\n      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n    ports:\n",
			"env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty"},
		{"resourceFieldRef bad resource", "    ports:\n", "    env:\n    - name: A\n      valueFrom: {resourceFieldRef: {resource: limits.gpu}}\n    ports:\n",
			`env[0].valueFrom.resourceFieldRef.resource: Unsupported value: "limits.gpu": supported values: "limits.cpu"`},
		{"resourceFieldRef bad divisor", "    ports:\n", "    env:\n    - name: A\n      valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 2}}\n    ports:\n",
			`env[0].valueFrom.resourceFieldRef.divisor: Invalid value: "2": only divisor's values 1m and 1 are supported with the cpu resource`},
		{"resourceFieldRef unknown container", "    ports:\n", "    env:\n    - name: A\n      valueFrom: {resourceFieldRef: {resource: limits.cpu, containerName: db}}\n    ports:\n",
			`env[0].valueFrom.resourceFieldRef.containerName: Not found: "db": no container of the pod has this name`},
		{"resources claims", img, img + "    resources: {claims: [{name: gpu}]}\n", "spec.containers[0].resources.claims: Forbidden: static pods cannot use ResourceClaims"},
		{"resources unknown", img, img + "    resources: {limits: {nvidia.com/gpu: 1}}\n", `spec.containers[0].resources.limits[nvidia.com/gpu]: Unsupported value: "nvidia.com/gpu": Ballast runs the resources "cpu", "memory" and "ephemeral-storage"; remove it`},
		{"requests over limits", img, img + "    resources: {limits: {cpu: 500m}, requests: {cpu: 1}}\n", `spec.containers[0].resources.requests[cpu]: Invalid value: "1": must be less than or equal to cpu limit of 500m`},
		{"negative request", img, img + "    resources: {requests: {memory: -1Mi}}\n", `resources.requests[memory]: Invalid value: "-1Mi": must be greater than or equal to 0`},
		{"ephemeral-storage limit", img, img + "    resources: {limits: {ephemeral-storage: 1Gi}}\n", `resources.limits[ephemeral-storage]: Forbidden: the kubelet enforces an ephemeral-storage limit by evicting the pod`},
		{"seLinuxOptions", img, img + "    securityContext: {seLinuxOptions: {level: s0}}\n", "spec.containers[0].securityContext.seLinuxOptions: Forbidden: not supported by this version of Ballast yet"},
		{"appArmorProfile", "spec:\n", "spec:\n  securityContext: {appArmorProfile: {type: RuntimeDefault}}\n", "spec.securityContext.appArmorProfile: Forbidden: not supported by this version of Ballast yet"},
		{"runAsUser negative", img, img + "    securityContext: {runAsUser: -1}\n", "spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive"},
		{"privileged without escalation", img, img + "    securityContext: {privileged: true, allowPrivilegeEscalation: false}\n",
			"spec.containers[0].securityContext: Invalid value: cannot set `allowPrivilegeEscalation` to false and `privileged` to true"},
		{"SYS_ADMIN without escalation", img, img + "    securityContext: {capabilities: {add: [SYS_ADMIN]}, allowPrivilegeEscalation: false}\n",
			"cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"},
		{"procMount Unmasked", img, img + "    securityContext: {procMount: Unmasked}\n", "spec.containers[0].securityContext.procMount: Forbidden: `hostUsers` must be false to use `Unmasked`"},
		{"seccomp Localhost without profile", "spec:\n", "spec:\n  securityContext: {seccompProfile: {type: Localhost}}\n", "spec.securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost"},
		{"seccomp profile with RuntimeDefault", img, img + "    securityContext: {seccompProfile: {type: RuntimeDefault, localhostProfile: x.json}}\n", `seccompProfile.localhostProfile: Invalid value: "x.json": can only be set when seccomp type is Localhost`},
		{"seccomp bad type", img, img + "    securityContext: {seccompProfile: {type: Strict}}\n", `seccompProfile.type: Unsupported value: "Strict": supported values: "Localhost", "RuntimeDefault", "Unconfined"`},
		{"seccomp profile escapes", img, img + "    securityContext: {seccompProfile: {type: Localhost, localhostProfile: ../x.json}}\n", `localhostProfile: Invalid value: "../x.json": must not contain '..'`},
		{"sysctl not namespaced", "spec:\n", "spec:\n  securityContext: {sysctls: [{name: vm.swappiness, value: \"1\"}]}\n",
			`spec.securityContext.sysctls[0].name: Forbidden: "vm.swappiness" is not a namespaced sysctl: setting it for a pod would change the whole node; set it on the node (/etc/sysctl.d) instead`},
		{"sysctl with host network", "spec:\n", "spec:\n  hostNetwork: true\n  securityContext: {sysctls: [{name: net.ipv4.ip_forward, value: \"1\"}]}\n",
			`sysctls[0].name: Forbidden: "net.ipv4.ip_forward" not allowed with host net enabled`},
		{"sysctl bad name", "spec:\n", "spec:\n  securityContext: {sysctls: [{name: Kernel.SHM, value: \"1\"}]}\n", `sysctls[0].name: Invalid value: "Kernel.SHM": must have at most 253 characters`},
		{"fsGroupChangePolicy", "spec:\n", "spec:\n  securityContext: {fsGroupChangePolicy: Sometimes}\n", `spec.securityContext.fsGroupChangePolicy: Unsupported value: "Sometimes": supported values: "Always", "OnRootMismatch"`},
		{"supplementalGroupsPolicy", "spec:\n", "spec:\n  securityContext: {supplementalGroupsPolicy: Strict}\n", "spec.securityContext.supplementalGroupsPolicy: Forbidden: not supported"},
		{"hostPath type", "      path: /srv/www\n", "      path: /srv/www\n      type: Folder\n",
			`spec.volumes[0].hostPath.type: Unsupported value: "Folder": supported values: "", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket"`},
		{"emptyDir medium", vol, "    emptyDir: {medium: HugePages}\n", `spec.volumes[0].emptyDir.medium: Unsupported value: "HugePages": supported values: "", "Memory"`},
		{"emptyDir sizeLimit on disk", vol, "    emptyDir: {sizeLimit: 1Gi}\n", "spec.volumes[0].emptyDir.sizeLimit: Forbidden: Ballast enforces sizeLimit only with medium: Memory (a tmpfs of that size)"},
		{"emptyDir sizeLimit zero", vol, "    emptyDir: {medium: Memory, sizeLimit: 0}\n", `spec.volumes[0].emptyDir.sizeLimit: Invalid value: "0": must be greater than 0`},
		{"projected token", vol, "    projected: {sources: [{serviceAccountToken: {path: token}}]}\n", "spec.volumes[0].projected.sources[0].serviceAccountToken: Forbidden: static pods cannot use service account tokens"},
		{"projected two sources in one", vol, "    projected: {sources: [{configMap: {name: a}, secret: {name: b}}]}\n", "spec.volumes[0].projected.sources[0]: Forbidden: may not specify more than 1 source type"},
		{"projected conflicting paths", vol, "    projected: {sources: [{configMap: {name: a, items: [{key: k, path: f}]}}, {secret: {name: b, items: [{key: k, path: f}]}}]}\n",
			`spec.volumes[0].projected.sources[1].secret.items[0].path: Duplicate value: "f": another item writes this file (conflicting duplicate paths)`},
		{"configMap volume without name", vol, "    configMap: {}\n", "spec.volumes[0].configMap.name: Required value"},
		{"secret volume without name", vol, "    secret: {}\n", "spec.volumes[0].secret.secretName: Required value"},
		{"secret volume bad mode", vol, "    secret: {secretName: s, defaultMode: 4096}\n", "spec.volumes[0].secret.defaultMode: Invalid value: 4096"},
		{"configMap item escapes", vol, "    configMap: {name: c, items: [{key: k, path: ../x}]}\n", `spec.volumes[0].configMap.items[0].path: Invalid value: "../x": must not contain '..'`},
		{"configMap item bad key", vol, "    configMap: {name: c, items: [{key: \"..\", path: x}]}\n", `spec.volumes[0].configMap.items[0].key: Invalid value: ".."`},
		{"configMap and secret", vol, "    configMap: {name: c}\n    secret: {secretName: s}\n", "spec.volumes[0]: Forbidden: may not specify more than 1 volume type"},
		{"two volume types", vol, vol + "    downwardAPI: {items: []}\n", "spec.volumes[0]: Forbidden: may not specify more than 1 volume type"},
		{"downwardAPI absolute path", vol, "    downwardAPI: {items: [{path: /x, fieldRef: {fieldPath: metadata.name}}]}\n", `spec.volumes[0].downwardAPI.items[0].path: Invalid value: "/x": must be a relative path`},
		{"downwardAPI dotdot", vol, "    downwardAPI: {items: [{path: ..data/x, fieldRef: {fieldPath: metadata.name}}]}\n", `items[0].path: Invalid value: "..data/x": must not start with '..'`},
		{"downwardAPI nodeName", vol, "    downwardAPI: {items: [{path: x, fieldRef: {fieldPath: spec.nodeName}}]}\n", `items[0].fieldRef.fieldPath: Unsupported value: "spec.nodeName"`},
		{"downwardAPI no source", vol, "    downwardAPI: {items: [{path: x}]}\n", "spec.volumes[0].downwardAPI.items[0]: Required value: must specify one of: `fieldRef` or `resourceFieldRef`"},
		{"downwardAPI resource without container", vol, "    downwardAPI: {items: [{path: x, resourceFieldRef: {resource: limits.cpu}}]}\n", "items[0].resourceFieldRef.containerName: Required value"},
		{"downwardAPI mode", vol, "    downwardAPI: {defaultMode: 4096}\n", "spec.volumes[0].downwardAPI.defaultMode: Invalid value: 4096: must be a number between 0 and 0777 (octal), both inclusive"},
		{"subPath absolute", "      readOnly: true\n", "      readOnly: true\n      subPath: /etc\n", `volumeMounts[0].subPath: Invalid value: "/etc": must be a relative path`},
		{"subPath dotdot", "      readOnly: true\n", "      readOnly: true\n      subPath: a/../../etc\n", `volumeMounts[0].subPath: Invalid value: "a/../../etc": must not contain '..'`},
		{"subPath and subPathExpr", "      readOnly: true\n", "      readOnly: true\n      subPath: a\n      subPathExpr: $(B)\n", "volumeMounts[0].subPathExpr: Invalid value: subPathExpr and subPath are mutually exclusive"},
		{"Bidirectional unprivileged", "      readOnly: true\n", "      readOnly: true\n      mountPropagation: Bidirectional\n",
			"spec.containers[0].volumeMounts[0].mountPropagation: Forbidden: Bidirectional mount propagation is available only to privileged containers"},
		{"mountPropagation bad", "      readOnly: true\n", "      readOnly: true\n      mountPropagation: Shared\n", `mountPropagation: Unsupported value: "Shared": supported values: "Bidirectional", "HostToContainer", "None"`},
		{"recursiveReadOnly", "      readOnly: true\n", "      readOnly: true\n      recursiveReadOnly: Enabled\n", "volumeMounts[0].recursiveReadOnly: Forbidden: not supported"},
		{"hostPort range", port, port + "      hostPort: 70000\n", "ports[0].hostPort: Invalid value: 70000: must be between 1 and 65535, inclusive"},
		{"hostPort with hostNetwork", "spec:\n", "spec:\n  hostNetwork: true\n", ""}, // placeholder replaced below
		{"hostIP", port, port + "      hostPort: 8080\n      hostIP: 1.2.3\n", `ports[0].hostIP: Invalid value: "1.2.3": must be a valid IP address`},
		{"terminationMessagePolicy", img, img + "    terminationMessagePolicy: Always\n", `spec.containers[0].terminationMessagePolicy: Unsupported value: "Always": supported values: "File", "FallbackToLogsOnError"`},
		{"hostPID and shareProcessNamespace", "spec:\n", "spec:\n  hostPID: true\n  shareProcessNamespace: true\n", "spec.shareProcessNamespace: Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled"},
		{"hostname", "spec:\n", "spec:\n  hostname: My_Host\n", `spec.hostname: Invalid value: "My_Host": a lowercase RFC 1123 label`},
		{"subdomain", "spec:\n", "spec:\n  subdomain: a.b\n", `spec.subdomain: Invalid value: "a.b": must not contain dots`},
		{"hostAliases ip", "spec:\n", "spec:\n  hostAliases: [{ip: nope, hostnames: [a]}]\n", `spec.hostAliases[0].ip: Invalid value: "nope": must be a valid IP address`},
		{"nodeSelector value", "spec:\n", "spec:\n  nodeSelector: {disk: \"fast ssd\"}\n", `spec.nodeSelector[disk]: Invalid value: "fast ssd"`},
		{"priority mismatch", "spec:\n", "spec:\n  priorityClassName: system-node-critical\n  priority: 5\n", "spec.priority: Invalid value: 5: the priority of class system-node-critical is 2000001000; set it to 2000001000 or leave spec.priority out"},
	}
	for _, tt := range tests {
		if tt.name == "hostPort with hostNetwork" {
			tt.replace, tt.with = port, port+"      hostPort: 8080\n"
			tt.want = "ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true"
			t.Run(tt.name, func(t *testing.T) {
				data := strings.Replace(strings.Replace(webYAML, tt.replace, tt.with, 1), "spec:\n", "spec:\n  hostNetwork: true\n", 1)
				msg, _ := parseErr(t, data)
				if !strings.Contains(msg, tt.want) {
					t.Errorf("error\n  %s\nwant it to contain\n  %s", msg, tt.want)
				}
			})
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(webYAML, tt.replace) {
				t.Fatalf("bad test: %q not in webYAML", tt.replace)
			}
			msg, _ := parseErr(t, strings.Replace(webYAML, tt.replace, tt.with, 1))
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error\n  %s\nwant it to contain\n  %s", msg, tt.want)
			}
		})
	}
}

// A kubeadm-shaped manifest and every pod-spec field of this version parse,
// with Kubernetes' defaults.
func TestPodSpecAccepted(t *testing.T) {
	data := `apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
  labels: {component: etcd, tier: control-plane}
spec:
  hostNetwork: false
  hostPID: true
  hostIPC: true
  hostname: db
  subdomain: etcd
  hostAliases: [{ip: 10.0.0.1, hostnames: [a.example, b]}]
  dnsPolicy: None
  dnsConfig: {nameservers: [1.1.1.1], options: [{name: ndots, value: "2"}]}
  nodeSelector: {kubernetes.io/os: linux}
  priorityClassName: system-node-critical
  securityContext:
    runAsUser: 1000
    runAsGroup: 1000
    runAsNonRoot: true
    supplementalGroups: [5, 6]
    fsGroup: 2000
    fsGroupChangePolicy: OnRootMismatch
    seccompProfile: {type: RuntimeDefault}
    sysctls: [{name: net.ipv4.tcp_syncookies, value: "1"}]
  volumes:
  - name: data
    hostPath: {path: /var/lib/etcd, type: DirectoryOrCreate}
  - name: certs
    hostPath: {path: /etc/kubernetes/pki/etcd, type: Directory}
  - name: mem
    emptyDir: {medium: Memory, sizeLimit: 64Mi}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: cpu, resourceFieldRef: {containerName: etcd, resource: limits.cpu, divisor: 1m}}
  containers:
  - name: etcd
    image: registry.k8s.io/etcd:3.5.16-0
    terminationMessagePolicy: FallbackToLogsOnError
    ports: [{containerPort: 2381, hostPort: 2381, hostIP: 127.0.0.1}]
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    resources:
      requests: {cpu: 100m, memory: 100Mi}
      limits: {memory: 200Mi}
    securityContext:
      runAsUser: 1001
      privileged: true
      capabilities: {add: [NET_ADMIN], drop: [ALL]}
      readOnlyRootFilesystem: true
      seccompProfile: {type: Localhost, localhostProfile: profiles/etcd.json}
      procMount: Default
    volumeMounts:
    - {name: data, mountPath: /var/lib/etcd, subPath: member, mountPropagation: Bidirectional}
    - {name: certs, mountPath: /etc/kubernetes/pki/etcd, readOnly: true, mountPropagation: HostToContainer}
    - {name: mem, mountPath: /run/x, subPathExpr: $(TIER)}
    - {name: info, mountPath: /etc/podinfo}
`
	pods := mustParse(t, "/etc/kubernetes/manifests/etcd.yaml", data)
	p := pods[0]
	if p.Spec.Priority == nil || *p.Spec.Priority != 2000001000 {
		t.Errorf("priority not defaulted from system-node-critical: %v", p.Spec.Priority)
	}
	c := p.Spec.Containers[0]
	if q := c.Resources.Requests[corev1.ResourceMemory]; q.String() != "100Mi" {
		t.Errorf("memory request %s", q.String())
	}
	// Limits default requests only where requests are unset.
	data2 := strings.Replace(data, "      requests: {cpu: 100m, memory: 100Mi}\n", "", 1)
	c2 := mustParse(t, "/m/etcd.yaml", data2)[0].Spec.Containers[0]
	if q := c2.Resources.Requests[corev1.ResourceMemory]; q.String() != "200Mi" {
		t.Errorf("request not defaulted to the limit: %v", c2.Resources.Requests)
	}
	if m := p.Spec.Volumes[3].DownwardAPI.DefaultMode; m == nil || *m != 0o644 {
		t.Errorf("downwardAPI defaultMode %v", m)
	}
	if c.Env[0].ValueFrom.FieldRef.APIVersion != "v1" {
		t.Errorf("fieldRef apiVersion not defaulted")
	}
	if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("terminationMessagePolicy %s", c.TerminationMessagePolicy)
	}
}

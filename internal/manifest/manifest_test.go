package manifest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/ballast-dev/ballast/internal/validation"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

const node = "k8s-cp1"

const webYAML = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: nginx
    image: nginx:1.27
    ports:
    - containerPort: 80
      name: http
    volumeMounts:
    - name: html
      mountPath: /usr/share/nginx/html
      readOnly: true
  volumes:
  - name: html
    hostPath:
      path: /srv/www
`

// mustParse parses a valid manifest. Every pod it yields must also pass
// ValidatePod, as the API server checks the node's mirror pods, and be a
// fixed point of SetDefaults, which the API server applies again.
func mustParse(t *testing.T, path, data string) []*corev1.Pod {
	t.Helper()
	pods, err := Parse(path, []byte(data), node)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	for _, p := range pods {
		if err := validation.ValidatePod(p); err != nil {
			t.Errorf("ValidatePod refuses the pod Parse made of %s: %v", path, err)
		}
		again := p.DeepCopy()
		validation.SetDefaults(again)
		if !equality.Semantic.DeepEqual(again, p) {
			before, _ := json.Marshal(p)
			after, _ := json.Marshal(again)
			t.Errorf("SetDefaults changes the pod Parse made of %s:\n%s\n%s", path, before, after)
		}
	}
	return pods
}

// parseErr parses data expecting failure and returns the whole error text.
func parseErr(t *testing.T, data string) (string, error) {
	t.Helper()
	pods, err := Parse("/etc/kubernetes/manifests/web.yaml", []byte(data), node)
	if err == nil {
		t.Fatalf("Parse succeeded, want an error; pods: %v", pods)
	}
	if len(Errors(err)) == 0 {
		t.Fatalf("error holds no *Error: %v", err)
	}
	return err.Error(), err
}

func TestParseValidPod(t *testing.T) {
	pods := mustParse(t, "/etc/kubernetes/manifests/web.yaml", webYAML)
	if len(pods) != 1 {
		t.Fatalf("got %d pods", len(pods))
	}
	p := pods[0]
	c := p.Spec.Containers[0]
	checks := []struct{ name, got, want string }{
		{"name", p.Name, "web-k8s-cp1"},
		{"namespace", p.Namespace, "default"},
		{"nodeName", p.Spec.NodeName, node},
		{"restartPolicy", string(p.Spec.RestartPolicy), "Always"},
		{"dnsPolicy", string(p.Spec.DNSPolicy), "ClusterFirst"},
		{"schedulerName", p.Spec.SchedulerName, "default-scheduler"},
		{"imagePullPolicy", string(c.ImagePullPolicy), "IfNotPresent"},
		{"terminationMessagePath", c.TerminationMessagePath, "/dev/termination-log"},
		{"terminationMessagePolicy", string(c.TerminationMessagePolicy), "File"},
		{"protocol", string(c.Ports[0].Protocol), "TCP"},
		{"config.source", p.Annotations[wellknown.AnnotationConfigSource], "file"},
		{"manifest", p.Annotations[wellknown.AnnotationManifest], "/etc/kubernetes/manifests/web.yaml"},
		{"config.hash", p.Annotations[wellknown.AnnotationConfigHash], string(p.UID)},
		{"label", p.Labels["app"], "web"},
		{"kind", p.Kind, "Pod"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if len(p.UID) != 32 {
		t.Errorf("UID %q: want 32 hex digits", p.UID)
	}
	if g := p.Spec.TerminationGracePeriodSeconds; g == nil || *g != 30 {
		t.Errorf("terminationGracePeriodSeconds = %v, want 30", g)
	}
	if e := p.Spec.EnableServiceLinks; e == nil || !*e {
		t.Errorf("enableServiceLinks = %v, want true", e)
	}
	if ht := p.Spec.Volumes[0].HostPath.Type; ht == nil || *ht != "" {
		t.Errorf("hostPath.type = %v, want \"\"", ht)
	}
	found := false
	for _, tol := range p.Spec.Tolerations {
		if tol.Operator == corev1.TolerationOpExists && tol.Effect == corev1.TaintEffectNoExecute && tol.Key == "" {
			found = true
		}
	}
	if !found {
		t.Errorf("no NoExecute toleration: %v", p.Spec.Tolerations)
	}
}

func TestParseJSON(t *testing.T) {
	data := `{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {"name": "web"},
  "spec": {
    "containers": [
      {"name": "nginx", "image": "nginx", "imagePullPolicy": "Never"}
    ]
  }
}`
	pods := mustParse(t, "/m/web.json", data)
	if pods[0].Spec.Containers[0].ImagePullPolicy != "Never" {
		t.Errorf("imagePullPolicy not kept")
	}
	// Errors in JSON carry lines too.
	bad := strings.Replace(data, `"image": "nginx", `, `"image": "nginx", "resizePolicy": [], `, 1)
	_, err := Parse("/m/web.json", []byte(bad), node)
	es := Errors(err)
	if len(es) != 1 || es[0].Line != 7 || es[0].Field != "spec.containers[0].resizePolicy" {
		t.Errorf("got %#v", es)
	}
	// Duplicate keys in JSON.
	dup := strings.Replace(data, `"kind": "Pod",`, `"kind": "Pod", "kind": "Pod",`, 1)
	_, err = Parse("/m/web.json", []byte(dup), node)
	if es := Errors(err); len(es) != 1 || es[0].Line != 3 || !strings.Contains(es[0].Msg, "Duplicate") {
		t.Errorf("duplicate: got %v", err)
	}
}

func TestParseList(t *testing.T) {
	data := `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a}
  spec: {containers: [{name: c, image: busybox}]}
- metadata: {name: b, namespace: kube-system}
  spec: {containers: [{name: c, image: busybox}]}
`
	pods := mustParse(t, "/m/list.yaml", data)
	if len(pods) != 2 || pods[0].Name != "a-k8s-cp1" || pods[1].Name != "b-k8s-cp1" || pods[1].Namespace != "kube-system" {
		t.Fatalf("got %v", pods)
	}
	if pods[0].UID == pods[1].UID {
		t.Errorf("items share a UID")
	}
	msg, _ := parseErr(t, strings.Replace(data, "name: b, namespace: kube-system", "name: a", 1))
	if !strings.Contains(msg, "items[1].metadata.name: Duplicate value") {
		t.Errorf("got %s", msg)
	}
	msg, _ = parseErr(t, "apiVersion: v1\nkind: List\nitems: []\n")
	if !strings.Contains(msg, "items: Required value") {
		t.Errorf("got %s", msg)
	}
	msg, _ = parseErr(t, "apiVersion: v1\nkind: List\nitems:\n- kind: Service\n  metadata: {name: x}\n")
	if !strings.Contains(msg, `:4: items[0].kind: Unsupported value: "Service"`) {
		t.Errorf("got %s", msg)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []string // substrings of the error text, each one *Error
	}{
		{"empty", "", []string{"web.yaml: file holds no pod"}},
		{"only comments", "# nothing\n   \n# here\n", []string{"file holds no pod"}},
		{"only separator", "---\n", []string{"file holds no pod"}},
		{"syntax", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [web\n", []string{"invalid YAML"}},
		{"not a mapping", "- a\n- b\n", []string{"must hold a mapping"}},
		{"two documents", webYAML + "---\n" + webYAML, []string{`web.yaml:26: metadata.name: Duplicate value: "web": the document at line 1 already defines this pod`}},
		{"no apiVersion", "kind: Pod\n", []string{"apiVersion: Required value: set apiVersion: v1"}},
		{"wrong apiVersion", "apiVersion: apps/v1\nkind: Pod\n", []string{`web.yaml:1: apiVersion: Unsupported value: "apps/v1"`}},
		{"wrong kind", "apiVersion: v1\nkind: Deployment\n", []string{`web.yaml:2: kind: Unsupported value: "Deployment"`}},
		{"no name", strings.Replace(webYAML, "  name: web\n", "", 1), []string{"web.yaml:3: metadata.name: Required value"}},
		{"bad name", strings.Replace(webYAML, "name: web", "name: Web_1", 1), []string{`web.yaml:4: metadata.name: Invalid value: "Web_1"`}},
		{"name too long", strings.Replace(webYAML, "name: web", "name: "+strings.Repeat("a", 250), 1), []string{"metadata.name: Too long"}},
		{"bad namespace", strings.Replace(webYAML, "  name: web\n", "  name: web\n  namespace: kube.system\n", 1), []string{"metadata.namespace: Invalid value"}},
		{"bad label", strings.Replace(webYAML, "app: web", "app: -web-", 1), []string{"web.yaml:6: metadata.labels[app]: Invalid value"}},
		{"bad label key", strings.Replace(webYAML, "app: web", "/app: web", 1), []string{"metadata.labels[/app]: Invalid value"}},
		{"label not string", strings.Replace(webYAML, "app: web", "app: 1", 1), []string{"web.yaml:6: metadata.labels[app]: Invalid type: must be a string, not a number (1); put it in quotes"}},
		{"no containers", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n", []string{"spec.containers: Required value"}},
		{"no image", strings.Replace(webYAML, "    image: nginx:1.27\n", "", 1), []string{"web.yaml:9: spec.containers[0].image: Required value: set the container image"}},
		{"bad container name", strings.Replace(webYAML, "name: nginx", "name: NGINX", 1), []string{`web.yaml:9: spec.containers[0].name: Invalid value: "NGINX"`}},
		{"bad port", strings.Replace(webYAML, "containerPort: 80", "containerPort: 70000", 1), []string{"web.yaml:12: spec.containers[0].ports[0].containerPort: Invalid value: 70000"}},
		{"port as string", strings.Replace(webYAML, "containerPort: 80", `containerPort: "80"`, 1), []string{"containerPort: Invalid type: must be a whole number, not a string (\"80\"); remove the quotes"}},
		{"port too big for int32", strings.Replace(webYAML, "containerPort: 80", "containerPort: 9999999999", 1), []string{"out of range"}},
		{"bad protocol", strings.Replace(webYAML, "name: http", "name: http\n      protocol: HTTP", 1), []string{`ports[0].protocol: Unsupported value: "HTTP"`}},
		{"bad port name", strings.Replace(webYAML, "name: http", "name: HTTP_x", 1), []string{"ports[0].name: Invalid value"}},
		{"dup port name", strings.Replace(webYAML, "      name: http\n", "      name: http\n    - containerPort: 81\n      name: http\n", 1), []string{"ports[1].name: Duplicate value"}},
		{"bad env name", strings.Replace(webYAML, "    ports:\n", "    env:\n    - name: A=B\n      value: x\n    ports:\n", 1), []string{"web.yaml:12: spec.containers[0].env[0].name: Invalid value"}},
		{"mount unknown volume", strings.Replace(webYAML, "- name: html\n      mountPath", "- name: htm\n      mountPath", 1), []string{`volumeMounts[0].name: Not found: "htm"`}},
		{"relative mountPath", strings.Replace(webYAML, "mountPath: /usr/share/nginx/html", "mountPath: html", 1), []string{"mountPath: Invalid value: \"html\": must be an absolute path"}},
		{"dup mountPath", strings.Replace(webYAML, "      readOnly: true\n", "      readOnly: true\n    - name: html\n      mountPath: /usr/share/nginx/html/\n", 1), []string{"volumeMounts[1].mountPath: Invalid value"}},
		{"dup volume", webYAML + "  - name: html\n    emptyDir: {}\n", []string{`spec.volumes[1].name: Duplicate value: "html"`}},
		{"two volume types", strings.Replace(webYAML, "      path: /srv/www\n", "      path: /srv/www\n    emptyDir: {}\n", 1), []string{"spec.volumes[0]: Forbidden: may not specify more than 1 volume type"}},
		{"relative hostPath", strings.Replace(webYAML, "path: /srv/www", "path: srv/www", 1), []string{`hostPath.path: Invalid value: "srv/www": must be an absolute path`}},
		{"restartPolicy", webYAML + "  restartPolicy: Sometimes\n", []string{`spec.restartPolicy: Unsupported value: "Sometimes"`}},
		{"imagePullPolicy", strings.Replace(webYAML, "image: nginx:1.27", "image: nginx:1.27\n    imagePullPolicy: Maybe", 1), []string{`imagePullPolicy: Unsupported value: "Maybe"`}},
		{"grace", webYAML + "  terminationGracePeriodSeconds: -1\n", []string{"terminationGracePeriodSeconds: Invalid value: -1"}},
		{"nodeName", webYAML + "  nodeName: other\n", []string{`spec.nodeName: Invalid value: "other"`}},
		{"dnsPolicy", webYAML + "  dnsPolicy: Google\n", []string{`spec.dnsPolicy: Unsupported value: "Google"`}},
		{"dnsPolicy None", webYAML + "  dnsPolicy: None\n", []string{"spec.dnsConfig: Required value"}},
		{"toleration", webYAML + "  tolerations:\n  - operator: Equal\n", []string{"spec.tolerations[0].operator: Invalid value"}},
		{"hostNetwork yes", webYAML + "  hostNetwork: \"true\"\n", []string{"spec.hostNetwork: Invalid type: must be a boolean (true or false), not a string (\"true\"); write true or false, without quotes"}},
		{"unknown field", strings.Replace(webYAML, "image: nginx:1.27", "image: nginx:1.27\n    imagePulPolicy: Always", 1), []string{`web.yaml:11: spec.containers[0].imagePulPolicy: Unknown field: "imagePulPolicy" is not a field Kubernetes knows here; did you mean "imagePullPolicy"?`}},
		{"misindented", strings.Replace(webYAML, "spec:\n", "spec:\n  image: nginx\n", 1), []string{`web.yaml:8: spec.image: Unknown field`}},
		{"duplicate field", strings.Replace(webYAML, "    image: nginx:1.27\n", "    image: nginx:1.27\n    image: nginx:1.28\n", 1), []string{`web.yaml:11: spec.containers[0].image: Duplicate value: "image" is set twice (first at line 10)`}},
		{"list not mapping", strings.Replace(webYAML, "  containers:\n", "  containers: nginx\n  x:\n", 1), []string{"spec.containers: Invalid type: must be a list, not a string"}},
		{"null list item", strings.Replace(webYAML, "  volumes:\n", "  volumes:\n  - null\n", 1), []string{"spec.volumes[0]: Invalid value: null"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := parseErr(t, tt.data)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error\n  %s\nwant it to contain\n  %s", msg, w)
				}
			}
			if !strings.HasPrefix(msg, "/etc/kubernetes/manifests/web.yaml") {
				t.Errorf("error does not name the file: %s", msg)
			}
			_ = err
		})
	}
}

// TestRefused shows, for each field Ballast refuses, the message a user reads.
func TestRefused(t *testing.T) {
	tests := []struct {
		name, replace, with, want string
	}{
		{"resizePolicy", "    image: nginx:1.27\n", "    image: nginx:1.27\n    resizePolicy:\n    - {resourceName: cpu, restartPolicy: NotRequired}\n",
			"web.yaml:11: spec.containers[0].resizePolicy: Forbidden: not supported by this version of Ballast yet; remove it from the manifest (Ballast refuses what it cannot honour rather than ignore it)"},
		{"ephemeralContainers", "spec:\n", "spec:\n  ephemeralContainers: []\n", "web.yaml:8: spec.ephemeralContainers: Forbidden: not supported by this version of Ballast yet"},
		{"tcpSocket hook", "    image: nginx:1.27\n", "    image: nginx:1.27\n    lifecycle:\n      preStop:\n        tcpSocket: {port: 80}\n",
			"spec.containers[0].lifecycle.preStop.tcpSocket: Forbidden: tcpSocket lifecycle handlers are deprecated and never run"},
		{"probe in a plain init container", "spec:\n", "spec:\n  initContainers:\n  - name: init\n    image: busybox:1\n    livenessProbe: {exec: {command: [\"true\"]}}\n",
			"spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always"},
		{"probe with two handlers", "    image: nginx:1.27\n", "    image: nginx:1.27\n    readinessProbe:\n      exec: {command: [\"true\"]}\n      tcpSocket: {port: 80}\n",
			"spec.containers[0].readinessProbe: Forbidden: may not specify more than 1 handler type"},
		{"liveness successThreshold", "    image: nginx:1.27\n", "    image: nginx:1.27\n    livenessProbe:\n      httpGet: {port: http}\n      successThreshold: 2\n",
			"spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"},
		{"probe port name unknown", "    image: nginx:1.27\n", "    image: nginx:1.27\n    livenessProbe:\n      httpGet: {port: metrics}\n",
			`spec.containers[0].livenessProbe.httpGet.port: Invalid value: "metrics": must be a port number or the name of one of the container's ports`},
		{"init restartPolicy", "spec:\n", "spec:\n  initContainers:\n  - name: init\n    image: busybox:1\n    restartPolicy: OnFailure\n",
			"spec.initContainers[0].restartPolicy"},
		{"tty", "    image: nginx:1.27\n", "    image: nginx:1.27\n    tty: true\n", `spec.containers[0].tty: Unsupported value: true: not supported by this version of Ballast yet; only false is accepted`},
		{"stdin", "    image: nginx:1.27\n", "    image: nginx:1.27\n    stdin: true\n", `spec.containers[0].stdin: Unsupported value: true`},
		{"pvc", "    hostPath:\n      path: /srv/www\n", "    persistentVolumeClaim: {claimName: x}\n", `spec.volumes[0].persistentVolumeClaim: Forbidden: static pods cannot use PersistentVolumeClaims`},
		{"nfs", "    hostPath:\n      path: /srv/www\n", "    nfs: {server: x, path: /}\n", `spec.volumes[0].nfs: Forbidden: not supported`},
		{"serviceAccountName", "spec:\n", "spec:\n  serviceAccountName: default\n", "web.yaml:8: spec.serviceAccountName: Forbidden: static pods cannot use service accounts: there may be no API server to issue tokens; remove it"},
		{"serviceAccount", "spec:\n", "spec:\n  serviceAccount: default\n", "spec.serviceAccount: Forbidden: static pods cannot use service accounts"},
		{"automountServiceAccountToken", "spec:\n", "spec:\n  automountServiceAccountToken: true\n", "spec.automountServiceAccountToken: Unsupported value: true: static pods cannot use service accounts"},
		{"imagePullSecrets", "spec:\n", "spec:\n  imagePullSecrets: [{name: reg}]\n", "spec.imagePullSecrets: Forbidden: static pods cannot read Secrets: there may be no API server; put registry credentials in the node's docker config file"},
		{"generateName", "  name: web\n", "  name: web\n  generateName: web-\n", "metadata.generateName: Forbidden: a static pod needs a fixed name; set metadata.name instead"},
		{"ownerReferences", "  name: web\n", "  name: web\n  ownerReferences: []\n", "metadata.ownerReferences: Forbidden: a static pod is owned by its manifest file"},
		{"finalizers", "  name: web\n", "  name: web\n  finalizers: [x]\n", "metadata.finalizers: Forbidden"},
		{"deletionTimestamp", "  name: web\n", "  name: web\n  deletionGracePeriodSeconds: 3\n", "metadata.deletionGracePeriodSeconds: Forbidden: not supported"},
		{"status", "spec:\n", "status: {phase: Running}\nspec:\n", "web.yaml:7: status: Forbidden: the status of a static pod is reported by Ballast"},
		{"affinity", "spec:\n", "spec:\n  affinity: {}\n", "spec.affinity: Forbidden: not supported"},
	}
	for _, tt := range tests {
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

func TestAccepted(t *testing.T) {
	data := strings.Replace(webYAML, "      path: /srv/www\n", "      path: /srv/www\n  - name: scratch\n    emptyDir: {}\n  - name: implicit\n", 1) + `  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 5
  hostNetwork: true
  nodeName: k8s-cp1
  dnsPolicy: ClusterFirstWithHostNet
  priorityClassName: system-node-critical
  priority: 2000001000
  tolerations:
  - key: node-role.kubernetes.io/control-plane
    operator: Exists
    effect: NoSchedule
  - operator: Exists
    effect: NoExecute
  schedulerName: default-scheduler
  enableServiceLinks: false
  securityContext: {}
  automountServiceAccountToken: false
`
	data = strings.Replace(data, "  name: web\n", "  name: web\n  namespace: kube-system\n  uid: 1234\n  resourceVersion: \"7\"\n  creationTimestamp: null\n  annotations: {a.b/c: d}\n", 1)
	data = strings.Replace(data, "    image: nginx:1.27\n", `    image: nginx:1.27
    imagePullPolicy: Always
    command: [nginx]
    args: ["-g", "daemon off;"]
    workingDir: /
    env: [{name: A, value: "1"}, {name: B}]
    terminationMessagePath: /tmp/msg
    terminationMessagePolicy: File
    stdin: false
    tty: false
`, 1)
	pods := mustParse(t, "/m/web.yaml", data)
	p := pods[0]
	if p.UID == "1234" || p.ResourceVersion != "" {
		t.Errorf("uid/resourceVersion not ignored: %q %q", p.UID, p.ResourceVersion)
	}
	if p.Spec.Containers[0].Ports[0].HostPort != 80 {
		t.Errorf("hostNetwork: hostPort not defaulted to containerPort")
	}
	if p.Spec.Volumes[2].EmptyDir == nil {
		t.Errorf("volume with no source not defaulted to emptyDir")
	}
	n := 0
	for _, tol := range p.Spec.Tolerations {
		if tol.Key == "" && tol.Effect == corev1.TaintEffectNoExecute {
			n++
		}
	}
	if n != 1 {
		t.Errorf("NoExecute toleration added twice: %v", p.Spec.Tolerations)
	}
	if *p.Spec.EnableServiceLinks {
		t.Errorf("enableServiceLinks: false not kept")
	}
}

func TestSeveralErrors(t *testing.T) {
	data := strings.Replace(webYAML, "    image: nginx:1.27\n", "    resizePolicy: []\n", 1)
	data = strings.Replace(data, "spec:\n", "spec:\n  serviceAccountName: x\n", 1)
	_, err := parseErr(t, data)
	es := Errors(err)
	if len(es) != 2 {
		t.Fatalf("want 2 errors, got %d: %v", len(es), err)
	}
	if es[0].Line > es[1].Line {
		t.Errorf("errors not sorted by line: %v", err)
	}
	var one *Error
	if !errors.As(err, &one) {
		t.Errorf("errors.As(*Error) failed")
	}
	if Errors(nil) != nil {
		t.Errorf("Errors(nil) != nil")
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tt := range []struct {
		e    Error
		want string
	}{
		{Error{"/m/web.yaml", 12, "spec.containers[0].image", "Required value: set the container image"}, "/m/web.yaml:12: spec.containers[0].image: Required value: set the container image"},
		{Error{"/m/web.yaml", 0, "spec", "x"}, "/m/web.yaml: spec: x"},
		{Error{"/m/web.yaml", 3, "", "x"}, "/m/web.yaml:3: x"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q want %q", got, tt.want)
		}
	}
}

func TestIdentity(t *testing.T) {
	uid := func(path, data, nodeName string) string {
		t.Helper()
		pods, err := Parse(path, []byte(data), nodeName)
		if err != nil {
			t.Fatal(err)
		}
		return string(pods[0].UID)
	}
	base := uid("/m/web.yaml", webYAML, node)
	if again := uid("/m/web.yaml", webYAML, node); again != base {
		t.Errorf("not deterministic: %s vs %s", base, again)
	}
	// Formatting, key order, comments, and ignored fields do not matter.
	reformatted := "# a comment\n" + strings.Replace(webYAML, "apiVersion: v1\nkind: Pod\n", "kind: Pod\napiVersion: \"v1\"\n", 1)
	reformatted = strings.Replace(reformatted, "  name: web\n", "  name: web\n  uid: abc\n", 1)
	if got := uid("/m/web.yaml", reformatted, node); got != base {
		t.Errorf("reformatting changed the UID")
	}
	// Spelling out a default is a change of content: it may restart the pod,
	// but a new Ballast version adding defaults never does (hash of the file, not of structs).
	for name, u := range map[string]string{
		"content": uid("/m/web.yaml", strings.Replace(webYAML, "nginx:1.27", "nginx:1.28", 1), node),
		"node":    uid("/m/web.yaml", webYAML, "k8s-cp2"),
		"path":    uid("/m/web2.yaml", webYAML, node),
	} {
		if u == base {
			t.Errorf("changing the %s did not change the UID", name)
		}
	}
	// Golden: the identity must stay stable across Ballast versions.
	if base != uid("/m/web.yaml", webYAML, node) || len(base) != 32 {
		t.Errorf("bad uid %q", base)
	}
}

func TestIgnored(t *testing.T) {
	for name, want := range map[string]bool{
		"web.yaml": false, "web.yml": false, "web.json": false, "WEB.YAML": false,
		".web.yaml": true, ".web.yaml.swp": true, "web.yaml~": true, "web.yaml.bak": true,
		"web.yaml.orig": true, "4913": true, "#web.yaml#": true, "web.yaml.swp": true,
		"README": true, "web.txt": true, "web.yaml.dpkg-old": true, "": true, ".": true,
	} {
		reason, ign := Ignored(name)
		if ign != want {
			t.Errorf("Ignored(%q) = %v, want %v", name, ign, want)
		}
		if ign && reason == "" {
			t.Errorf("Ignored(%q): no reason", name)
		}
	}
}

func TestYAMLFeatures(t *testing.T) {
	// Anchors and merge keys work; timestamps-looking strings stay strings.
	data := `apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations:
    when: 2024-01-01
spec:
  containers:
  - &c
    name: a
    image: busybox
  - <<: *c
    name: b
`
	pods := mustParse(t, "/m/web.yaml", data)
	if len(pods[0].Spec.Containers) != 2 || pods[0].Spec.Containers[1].Image != "busybox" || pods[0].Spec.Containers[1].Name != "b" {
		t.Errorf("got %+v", pods[0].Spec.Containers)
	}
	if pods[0].Annotations["when"] != "2024-01-01" {
		t.Errorf("annotation = %q", pods[0].Annotations["when"])
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(webYAML))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"a","image":"b"}]}}`))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n- metadata: {name: a}\n  spec: {containers: [{name: c, image: i}]}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("{"))
	f.Add([]byte("---\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pods, err := Parse("/m/f.yaml", data, node)
		if err == nil && len(pods) == 0 {
			t.Fatal("no error and no pods")
		}
		if err != nil && len(Errors(err)) == 0 {
			t.Fatalf("error holds no *Error: %v", err)
		}
	})
}

func TestJSONAndFlowYAML(t *testing.T) {
	tabs := "{\n\t\"apiVersion\": \"v1\",\n\t\"kind\": \"Pod\",\n\t\"metadata\": {\"name\": \"web\"},\n\t\"spec\": {\"containers\": [{\"name\": \"c\", \"image\": \"nginx\"}]}\n}\n"
	a := mustParse(t, "/m/web.json", tabs)
	// A YAML flow mapping (not JSON) is read as YAML.
	flow := "{apiVersion: v1, kind: Pod, metadata: {name: web}, spec: {containers: [{name: c, image: nginx}]}}\n"
	b := mustParse(t, "/m/web.json", strings.Replace(tabs, "\t", " ", -1))
	c := mustParse(t, "/m/web.yaml", flow)
	if a[0].UID != b[0].UID {
		t.Errorf("whitespace changed the UID")
	}
	if c[0].Name != "web-k8s-cp1" {
		t.Errorf("flow YAML: %v", c[0].Name)
	}
	// Bad JSON in a .json file names the line.
	_, err := Parse("/m/web.json", []byte("{\n\"apiVersion\": \"v1\",\n\"kind\": \"Pod\"\n\"metadata\": {}\n}"), node)
	if es := Errors(err); len(es) != 1 || es[0].Line != 4 || !strings.Contains(es[0].Msg, "invalid JSON") {
		t.Errorf("got %#v", es)
	}
}

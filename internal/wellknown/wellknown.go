// Package wellknown owns the names Ballast shares with Kubernetes and
// between its own parts: the annotations and labels it reads and writes on
// static pods, mirror pods, Nodes and runtime (CRI) objects. Each name is
// declared here once; every package uses these constants rather than a
// string or a declaration of its own. Names Kubernetes' Go API already
// declares (corev1.LabelHostname, ...) are used from there.
package wellknown

// Annotations on a static pod (and so on its mirror pod), as the kubelet
// sets them (k8s.io/kubernetes/pkg/kubelet/types).
const (
	// AnnotationConfigHash is the static pod's identity hash; it is also
	// its UID.
	AnnotationConfigHash = "kubernetes.io/config.hash"
	// AnnotationConfigSource says where the pod comes from: ConfigSourceFile.
	AnnotationConfigSource = "kubernetes.io/config.source"
	// AnnotationConfigSeen is when the node first saw the pod's current
	// content (RFC 3339).
	AnnotationConfigSeen = "kubernetes.io/config.seen"
	// AnnotationConfigMirror marks a mirror pod; its value is the static
	// pod's hash.
	AnnotationConfigMirror = "kubernetes.io/config.mirror"
	// ConfigAnnotationPrefix starts every kubernetes.io/config.* annotation:
	// on a mirror pod only its node may change them.
	ConfigAnnotationPrefix = "kubernetes.io/config."

	// ConfigSourceFile is AnnotationConfigSource's value for a pod read
	// from a manifest file.
	ConfigSourceFile = "file"
)

// Ballast's own annotations on a static pod and its mirror pod.
const (
	// AnnotationManifest is the manifest file the pod comes from, on its node.
	AnnotationManifest = "ballast.dev/manifest"
	// AnnotationManifestError says why the pod's manifest file is invalid
	// now (the pod keeps running its last good content); absent otherwise.
	AnnotationManifestError = "ballast.dev/manifest-error"
	// AnnotationRolloutReverted says why the file's new pod was rejected
	// (the pod running is the file's last good one); absent otherwise.
	AnnotationRolloutReverted = "ballast.dev/rollout-reverted"
	// AnnotationRolloutRejectedHash is the rejected pod's config hash, and
	// AnnotationRolloutRunningHash the one running instead, on a reverted pod.
	AnnotationRolloutRejectedHash = "ballast.dev/rollout-rejected-hash"
	AnnotationRolloutRunningHash  = "ballast.dev/rollout-running-hash"
	// AnnotationConfigDataHash is the hash of the node-local ConfigMap and
	// Secret data the pod's identity covers (what its env uses, and its
	// volumes with AnnotationRestartOnConfigChange); absent when none.
	AnnotationConfigDataHash = "ballast.dev/config-hash"
)

// Ballast's annotations a static pod's manifest may set, to steer how its
// node runs it (validated by internal/validation).
const (
	// AnnotationAfter names pods of the same node (by manifest name,
	// comma-separated) that must be Ready before this pod's containers start.
	AnnotationAfter = "ballast.dev/after"
	// AnnotationRollout "replace" opts a pod out of automatic reverts (the
	// kubelet's behaviour); "revert", the default, keeps them.
	AnnotationRollout = "ballast.dev/rollout"
	// AnnotationRolloutDeadline is how long a changed pod may take to become
	// Ready and settle before it is reverted (default 2m).
	AnnotationRolloutDeadline = "ballast.dev/rollout-deadline"
	// AnnotationRolloutSettle is how long a changed pod must stay Ready to
	// become its file's last good pod (default 5s).
	AnnotationRolloutSettle = "ballast.dev/rollout-settle"
	// AnnotationRestartOnConfigChange "true" makes a change to the data a
	// pod's volumes show replace the pod, as a change to what its env uses
	// does, instead of updating the files in place.
	AnnotationRestartOnConfigChange = "ballast.dev/restart-on-config-change"
)

// Annotations on the mirror of a node-local ConfigMap or Secret in the API
// (the node's own objects carry none of them).
const (
	// AnnotationSecretData says what a mirror Secret shows of the data:
	// SecretDataNodeLocal (keys only, empty values) unless the node
	// publishes it.
	AnnotationSecretData = "ballast.dev/secret-data"
	// SecretDataNodeLocal is AnnotationSecretData's value on a mirror
	// Secret without its values.
	SecretDataNodeLocal = "node-local"
	// AnnotationUsedBy lists the pods ("namespace/name", comma-separated)
	// that reference a node-local object, as the node's local API shows it.
	AnnotationUsedBy = "ballast.dev/used-by"
	// AnnotationConfigMissing marks an object the node's pods reference but
	// no manifest file defines, in the node's local API; its value says so.
	AnnotationConfigMissing = "ballast.dev/config-missing"
	// AnnotationFileWarning says what is wrong with the file of a
	// node-local object (a Secret file others may read).
	AnnotationFileWarning = "ballast.dev/file-warning"
)

// AnnotationDefaultContainer names the container kubectl logs, exec and
// attach use when none is given (kubectl's).
const AnnotationDefaultContainer = "kubectl.kubernetes.io/default-container"

// AnnotationServingCertSHA256 is the Node annotation carrying the SHA-256
// (hex, of the DER) of the node's kubelet-API serving certificate, so that
// an API server can pin it instead of skipping verification of a
// self-signed certificate.
const AnnotationServingCertSHA256 = "ballast.dev/kubelet-serving-cert-sha256"

// Node labels that set the ROLES column of `kubectl get nodes`.
const (
	// LabelNodeRolePrefix + role, any value.
	LabelNodeRolePrefix = "node-role.kubernetes.io/"
	// LabelNodeRole holds a role as its value (the older form).
	LabelNodeRole = "kubernetes.io/role"
)

// Labels on every sandbox and container in the runtime. The io.kubernetes.*
// ones are the kubelet's, so that tools such as crictl show Ballast's pods
// as they show the kubelet's.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
	// LabelNode marks what a Ballast agent manages: only objects carrying
	// its own node name are touched, so two agents may share one runtime.
	LabelNode = "ballast.dev/node"
)

// Annotations Ballast keeps on runtime objects: the state that must survive
// an agent restart (restart counts, back-off, the pod itself).
const (
	AnnotationRestartCount   = "io.kubernetes.container.restartCount"
	AnnotationTermMsgPath    = "io.kubernetes.container.terminationMessagePath"
	AnnotationTermMsgPolicy  = "io.kubernetes.container.terminationMessagePolicy"
	AnnotationBackoff        = "ballast.dev/backoff"
	AnnotationBackoffSince   = "ballast.dev/backoff-since"
	AnnotationPod            = "ballast.dev/pod" // on sandboxes: the desired pod as JSON
	AnnotationContainerIndex = "ballast.dev/container-index"
)

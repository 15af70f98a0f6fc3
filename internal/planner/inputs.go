package planner

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/manifest"
	"github.com/ballast-dev/ballast/internal/podplan"
	"github.com/ballast-dev/ballast/internal/podruntime"
)

// Input is one thing that happened, fed to Step.
type Input interface{ input() }

// Snapshot is the full desired state of the manifest directory.
type Snapshot struct {
	Pods     []Desired
	Problems []Problem // sorted by file
	// Unavailable says why the directory itself cannot be read (it is
	// missing, or not a directory): then Pods says nothing, and no pod is
	// stopped for it (see State.whileUnavailable).
	Unavailable string
	// Dir is the manifest directory, to name it in a problem.
	Dir string
	// Configs are the node-local ConfigMaps and Secrets, sorted by kind,
	// namespace and name (shared: never modified).
	Configs []*manifest.Config
	// Warnings are about files that work but should be fixed, sorted by file.
	Warnings []Warning
}

// Desired is a pod a manifest file defines.
type Desired struct {
	Pod  *corev1.Pod
	File string
}

// Problem is a manifest file that cannot be used.
type Problem struct {
	File    string
	Message string
	// Pods are the pods the file defined at its last good content, if any:
	// they keep running.
	Pods []string
}

func sameProblem(a, b Problem) bool {
	if a.File != b.File || a.Message != b.Message || len(a.Pods) != len(b.Pods) {
		return false
	}
	for i := range a.Pods {
		if a.Pods[i] != b.Pods[i] {
			return false
		}
	}
	return true
}

// Relisted is a full read of the node's pods in the runtime, by UID, or the
// error that stopped it.
type Relisted struct {
	Pods map[string]*podruntime.Pod
	Err  error
}

// Exited says the runtime reported a container or sandbox process exit.
type Exited struct{ ID string }

// Observed is the read an Observe action asked for. Pod nil with no Err means
// the runtime holds nothing for it.
type Observed struct {
	UID string
	Pod *podruntime.Pod
	Err error
}

// Done is the outcome of a Job.
type Done struct {
	UID string
	// Runtime is the pod read again after the job; nil if that read failed.
	Runtime *podruntime.Pod
	// Pulls are the images whose pull failed (Backoff is the planner's to set);
	// PullsOK the images now present.
	Pulls   map[string]*podplan.PullFailure
	PullsOK []string
	// Failed are the containers whose start failed, and at which step.
	Failed map[string]Failure
	// Err is set when the job did not do everything it had to: the pod is
	// retried after a back-off.
	Err error
}

// Step is a step of starting a container.
type Step int

const (
	// StepSandbox: creating the pod's sandbox.
	StepSandbox Step = iota + 1
	// StepConfig: preparing the container's configuration (volumes, env,
	// image user, ...).
	StepConfig
	// StepCreate: the runtime's CreateContainer.
	StepCreate
	// StepStart: the runtime's StartContainer.
	StepStart
	// StepPostStart: the postStart hook failed and the container could not
	// be stopped.
	StepPostStart
)

// Failure is a failed step of a container's start, with the runtime's message.
type Failure struct {
	Step    Step
	Message string
}

// waiting is what a failed start shows, as the kubelet names it.
func (f Failure) waiting() podruntime.Waiting {
	switch f.Step {
	case StepSandbox:
		return podruntime.Waiting{Reason: "ContainerCreating", Message: "creating the pod sandbox failed: " + f.Message}
	case StepConfig:
		return podruntime.Waiting{Reason: "CreateContainerConfigError", Message: f.Message}
	case StepCreate:
		return podruntime.Waiting{Reason: "CreateContainerError", Message: f.Message}
	case StepStart:
		return podruntime.Waiting{Reason: "RunContainerError", Message: f.Message}
	case StepPostStart:
		return podruntime.Waiting{Reason: "PostStartHookError", Message: f.Message}
	}
	return podruntime.Waiting{Reason: "ContainerCreating", Message: f.Message}
}

// Probed is a probe result that changed (or a failed run, for its event).
type Probed struct {
	UID, Container, ContainerID string
	Kind                        podruntime.ProbeKind
	// Success is the probe's state after this run, thresholds applied.
	Success bool
	// Failed: this run failed (an Unhealthy event), with Output.
	Failed bool
	Output string
	// Exhausted: a liveness or startup probe reached its failure threshold;
	// the container must be killed.
	Exhausted bool
}

// ImagesArrived says images were imported: pull failures are forgotten and
// waiting pods try again at once.
type ImagesArrived struct{}

// Reconnected says the runtime's event stream was (re)established: what
// happened meanwhile is unknown, so the runtime is read again.
type Reconnected struct{}

// Tick says time passed: the WakeAt asked for has come.
type Tick struct{}

func (Snapshot) input()      {}
func (Relisted) input()      {}
func (Exited) input()        {}
func (Observed) input()      {}
func (Done) input()          {}
func (Probed) input()        {}
func (ImagesArrived) input() {}
func (Reconnected) input()   {}
func (Tick) input()          {}

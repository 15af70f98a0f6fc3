package planner

import "testing"

// Each failed step shows as the kubelet shows it.
func TestFailureWaiting(t *testing.T) {
	for _, c := range []struct {
		step   Step
		reason string
		msg    string
	}{
		{StepSandbox, "ContainerCreating", "creating the pod sandbox failed: boom"},
		{StepConfig, "CreateContainerConfigError", "boom"},
		{StepCreate, "CreateContainerError", "boom"},
		{StepStart, "RunContainerError", "boom"},
		{StepPostStart, "PostStartHookError", "boom"},
	} {
		w := Failure{Step: c.step, Message: "boom"}.waiting()
		if w.Reason != c.reason || w.Message != c.msg {
			t.Errorf("step %d: %+v, want %s %q", c.step, w, c.reason, c.msg)
		}
	}
}

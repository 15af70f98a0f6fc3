package hostinfo

import "testing"

func TestReadsTheHost(t *testing.T) {
	if MemoryBytes() <= 0 {
		t.Errorf("MemoryBytes() = %d", MemoryBytes())
	}
	if KernelVersion() == "" {
		t.Error("no kernel version")
	}
	if OSImage() == "" {
		t.Error("no OS image")
	}
}

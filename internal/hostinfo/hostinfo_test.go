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

func TestCapacity(t *testing.T) {
	c := Capacity()
	if c.Cpu().MilliValue() < 1000 || c.Memory().Value() != MemoryBytes() || c.StorageEphemeral().Value() <= 0 {
		t.Errorf("Capacity() = %v", c)
	}
}

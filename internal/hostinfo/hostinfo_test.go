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

func TestDefaultRouteInterface(t *testing.T) {
	routes := "Iface\tDestination\tGateway\tFlags\n" +
		"eth1\t0000A8C0\t00000000\t0001\n" +
		"eth0\t00000000\t0100A8C0\t0003\n"
	for _, c := range []struct{ in, want string }{
		{routes, "eth0"},
		{"Iface\tDestination\n", ""},
		{"", ""},
	} {
		if got := defaultRouteInterface(c.in); got != c.want {
			t.Errorf("defaultRouteInterface(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

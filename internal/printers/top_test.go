package printers

import (
	"bytes"
	"testing"

	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

func u64(v uint64) *uint64 { return &v }

func ctr(name string, nanoCores, ws uint64) statsapi.ContainerStats {
	return statsapi.ContainerStats{Name: name, CPU: &statsapi.CPUStats{UsageNanoCores: u64(nanoCores)}, Memory: &statsapi.MemoryStats{WorkingSetBytes: u64(ws)}}
}

func TestTop(t *testing.T) {
	s := &statsapi.Summary{
		Node: statsapi.NodeStats{NodeName: "n1", CPU: &statsapi.CPUStats{UsageNanoCores: u64(350_000_000)}, Memory: &statsapi.MemoryStats{WorkingSetBytes: u64(700 << 20)}},
		Pods: []statsapi.PodStats{
			{PodRef: statsapi.PodReference{Name: "web-n1", Namespace: "default"}, Containers: []statsapi.ContainerStats{ctr("web", 12_000_000, 33<<20), ctr("side", 1_500_000, 2<<20)}},
			{PodRef: statsapi.PodReference{Name: "etcd-n1", Namespace: "kube-system"}, Containers: []statsapi.ContainerStats{ctr("etcd", 40_000_000, 100<<20)}},
			{PodRef: statsapi.PodReference{Name: "new-n1", Namespace: "default"}, Containers: []statsapi.ContainerStats{{Name: "c"}}}, // no figures yet
		},
	}
	n, ok := NodeUsage(s)
	if !ok {
		t.Fatal("no node usage")
	}
	var b bytes.Buffer
	if err := PrintTopNodes(&b, []Usage{n}, 2, 4<<30); err != nil {
		t.Fatal(err)
	}
	want := "NAME   CPU(cores)   CPU(%)   MEMORY(bytes)   MEMORY(%)   \nn1     350m         17%      700Mi           17%         \n"
	if b.String() != want {
		t.Errorf("top node:\n%q\nwant\n%q", b.String(), want)
	}

	b.Reset()
	if err := PrintTopPods(&b, PodUsage(s, "default", false), false, false); err != nil {
		t.Fatal(err)
	}
	want = "NAME     CPU(cores)   MEMORY(bytes)   \nweb-n1   14m          35Mi            \n"
	if b.String() != want {
		t.Errorf("top pod:\n%q\nwant\n%q", b.String(), want)
	}

	b.Reset()
	if err := PrintTopPods(&b, PodUsage(s, "", true), true, true); err != nil {
		t.Fatal(err)
	}
	want = "NAMESPACE     POD       NAME   CPU(cores)   MEMORY(bytes)   \n" +
		"default       web-n1    side   2m           2Mi             \n" +
		"default       web-n1    web    12m          33Mi            \n" +
		"kube-system   etcd-n1   etcd   40m          100Mi           \n"
	if b.String() != want {
		t.Errorf("top pod -A --containers:\n%s\nwant\n%s", b.String(), want)
	}
}

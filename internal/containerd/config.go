// Package containerd runs a containerd that Ballast starts and supervises:
// its config.toml (containerd 1.6, config version 2, CRI plugin built in),
// its CNI bridge network, and the process itself.
//
// Everything lives under Config.Dir:
//
//	<Dir>/config.toml      containerd's config
//	<Dir>/root, <Dir>/state containerd's root and state directories
//	                         (state: Config.StateDir; runc's state under it)
//	<Dir>/cni/             CNI conf dir (one bridge conflist)
//	<Dir>/cni-ipam/        host-local IPAM data (leases)
//	<Dir>/containerd.sock  default gRPC socket (Config.Socket)
//	<Dir>/containerd.log   containerd's stdout and stderr
//	<Dir>/containerd.pid   its PID, for adoption by the next agent
package containerd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ballast-dev/ballast/internal/atomicfile"
)

const (
	// DefaultBridgeName is the Linux bridge the CNI network creates.
	DefaultBridgeName = "ballast0"
	// DefaultSubnet is the pod subnet. Chosen to avoid the common defaults
	// that clash elsewhere: 10.88.0.0/16 (containerd and podman examples),
	// 10.244.0.0/16 (flannel, kind), 10.42/10.43 (k3s), 10.96 (kube services),
	// 172.17 (docker), 192.168.0.0/16 (calico and home networks).
	DefaultSubnet = "10.123.0.0/16"
	// DefaultSandboxImage is the CRI sandbox ("pause") image: Ballast's own
	// images/pause program, which must be imported (nothing is pulled from
	// the internet), e.g. as a tarball in the images directory built with
	// internal/imagebuild.
	DefaultSandboxImage = "ballast.local/pause:v1"
	// CRINamespace is the containerd namespace that the CRI plugin uses.
	CRINamespace = "k8s.io"
)

// DefaultCNIBinDirs are searched, in order, for the CNI plugins; the first
// that exists is used (Debian's containernetworking-plugins installs to
// /usr/lib/cni, upstream tarballs to /opt/cni/bin).
var DefaultCNIBinDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// Config describes a managed containerd.
type Config struct {
	// Dir holds root, state, config, CNI conf, log and pid file. Required.
	Dir string
	// Socket is the gRPC (CRI) socket path; default <Dir>/containerd.sock.
	// Keep it short: unix socket paths are limited to 107 bytes.
	Socket string
	// SandboxImage is the CRI sandbox image; default DefaultSandboxImage.
	SandboxImage string
	// CNIBinDirs are candidate CNI plugin dirs; default DefaultCNIBinDirs.
	// The first that holds a "bridge" plugin is used (containerd 1.6 takes
	// a single bin_dir).
	CNIBinDirs []string
	// BridgeName is the CNI bridge device and network name; default "ballast0".
	BridgeName string
	// Subnet is the pod subnet (host-local IPAM); default DefaultSubnet.
	Subnet string
	// RegistryMirrors maps a registry host (e.g. "127.0.0.1:5000") to its
	// endpoint (e.g. "http://127.0.0.1:5000"); plain HTTP is allowed, so it
	// serves loopback test registries.
	RegistryMirrors map[string]string
	// RestrictOOMScoreAdj sets the CRI plugin's restrict_oom_score_adj. nil
	// means detect: true when this process lacks CAP_SYS_RESOURCE, without
	// which runc cannot set a negative oom_score_adj and every sandbox fails
	// with "can't get final child's PID from pipe: EOF".
	RestrictOOMScoreAdj *bool
	// Snapshotter is "overlayfs" or "native"; "" means detect: overlayfs
	// when a test overlay mount under Dir works, native otherwise (e.g. Dir
	// itself on overlayfs without support for it as upper dir).
	Snapshotter string
	// LogLevel is containerd's --log-level; default "info".
	LogLevel string
	// StateDir is containerd's state directory (sockets, bundles, runc
	// state); default <Dir>/state. Production agents should put it on a
	// tmpfs (e.g. /run/ballast/containerd) so a reboot clears it.
	StateDir string
	// HungAfter is how long a starting containerd may go without answering
	// CRI Version and without using CPU before it counts as hung and is
	// killed; one that is busy is waited for. Default 60 s.
	HungAfter time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL when
	// its context has no earlier deadline. Default 15 s.
	StopTimeout time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" {
		return c, fmt.Errorf("containerd: Config.Dir is required")
	}
	abs, err := filepath.Abs(c.Dir)
	if err != nil {
		return c, err
	}
	c.Dir = abs
	if c.Socket == "" {
		c.Socket = filepath.Join(c.Dir, "containerd.sock")
	}
	if len(c.Socket) > 107 {
		return c, fmt.Errorf("containerd: socket path %q is longer than 107 bytes", c.Socket)
	}
	if c.SandboxImage == "" {
		c.SandboxImage = DefaultSandboxImage
	}
	if len(c.CNIBinDirs) == 0 {
		c.CNIBinDirs = DefaultCNIBinDirs
	}
	if c.BridgeName == "" {
		c.BridgeName = DefaultBridgeName
	}
	if len(c.BridgeName) > 15 {
		return c, fmt.Errorf("containerd: bridge name %q is longer than 15 bytes", c.BridgeName)
	}
	if c.Subnet == "" {
		c.Subnet = DefaultSubnet
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.StateDir == "" {
		c.StateDir = filepath.Join(c.Dir, "state")
	}
	if c.HungAfter <= 0 {
		c.HungAfter = defaultHungAfter
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = defaultStopTimeout
	}
	return c, nil
}

// ConfigPath is where WriteConfig writes config.toml for cfg.
func ConfigPath(dir string) string { return filepath.Join(dir, "config.toml") }

// LacksSysResource reports whether this process lacks CAP_SYS_RESOURCE in
// its effective set (read from CapEff in /proc/self/status).
func LacksSysResource() bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return true
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return true
			}
			return caps&(1<<unix.CAP_SYS_RESOURCE) == 0
		}
	}
	return true
}

// overlayUsable tries an overlay mount under dir.
func overlayUsable(dir string) bool {
	base, err := os.MkdirTemp(dir, ".overlay-check-")
	if err != nil {
		return false
	}
	defer os.RemoveAll(base)
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o700); err != nil {
			return false
		}
	}
	merged := filepath.Join(base, "merged")
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s",
		filepath.Join(base, "lower"), filepath.Join(base, "upper"), filepath.Join(base, "work"))
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		return false
	}
	_ = unix.Unmount(merged, unix.MNT_DETACH)
	return true
}

// resolve fills in detected values (CNI bin dirs, OOM restriction, snapshotter).
func (c Config) resolve() (Config, []string, error) {
	c, err := c.withDefaults()
	if err != nil {
		return c, nil, err
	}
	var binDirs []string
	for _, d := range c.CNIBinDirs {
		if st, err := os.Stat(filepath.Join(d, "bridge")); err == nil && !st.IsDir() {
			binDirs = append(binDirs, d)
		}
	}
	if len(binDirs) == 0 {
		return c, nil, fmt.Errorf("containerd: no CNI plugins (bridge, host-local, portmap, loopback) in %v; install them with: apt-get install -y containernetworking-plugins", c.CNIBinDirs)
	}
	if c.RestrictOOMScoreAdj == nil {
		v := LacksSysResource()
		c.RestrictOOMScoreAdj = &v
	}
	if c.Snapshotter == "" {
		if err := os.MkdirAll(c.Dir, 0o711); err != nil {
			return c, nil, err
		}
		c.Snapshotter = "native"
		if overlayUsable(c.Dir) {
			c.Snapshotter = "overlayfs"
		}
	}
	return c, binDirs, nil
}

// WriteConfig writes <Dir>/config.toml and the CNI conflist
// <Dir>/cni/10-<bridge>.conflist, creating the directories, and returns the
// config path. It resolves defaults and detections (see Config).
func WriteConfig(cfg Config) (configPath string, err error) {
	c, binDirs, err := cfg.resolve()
	if err != nil {
		return "", err
	}
	return writeResolved(c, binDirs)
}

func writeResolved(c Config, binDirs []string) (string, error) {
	cniConf := filepath.Join(c.Dir, "cni")
	for _, d := range []string{c.Dir, filepath.Join(c.Dir, "root"), c.StateDir, cniConf, filepath.Join(c.Dir, "cni-ipam")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return "", err
		}
	}
	conflist, err := CNIConflist(c.BridgeName, c.Subnet, filepath.Join(c.Dir, "cni-ipam"))
	if err != nil {
		return "", err
	}
	// Replace in place (a running containerd watches the conf dir and must
	// never see it empty), then drop any other file: containerd uses the
	// first conflist by name.
	ours := "10-" + c.BridgeName + ".conflist"
	if err := writeFileAtomic(filepath.Join(cniConf, ours), conflist); err != nil {
		return "", err
	}
	if ents, err := os.ReadDir(cniConf); err == nil {
		for _, e := range ents {
			if e.Name() != ours {
				os.Remove(filepath.Join(cniConf, e.Name()))
			}
		}
	}
	path := ConfigPath(c.Dir)
	if err := writeFileAtomic(path, []byte(renderTOML(c, binDirs, cniConf))); err != nil {
		return "", err
	}
	return path, nil
}

// CNIConflist returns a bridge network conflist: the bridge plugin (bridge
// device and network name = bridge, isGateway, ipMasq, hairpin) with
// host-local IPAM on subnet (leases under ipamDataDir), then portmap for
// hostPort. The loopback plugin is not listed: containerd's CRI plugin sets
// up lo itself with the loopback binary from the CNI bin dir.
func CNIConflist(bridge, subnet, ipamDataDir string) ([]byte, error) {
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       bridge,
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      bridge,
				"isGateway":   true,
				"ipMasq":      true,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": subnet}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": ipamDataDir,
				},
			},
			map[string]any{
				"type":         "portmap",
				"capabilities": map[string]bool{"portMappings": true},
			},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

func renderTOML(c Config, binDirs []string, cniConf string) string {
	q := strconv.Quote
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# Written by Ballast (internal/containerd). containerd 1.6, config version 2.")
	w("version = 2")
	w("root = %s", q(filepath.Join(c.Dir, "root")))
	w("state = %s", q(c.StateDir))
	w("oom_score = 0")
	// Plugins nothing here needs; skipping them makes start-up faster and
	// quieter. Nothing the CRI plugin needs (overlayfs/native snapshotters,
	// runc v2 runtime, services, content, metadata, gc, events) is listed.
	w("disabled_plugins = [")
	for _, p := range []string{
		"io.containerd.snapshotter.v1.aufs",
		"io.containerd.snapshotter.v1.btrfs",
		"io.containerd.snapshotter.v1.devmapper",
		"io.containerd.snapshotter.v1.zfs",
		"io.containerd.internal.v1.opt",
		"io.containerd.tracing.processor.v1.otlp",
		"io.containerd.internal.v1.tracing",
	} {
		w("  %s,", q(p))
	}
	w("]")
	w("")
	w("[grpc]")
	w("  address = %s", q(c.Socket))
	w("[ttrpc]")
	w("  address = %s", q(c.Socket+".ttrpc"))
	w("[debug]")
	w("  address = \"\"")
	w("  level = %s", q(c.LogLevel))
	w("[metrics]")
	w("  address = \"\"")
	w("")
	cri := `plugins."io.containerd.grpc.v1.cri"`
	w("[%s]", cri)
	w("  sandbox_image = %s", q(c.SandboxImage))
	w("  restrict_oom_score_adj = %t", *c.RestrictOOMScoreAdj)
	w("  enable_selinux = false")
	w("  stream_server_address = \"127.0.0.1\"")
	w("  stream_server_port = \"0\"")
	w("  [%s.containerd]", cri)
	w("    snapshotter = %s", q(c.Snapshotter))
	w("    default_runtime_name = \"runc\"")
	w("    [%s.containerd.runtimes.runc]", cri)
	w("      runtime_type = \"io.containerd.runc.v2\"")
	w("      [%s.containerd.runtimes.runc.options]", cri)
	w("        SystemdCgroup = false")
	// runc's state under our state dir, not the shared /run/containerd/runc.
	w("        Root = %s", q(filepath.Join(c.StateDir, "runc")))
	w("  [%s.cni]", cri)
	// containerd 1.6 takes a single bin_dir: the first that exists.
	w("    bin_dir = %s", q(binDirs[0]))
	w("    conf_dir = %s", q(cniConf))
	w("    max_conf_num = 1")
	w("  [%s.registry]", cri)
	w("    config_path = \"\"")
	hosts := make([]string, 0, len(c.RegistryMirrors))
	for h := range c.RegistryMirrors {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		w("    [%s.registry.mirrors.%s]", cri, q(h))
		w("      endpoint = [%s]", q(c.RegistryMirrors[h]))
	}
	return b.String()
}

// writeFileAtomic writes data to path atomically, unless path already holds it.
func writeFileAtomic(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return atomicfile.WriteFile(path, data, 0o644)
}

package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Image pulls: registry credentials from a node-local docker config file
// (static pods cannot use imagePullSecrets), and a pull timeout.

// DefaultPullTimeout bounds one image pull.
const DefaultPullTimeout = 5 * time.Minute

// PullConfig configures image pulls.
type PullConfig struct {
	// CredentialFile is a docker config.json with registry credentials
	// ("auths"). Empty: the first of <data-dir>/config.json,
	// /var/lib/kubelet/config.json and $HOME/.docker/config.json that exists.
	// The file is read at every pull, so edits apply without a restart.
	CredentialFile string
	// Timeout bounds one pull (default DefaultPullTimeout).
	Timeout time.Duration
}

var pullConfigs sync.Map // *Agent -> PullConfig

// SetImagePulls configures image pulls; call it before Run.
func (a *Agent) SetImagePulls(c PullConfig) { pullConfigs.Store(a, c) }

func (a *Agent) pullConfig() PullConfig {
	c, _ := pullConfigs.Load(a)
	pc, _ := c.(PullConfig)
	if pc.Timeout <= 0 {
		pc.Timeout = DefaultPullTimeout
	}
	return pc
}

// credentialFiles are the files searched for registry credentials, in order.
func (a *Agent) credentialFiles() []string {
	if f := a.pullConfig().CredentialFile; f != "" {
		return []string{f}
	}
	files := []string{filepath.Join(a.opts.DataDir, "config.json"), "/var/lib/kubelet/config.json"}
	if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".docker", "config.json"))
	}
	return files
}

// pullImage pulls image with the credentials of its registry, within the
// pull timeout. A timeout comes back as a plain error saying so (not as the
// runtime being unreachable).
func (e *executor) pullImage(ctx context.Context, image string, sb *runtimeapi.PodSandboxConfig) (*runtimeapi.PullImageResponse, error) {
	a := e.a
	pc := a.pullConfig()
	auth, src, err := lookupAuth(a.credentialFiles(), image)
	if err != nil {
		a.log.Warn("cannot read registry credentials; pulling without", "err", err)
	} else if auth != nil {
		a.log.Debug("pulling with registry credentials", "image", image, "file", src, "registry", auth.ServerAddress)
	}
	pctx, cancel := context.WithTimeout(ctx, pc.Timeout)
	defer cancel()
	r, err := a.opts.Runtime.IS.PullImage(pctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}, Auth: auth, SandboxConfig: sb})
	if err != nil && ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) {
		return nil, fmt.Errorf("pull timed out after %s (--image-pull-timeout): the registry did not deliver the image in time", pc.Timeout)
	}
	return r, err
}

type dockerConfig struct {
	Auths map[string]dockerAuth `json:"auths"`
}

type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// lookupAuth finds the credentials for image in the first credential file
// that exists: the entry whose registry (host, and path prefix when given)
// matches the image, the most specific one first.
func lookupAuth(files []string, image string) (*runtimeapi.AuthConfig, string, error) {
	for _, f := range files {
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, f, err
		}
		var cfg dockerConfig
		if err := json.Unmarshal(data, &cfg); err != nil {
			return nil, f, fmt.Errorf("%s: %w", f, err)
		}
		host, repo := imageHostPath(image)
		best, bestLen := "", -1
		for key := range cfg.Auths {
			kh, kp := credKey(key)
			if !hostMatches(kh, host) {
				continue
			}
			if kp != "" && repo != kp && !strings.HasPrefix(repo, kp+"/") {
				continue
			}
			if l := len(kh) + len(kp); l > bestLen || (l == bestLen && key < best) {
				best, bestLen = key, l
			}
		}
		if bestLen < 0 {
			return nil, f, nil
		}
		e := cfg.Auths[best]
		// containerd sends the credentials only to the registry whose host
		// matches the server address (a URL); Docker Hub is reached under
		// other names, so its credentials go without one.
		server := "https://" + host
		if host == "docker.io" {
			server = ""
		}
		ac := &runtimeapi.AuthConfig{Username: e.Username, Password: e.Password, ServerAddress: server,
			IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
		if e.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, f, fmt.Errorf("%s: auths[%q].auth is not base64: %w", f, best, err)
			}
			u, p, ok := strings.Cut(string(dec), ":")
			if !ok {
				return nil, f, fmt.Errorf("%s: auths[%q].auth must encode user:password", f, best)
			}
			ac.Username, ac.Password = u, p
		}
		return ac, f, nil
	}
	return nil, "", nil
}

// imageHostPath splits an image reference into its registry host and
// repository path, with Docker Hub's defaults.
func imageHostPath(image string) (string, string) {
	name := image
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	host, rest, ok := strings.Cut(name, "/")
	if !ok || (!strings.ContainsAny(host, ".:") && host != "localhost") {
		host, rest = "docker.io", name
		if !strings.Contains(rest, "/") {
			rest = "library/" + rest
		}
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		rest = rest[:i]
	}
	return host, rest
}

// credKey parses a docker config key ("https://host:port/v1/", "host/path").
func credKey(key string) (string, string) {
	k := key
	if i := strings.Index(k, "://"); i >= 0 {
		k = k[i+3:]
	}
	host, path, _ := strings.Cut(k, "/")
	path = strings.TrimSuffix(path, "/")
	if path == "v1" || path == "v2" || strings.HasPrefix(path, "v1/") || strings.HasPrefix(path, "v2/") {
		path = ""
	}
	return host, path
}

func hostMatches(key, host string) bool {
	norm := func(h string) string {
		switch h {
		case "index.docker.io", "registry-1.docker.io", "docker.io":
			return "docker.io"
		}
		return h
	}
	key, host = norm(key), norm(host)
	if key == host {
		return true
	}
	// Globs as the kubelet's: "*.example.com" matches one label.
	if strings.HasPrefix(key, "*.") {
		rest, ok := strings.CutSuffix(host, key[1:])
		return ok && rest != "" && !strings.Contains(rest, ".")
	}
	return false
}

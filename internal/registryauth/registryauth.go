// Package registryauth owns the node's image pull settings and registry
// credentials: static pods cannot use imagePullSecrets, so credentials come
// from a docker config.json on the node, looked up per image as the kubelet's
// credential keyring does (host, path prefix, "*." globs, Docker Hub's names).
package registryauth

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultTimeout bounds one image pull.
const DefaultTimeout = 5 * time.Minute

// Config configures image pulls.
type Config struct {
	// CredentialFile is a docker config.json with registry credentials
	// ("auths"). Empty: the first of <data-dir>/config.json,
	// /var/lib/kubelet/config.json and $HOME/.docker/config.json that exists.
	// The file is read at every pull, so edits apply without a restart.
	CredentialFile string
	// Timeout bounds one pull (default DefaultTimeout).
	Timeout time.Duration
}

// PullTimeout is the time one pull may take.
func (c Config) PullTimeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// Files are the files searched for credentials, in order, for an agent
// whose data directory is dataDir.
func (c Config) Files(dataDir string) []string {
	if c.CredentialFile != "" {
		return []string{c.CredentialFile}
	}
	files := []string{filepath.Join(dataDir, "config.json"), "/var/lib/kubelet/config.json"}
	if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".docker", "config.json"))
	}
	return files
}

// Lookup finds the credentials for image in the first of files that exists,
// and says which file it read. No file, or no entry for the image's
// registry: nil credentials (pull anonymously).
func Lookup(files []string, image string) (*runtimeapi.AuthConfig, string, error) {
	for _, f := range files {
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, f, err
		}
		ac, err := Find(data, image)
		if err != nil {
			return nil, f, fmt.Errorf("%s: %w", f, err)
		}
		return ac, f, nil
	}
	return nil, "", nil
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

// Find returns the credentials of a docker config.json (its content) for
// image: the entry whose registry (host, and path prefix when given) matches
// the image, the most specific one first; nil when none does.
func Find(config []byte, image string) (*runtimeapi.AuthConfig, error) {
	var cfg dockerConfig
	if err := json.Unmarshal(config, &cfg); err != nil {
		return nil, err
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
		return nil, nil
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
			return nil, fmt.Errorf("auths[%q].auth is not base64: %w", best, err)
		}
		u, p, ok := strings.Cut(string(dec), ":")
		if !ok {
			return nil, fmt.Errorf("auths[%q].auth must encode user:password", best)
		}
		ac.Username, ac.Password = u, p
	}
	return ac, nil
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

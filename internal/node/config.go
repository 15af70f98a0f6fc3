package node

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// HostNodeName is the node name the kubelet uses by default: the host
// name, lowercased.
func HostNodeName() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("cannot read the host name (%v): set --node-name", err)
	}
	return strings.ToLower(strings.TrimSpace(h)), nil
}

// KubeletConfig is the part of a KubeletConfiguration file Ballast reads.
type KubeletConfig struct {
	APIVersion               string `json:"apiVersion"`
	Kind                     string `json:"kind"`
	StaticPodPath            string `json:"staticPodPath"`
	ContainerRuntimeEndpoint string `json:"containerRuntimeEndpoint"`
	ContainerLogMaxSize      string `json:"containerLogMaxSize"`
	ContainerLogMaxFiles     int    `json:"containerLogMaxFiles"`
}

// ReadKubeletConfig reads a KubeletConfiguration file (kubelet.config.k8s.io/v1beta1).
func ReadKubeletConfig(path string) (KubeletConfig, error) {
	var kc KubeletConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return kc, fmt.Errorf("--config: %w", err)
	}
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return kc, fmt.Errorf("--config %s: %w", path, err)
	}
	if kc.Kind != "KubeletConfiguration" {
		return kc, fmt.Errorf("--config %s: kind is %q, want KubeletConfiguration (apiVersion kubelet.config.k8s.io/v1beta1)", path, kc.Kind)
	}
	return kc, nil
}

// APIServer says how `ballast node` reaches its API server: a kubeconfig,
// or a server URL with a token and the server's CA.
type APIServer struct {
	Kubeconfig            string
	Server, Token, CAFile string
	Version               string // for the user agent
}

// Configured reports whether an API server was given at all.
func (s APIServer) Configured() bool { return s.Kubeconfig != "" || s.Server != "" }

// Client returns the function APIConfig.Client wants, or nil with no API server.
func (s APIServer) Client() (func(string) (kubernetes.Interface, error), error) {
	if !s.Configured() {
		return nil, nil
	}
	cfg, err := s.restConfig()
	if err != nil {
		return nil, err
	}
	return func(string) (kubernetes.Interface, error) {
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("API client: %w", err)
		}
		return c, nil
	}, nil
}

func (s APIServer) restConfig() (*rest.Config, error) {
	var cfg *rest.Config
	switch {
	case s.Kubeconfig != "" && s.Server == "":
		c, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", s.Kubeconfig, err)
		}
		cfg = c
	case s.Kubeconfig != "":
		return nil, errors.New("give either --kubeconfig or --server (with --token and --certificate-authority), not both")
	default:
		if s.Token == "" {
			return nil, errors.New("--server needs --token (from `ballast server token create --node NAME`)")
		}
		cfg = &rest.Config{Host: s.Server, BearerToken: s.Token, TLSClientConfig: rest.TLSClientConfig{CAFile: s.CAFile}}
	}
	return ClientConfig(cfg, s.Version), nil
}

// ClientConfig sets what every node client uses: JSON, the node's user
// agent, a rate limit for bursts of mirror pod updates, and no overall
// timeout (watches are long).
func ClientConfig(cfg *rest.Config, version string) *rest.Config {
	cfg.ContentConfig = rest.ContentConfig{ContentType: "application/json"}
	cfg.UserAgent = "ballast-node/" + version
	cfg.QPS, cfg.Burst = 50, 100
	cfg.Timeout = 0
	return cfg
}

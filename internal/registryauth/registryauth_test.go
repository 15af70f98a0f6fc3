package registryauth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const config = `{"auths": {
  "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
  "registry.example.com": {"username": "u", "password": "p"},
  "registry.example.com/team": {"username": "team", "password": "tp"},
  "*.corp.example": {"username": "g", "password": "gp"}
}}`

func TestFind(t *testing.T) {
	tests := []struct{ image, user, password, server string }{
		{"nginx:1.27", "hub", "secret", ""},
		{"docker.io/library/nginx", "hub", "secret", ""},
		{"registry.example.com/app:v1", "u", "p", "https://registry.example.com"},
		{"registry.example.com/team/app:v1", "team", "tp", "https://registry.example.com"},
		{"registry.example.com/teamster/app", "u", "p", "https://registry.example.com"},
		{"r1.corp.example/app", "g", "gp", "https://r1.corp.example"},
		{"a.b.corp.example/app", "", "", ""},
		{"127.0.0.1:5000/app", "", "", ""},
	}
	for _, tt := range tests {
		ac, err := Find([]byte(config), tt.image)
		if err != nil {
			t.Fatal(err)
		}
		var user, password, server string
		if ac != nil {
			user, password, server = ac.Username, ac.Password, ac.ServerAddress
		}
		if user != tt.user || password != tt.password || server != tt.server {
			t.Errorf("%s: %q:%q at %q, want %q:%q at %q", tt.image, user, password, server, tt.user, tt.password, tt.server)
		}
	}
}

func TestFindBadConfig(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"auths": `: "unexpected end",
		`{"auths": {"r.example": {"auth": "%%%"}}}`:          "auths[\"r.example\"].auth is not base64",
		`{"auths": {"r.example": {"auth": "bm9jb2xvbg=="}}}`: "must encode user:password",
	} {
		if _, err := Find([]byte(cfg), "r.example/app"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", cfg, err, want)
		}
	}
}

func TestLookupReadsTheFirstFileThatExists(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "config.json")
	if err := os.WriteFile(f, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.json")
	if err := os.WriteFile(other, []byte(`{"auths": {"registry.example.com": {"username": "other", "password": "o"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ac, src, err := Lookup([]string{filepath.Join(dir, "missing.json"), f, other}, "registry.example.com/app")
	if err != nil || src != f || ac == nil || ac.Username != "u" {
		t.Errorf("Lookup: %v from %q, %v; want user u from %s", ac, src, err, f)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("{"), 0o600)
	if _, src, err := Lookup([]string{bad, f}, "nginx"); err == nil || src != bad || !strings.Contains(err.Error(), bad) {
		t.Errorf("a broken file: src %q, err %v; want an error naming %s", src, err, bad)
	}
	if ac, src, err := Lookup([]string{filepath.Join(dir, "missing.json")}, "nginx"); ac != nil || src != "" || err != nil {
		t.Errorf("no file: %v %q %v", ac, src, err)
	}
}

func TestConfig(t *testing.T) {
	if got := (Config{}).PullTimeout(); got != DefaultTimeout {
		t.Errorf("default timeout %v", got)
	}
	if got := (Config{Timeout: time.Second}).PullTimeout(); got != time.Second {
		t.Errorf("timeout %v", got)
	}
	if got := (Config{CredentialFile: "/x.json"}).Files("/data"); strings.Join(got, ",") != "/x.json" {
		t.Errorf("files with a credential file: %v", got)
	}
	got := (Config{}).Files("/data")
	if len(got) < 2 || got[0] != "/data/config.json" || got[1] != "/var/lib/kubelet/config.json" {
		t.Errorf("default files: %v", got)
	}
}

package auth

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTokensCreateLookup(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokenFile)
	s, err := OpenTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Lookup("nope"); ok {
		t.Fatal("lookup in an empty store succeeded")
	}
	u := User{Name: "alice", Groups: []string{"devs"}}
	tok, err := s.Create(u)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 43 || strings.ContainsAny(tok, "+/=") {
		t.Errorf("token %q is not 32 bytes of base64url", tok)
	}
	got, ok := s.Lookup(tok)
	if !ok || got.Name != "alice" || !slices.Equal(got.Groups, []string{"devs"}) {
		t.Errorf("Lookup = %v, %v", got, ok)
	}
	if _, ok := s.Lookup(tok + "x"); ok {
		t.Error("a longer token matched")
	}
	if _, ok := s.Lookup(""); ok {
		t.Error("the empty token matched")
	}

	// The file holds no usable secret and is private.
	data := readFile(t, path)
	if strings.Contains(string(data), tok) {
		t.Error("token file contains the token")
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("token file mode %o", m)
	}
	var f tokenFile
	if err := json.Unmarshal(data, &f); err != nil || f.Version != 1 || len(f.Tokens) != 1 || f.Tokens[0].User != "alice" {
		t.Errorf("file %s: %v", data, err)
	}

	// Kept across a restart.
	s2, err := OpenTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s2.Lookup(tok); !ok || got.Name != "alice" {
		t.Error("token lost across reopen")
	}
}

func TestNodeToken(t *testing.T) {
	s, err := OpenTokens(filepath.Join(t.TempDir(), TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.CreateNodeToken("worker-1")
	if err != nil {
		t.Fatal(err)
	}
	u, ok := s.Lookup(tok)
	if !ok || u.Name != "system:node:worker-1" || !slices.Equal(u.Groups, []string{GroupNodes, GroupAuthenticated}) {
		t.Fatalf("Lookup = %+v, %v", u, ok)
	}
	if u.NodeName() != "worker-1" {
		t.Errorf("NodeName %q", u.NodeName())
	}
	for _, bad := range []string{"", "Worker", "a/b", "a b", strings.Repeat("a", 254)} {
		if _, err := s.CreateNodeToken(bad); err == nil {
			t.Errorf("CreateNodeToken(%q) succeeded", bad)
		}
	}
}

// A token created by another process (another store on the same file) works
// without reopening; a revoked one stops working.
func TestTokensReloadAndRevoke(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokenFile)
	server, err := OpenTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	first, err := server.Create(User{Name: "first"})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := OpenTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cli.CreateNodeToken("n1")
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := server.Lookup(tok); !ok || u.Name != "system:node:n1" {
		t.Fatalf("server does not see the token created elsewhere: %v %v", u, ok)
	}
	if _, ok := server.Lookup(first); !ok {
		t.Fatal("the other process lost the first token")
	}
	list, err := cli.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %v, %v", list, err)
	}
	n, err := cli.Revoke("system:node:n1")
	if err != nil || n != 1 {
		t.Fatalf("Revoke = %d, %v", n, err)
	}
	// Within the recheck interval a hit is served from memory; after it,
	// the revocation is seen.
	server.recheck = time.Hour
	if _, ok := server.Lookup(tok); !ok {
		t.Error("hit re-read the file before the recheck interval")
	}
	server.lastCheck.Store(0)
	if _, ok := server.Lookup(tok); ok {
		t.Error("revoked token still works")
	}
	if n, _ := cli.Revoke(list[0].ID); n != 1 {
		t.Errorf("revoke by id removed %d", n)
	}
}

func TestTokensConcurrentCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokenFile)
	var stores []*TokenStore
	for range 3 {
		s, err := OpenTokens(path)
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	var wg sync.WaitGroup
	toks := make([]string, 30)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := stores[i%3].Create(User{Name: "u"})
			if err != nil {
				t.Error(err)
			}
			toks[i] = tok
		}()
	}
	wg.Wait()
	s, err := OpenTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks {
		if _, ok := s.Lookup(tok); !ok {
			t.Error("a token was lost by concurrent creates")
		}
	}
}

func TestTokensBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokenFile)
	os.WriteFile(path, []byte(`{"version":1,"tokens":[{"id":"x","sha256":"zz","user":"a"}]}`), 0o600)
	if _, err := OpenTokens(path); err == nil {
		t.Error("bad hash accepted")
	}
	os.WriteFile(path, []byte(`not json`), 0o600)
	if _, err := OpenTokens(path); err == nil {
		t.Error("bad file accepted")
	}
}

func TestJoinTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokenFile)
	s, err := OpenTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	if _, _, err := s.CreateJoinToken(0); err == nil {
		t.Error("a join token that never expires was created")
	}
	tok, info, err := s.CreateJoinToken(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if info.Purpose != PurposeJoin || !info.Expires.Equal(now.Add(time.Hour)) || info.User.Name != BootstrapUserPrefix+info.ID {
		t.Errorf("info %+v", info)
	}
	// Good for a join, never for the API.
	if _, ok := s.Lookup(tok); ok {
		t.Error("a join token authenticates API requests")
	}
	if got, err := s.CheckJoinToken(tok, now.Add(time.Hour-time.Second)); err != nil || got.ID != info.ID {
		t.Errorf("CheckJoinToken = %+v, %v", got, err)
	}
	if _, err := s.CheckJoinToken(tok, now.Add(time.Hour)); !errors.Is(err, ErrTokenExpired) || !strings.Contains(err.Error(), info.ID) {
		t.Errorf("expired: %v", err)
	}
	if _, err := s.CheckJoinToken("nope", now); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("unknown: %v", err)
	}
	api, err := s.CreateNodeToken("n1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CheckJoinToken(api, now); !errors.Is(err, ErrNotJoinToken) {
		t.Errorf("API token used to join: %v", err)
	}

	// An API token with a lifetime stops working when it ends.
	short, _, err := s.CreateWithTTL(User{Name: "ci"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Lookup(short); !ok {
		t.Error("a fresh token with a TTL does not work")
	}
	now = now.Add(time.Minute)
	if _, ok := s.Lookup(short); ok {
		t.Error("an expired API token works")
	}

	// Listed with purpose and expiry; revoked ones are refused at once.
	list, err := s.List()
	if err != nil || len(list) != 3 || list[0].Purpose != PurposeJoin || !list[0].Expired(now.Add(time.Hour)) || list[1].Expired(now.Add(100*365*24*time.Hour)) {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if n, err := s.Revoke(info.ID); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	if _, err := s.CheckJoinToken(tok, now); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("revoked: %v", err)
	}

	// A join token long expired is dropped when the file is next written.
	if _, _, err := s.CreateJoinToken(time.Hour); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour + joinTokenRetention + time.Second)
	if _, err := s.CreateNodeToken("n2"); err != nil {
		t.Fatal(err)
	}
	list, _ = s.List()
	for _, i := range list {
		if i.Purpose == PurposeJoin {
			t.Errorf("long-expired join token kept: %+v", i)
		}
	}
}

func TestTokenFileUnknownPurpose(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokenFile)
	sum := strings.Repeat("ab", 32)
	os.WriteFile(path, []byte(`{"version":1,"tokens":[{"id":"x","sha256":"`+sum+`","user":"u","purpose":"admin"}]}`), 0o600)
	if _, err := OpenTokens(path); err == nil || !strings.Contains(err.Error(), `unknown purpose "admin"`) {
		t.Errorf("error = %v", err)
	}
}

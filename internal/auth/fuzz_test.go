package auth

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A node's token is the only thing that authenticates as that node:
// whatever Authorization header a client sends, it authenticates as node
// n1 only if its bearer token is n1's exactly; a join token is never an
// API credential; nothing panics.
func FuzzNodeToken(f *testing.F) {
	dir := f.TempDir()
	store, err := OpenTokens(filepath.Join(dir, TokenFile))
	if err != nil {
		f.Fatal(err)
	}
	node, err := store.CreateNodeToken("n1")
	if err != nil {
		f.Fatal(err)
	}
	join, _, err := store.CreateJoinToken(time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	a := NewAuthenticator(nil, store)
	for _, h := range []string{"Bearer " + node, "bearer " + node, "Bearer  " + node + " ", "Bearer " + node + "x",
		"Bearer " + node[:len(node)-1], "Bearer " + join, "Basic " + node, node, "Bearer", "Bearer ", "", "Bearer \x00"} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r, _ := http.NewRequest(http.MethodGet, "https://ballast/api", nil)
		r.Header["Authorization"] = []string{header}
		u, ok, err := a.Authenticate(r)
		tok, isBearer := BearerToken(r)
		switch {
		case ok && err == nil:
			if !isBearer || tok != node || u.Name != "system:node:n1" || u.NodeName() != "n1" {
				t.Fatalf("header %q authenticated as %q (bearer %q)", header, u.Name, tok)
			}
		case err != nil:
			if ok || u.Name != Anonymous.Name {
				t.Fatalf("header %q: error %v with user %q", header, err, u.Name)
			}
			if isBearer && tok == node {
				t.Fatalf("node n1's token refused: %v", err)
			}
		default:
			if isBearer {
				t.Fatalf("header %q carries bearer %q but is anonymous", header, tok)
			}
		}
		if _, err := store.CheckJoinToken(strings.TrimPrefix(header, "Bearer "), time.Now()); err == nil && strings.TrimPrefix(header, "Bearer ") != join {
			t.Fatalf("%q passes as a join token", header)
		}
	})
}

// The token file is read whatever it holds (a file edited by hand): an
// error that names it, or tokens that each authenticate exactly their own
// hash; nothing panics.
func FuzzTokenFile(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"tokens":[]}`,
		`{"version":1,"tokens":[{"id":"3f1a9c0b72de","sha256":"` + strings.Repeat("ab", 32) + `","user":"system:node:n1","groups":["system:nodes"],"created":"2026-01-01T00:00:00Z"}]}`,
		`{"version":1,"tokens":[{"id":"x","sha256":"zz","user":"u"}]}`,
		`{"version":1,"tokens":[{"id":"x","sha256":"` + strings.Repeat("00", 32) + `","user":"","purpose":"join"}]}`,
		`{"version":2}`, `null`, `[]`, `{"version":1,"tokens":[{"expires":"bogus"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(t.TempDir(), TokenFile)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		entries, err := readTokenFile(path)
		if err != nil {
			if !strings.Contains(err.Error(), "tokens: ") {
				t.Fatalf("an error that does not say it is the token file: %v", err)
			}
			return
		}
		s, err := OpenTokens(path)
		if err != nil {
			t.Fatalf("readTokenFile accepted what OpenTokens refuses: %v", err)
		}
		for _, e := range entries {
			if e.User == "" || len(e.SHA256) != 64 {
				t.Fatalf("accepted entry %+v", e)
			}
			if _, ok := s.Lookup(e.SHA256); ok {
				t.Fatalf("a token's hash authenticates as the token")
			}
		}
	})
}

package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ballast-dev/ballast/internal/atomicfile"
)

// TokenFile is the suggested name of the token file in the data dir.
const TokenFile = "tokens.json"

// The token file (mode 0600) is JSON, not kube-apiserver's CSV
// "token,user,uid,groups": it never holds a usable secret, only the SHA-256
// of each token, so a token is shown once, by Create, and cannot be
// recovered from the file (a lost token is revoked and a new one created).
//
//	{"version": 1, "tokens": [
//	  {"id": "3f1a9c0b72de", "sha256": "<64 hex>", "user": "system:node:n1",
//	   "groups": ["system:nodes", "system:authenticated"], "created": "2026-..."}]}
//
// A token may expire ("expires", RFC 3339; absent: never) and may have a
// purpose: "join" marks a bootstrap token, good only for `ballast join`'s
// exchange of the token for the node's own certificate (CheckJoinToken); the
// API never accepts it as a credential. Join tokens that expired more than
// a day ago are dropped the next time the file is written.
//
// Tokens are 32 random bytes, base64url without padding (43 characters).
// The admin credential is not a token: it is a client certificate
// (CN=ballast-admin, O=system:masters) embedded in the admin kubeconfig by
// EnsureAdminKubeconfig, which keeps working across restarts because the CA
// is kept.
type tokenFile struct {
	Version int          `json:"version"`
	Tokens  []tokenEntry `json:"tokens"`
}

type tokenEntry struct {
	ID      string    `json:"id"`     // first 12 hex digits of the hash; names the token in lists
	SHA256  string    `json:"sha256"` // hex SHA-256 of the token
	User    string    `json:"user"`
	Groups  []string  `json:"groups,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
	Purpose string    `json:"purpose,omitempty"`

	sum [sha256.Size]byte
}

// PurposeJoin marks a bootstrap token (see CreateJoinToken).
const PurposeJoin = "join"

// Bootstrap tokens' user, as kubeadm names them.
const (
	BootstrapUserPrefix = "system:bootstrap:"
	GroupBootstrappers  = "system:bootstrappers"
)

// joinTokenRetention is how long an expired join token stays listed.
const joinTokenRetention = 24 * time.Hour

// Errors of CheckJoinToken.
var (
	ErrTokenExpired = errors.New("token expired")
	ErrNotJoinToken = errors.New("not a join token")
)

// TokenInfo describes a stored token, without any secret.
type TokenInfo struct {
	ID      string
	User    User
	Created time.Time
	// Expires is zero for a token that never expires.
	Expires time.Time
	Purpose string
}

// Expired tells whether the token has expired at now.
func (i TokenInfo) Expired(now time.Time) bool {
	return !i.Expires.IsZero() && !now.Before(i.Expires)
}

func (e tokenEntry) info() TokenInfo {
	return TokenInfo{ID: e.ID, User: User{Name: e.User, Groups: slices.Clone(e.Groups)}, Created: e.Created, Expires: e.Expires, Purpose: e.Purpose}
}

// TokenStore holds the bearer tokens of a token file. It reads the file at
// open, and again when it changed on disk: on a lookup that misses, so a
// token created by another process (`ballast server token create`) works at
// once, and at most once a second on hits, so a revoked token stops working
// within a second. Checking is one stat; the file is read only when it
// changed. Create and Revoke lock the file (flock on "<path>.lock") and re-read it
// before writing, so processes do not lose each other's tokens.
type TokenStore struct {
	path string

	mu      sync.RWMutex
	entries []tokenEntry
	stat    fs.FileInfo // of the file last read; nil if it did not exist

	// A hit re-checks the file at most every recheck, so a token revoked
	// by another process stops working within that time; a miss always does.
	recheck   time.Duration
	lastCheck atomic.Int64 // unix nanoseconds

	now func() time.Time // for tests
}

// tokenRecheck is how stale a hit may be: how long a revoked token may still
// work in a running server.
const tokenRecheck = time.Second

// OpenTokens opens the token file at path. A missing file is an empty store;
// the file is created by the first Create. Its directory must exist.
func OpenTokens(path string) (*TokenStore, error) {
	s := &TokenStore{path: path, recheck: tokenRecheck, now: time.Now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

// Path returns the token file's path.
func (s *TokenStore) Path() string { return s.path }

// reloadLocked reads the file if it changed since it was last read.
func (s *TokenStore) reloadLocked() error {
	s.lastCheck.Store(time.Now().UnixNano())
	fi, err := os.Stat(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		s.entries, s.stat = nil, nil
		return nil
	}
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	if s.stat != nil && os.SameFile(s.stat, fi) && s.stat.ModTime().Equal(fi.ModTime()) && s.stat.Size() == fi.Size() {
		return nil
	}
	entries, err := readTokenFile(s.path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		os.Chmod(s.path, 0o600)
	}
	s.entries, s.stat = entries, fi
	return nil
}

func readTokenFile(path string) ([]tokenEntry, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	var f tokenFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokens: %s: %w", path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("tokens: %s: unsupported version %d", path, f.Version)
	}
	for i := range f.Tokens {
		e := &f.Tokens[i]
		b, err := hex.DecodeString(e.SHA256)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("tokens: %s: token %q: sha256 must be 64 hex digits", path, e.ID)
		}
		if e.User == "" {
			return nil, fmt.Errorf("tokens: %s: token %q has no user", path, e.ID)
		}
		if e.Purpose != "" && e.Purpose != PurposeJoin {
			return nil, fmt.Errorf("tokens: %s: token %q has unknown purpose %q (known: %q, or none)", path, e.ID, e.Purpose, PurposeJoin)
		}
		copy(e.sum[:], b)
	}
	return f.Tokens, nil
}

// Lookup returns the user an API bearer token belongs to: a token that has
// not expired and has no purpose (a join token is no API credential). Every
// stored hash is compared in constant time, so timing tells nothing about
// which token is close to which.
func (s *TokenStore) Lookup(token string) (User, bool) {
	e, ok := s.find(token, false)
	if !ok || e.Purpose != "" || e.info().Expired(s.now()) {
		return User{}, false
	}
	return User{Name: e.User, Groups: slices.Clone(e.Groups)}, true
}

// CheckJoinToken checks a bootstrap token for `ballast join`: it must be
// stored, a join token, and not expired at now. The errors are ErrTokenExpired and
// ErrNotJoinToken (wrapped, with the token's ID and when it expired), and
// ErrInvalidToken for a token that is not stored (never created, or revoked).
//
// It always reads the file if it changed (a join is rare): a token revoked
// by another process is refused at once.
func (s *TokenStore) CheckJoinToken(token string, now time.Time) (TokenInfo, error) {
	e, ok := s.find(token, true)
	if !ok {
		return TokenInfo{}, ErrInvalidToken
	}
	info := e.info()
	if e.Purpose != PurposeJoin {
		return info, fmt.Errorf("token %s: %w", e.ID, ErrNotJoinToken)
	}
	if info.Expired(now) {
		return info, fmt.Errorf("join token %s expired at %s: %w", e.ID, info.Expires.UTC().Format(time.RFC3339), ErrTokenExpired)
	}
	return info, nil
}

// find returns the stored entry of token, re-reading the file as Lookup
// describes (fresh: always, if it changed).
func (s *TokenStore) find(token string, fresh bool) (tokenEntry, bool) {
	if token == "" {
		return tokenEntry{}, false
	}
	sum := sha256.Sum256([]byte(token))
	if !fresh && time.Since(time.Unix(0, s.lastCheck.Load())) < s.recheck {
		s.mu.RLock()
		e, ok := lookup(s.entries, sum)
		s.mu.RUnlock()
		if ok {
			return e, true
		}
	}
	// A miss (the token may have been created by another process), or a
	// hit on content older than recheck (it may have been revoked).
	s.mu.Lock()
	defer s.mu.Unlock()
	// On a read error (a file being edited by hand, say) the last good
	// content stays in use.
	_ = s.reloadLocked()
	return lookup(s.entries, sum)
}

func lookup(entries []tokenEntry, sum [sha256.Size]byte) (tokenEntry, bool) {
	found := -1
	for i := range entries {
		if subtle.ConstantTimeCompare(entries[i].sum[:], sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return tokenEntry{}, false
	}
	return entries[found], true
}

// Create makes a new API token for user, valid until revoked, and stores
// its hash. The token is returned only here: it cannot be read back from the
// file.
func (s *TokenStore) Create(user User) (string, error) {
	token, _, err := s.create(user, 0, "")
	return token, err
}

// CreateWithTTL is Create for a token that expires after ttl (0: never).
func (s *TokenStore) CreateWithTTL(user User, ttl time.Duration) (string, TokenInfo, error) {
	return s.create(user, ttl, "")
}

// CreateJoinToken makes a bootstrap token for `ballast join`, valid for ttl
// (it must be positive: a bootstrap token always expires). It authenticates
// nothing but the exchange for a node's certificate (CheckJoinToken).
func (s *TokenStore) CreateJoinToken(ttl time.Duration) (string, TokenInfo, error) {
	if ttl <= 0 {
		return "", TokenInfo{}, errors.New("tokens: a join token must expire: give a positive --ttl (e.g. 24h)")
	}
	return s.create(User{Groups: []string{GroupBootstrappers}}, ttl, PurposeJoin)
}

func (s *TokenStore) create(user User, ttl time.Duration, purpose string) (string, TokenInfo, error) {
	if user.Name == "" && purpose != PurposeJoin {
		return "", TokenInfo{}, errors.New("tokens: a token needs a user name")
	}
	if ttl < 0 {
		return "", TokenInfo{}, fmt.Errorf("tokens: negative lifetime %s", ttl)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", TokenInfo{}, fmt.Errorf("tokens: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(token))
	hexSum := hex.EncodeToString(sum[:])
	now := s.now().UTC()
	e := tokenEntry{
		ID:      hexSum[:12],
		SHA256:  hexSum,
		User:    user.Name,
		Groups:  slices.Clone(user.Groups),
		Created: now.Truncate(time.Second),
		Purpose: purpose,
		sum:     sum,
	}
	if e.User == "" {
		e.User = BootstrapUserPrefix + e.ID
	}
	if ttl > 0 {
		e.Expires = now.Add(ttl).Truncate(time.Second)
	}
	err := s.modify(func(entries []tokenEntry) ([]tokenEntry, error) {
		return append(entries, e), nil
	})
	if err != nil {
		return "", TokenInfo{}, err
	}
	return token, e.info(), nil
}

// CreateNodeToken makes a join token for node nodeName: user
// "system:node:<nodeName>" in groups system:nodes and system:authenticated.
func (s *TokenStore) CreateNodeToken(nodeName string) (string, error) {
	u, err := NodeUser(nodeName)
	if err != nil {
		return "", err
	}
	return s.Create(u)
}

// NodeUser returns the user a node acts as, checking that nodeName is a
// valid Node name (a DNS subdomain).
func NodeUser(nodeName string) (User, error) {
	if errs := validation.IsDNS1123Subdomain(nodeName); len(errs) > 0 {
		return User{}, fmt.Errorf("invalid node name %q: %s", nodeName, errs[0])
	}
	return User{Name: NodeUserPrefix + nodeName, Groups: []string{GroupNodes, GroupAuthenticated}}, nil
}

// Revoke removes the tokens whose ID is id, or all tokens of the user
// named id. It reports how many were removed. Other processes holding the
// file stop accepting the token within a second.
func (s *TokenStore) Revoke(id string) (int, error) {
	n := 0
	err := s.modify(func(entries []tokenEntry) ([]tokenEntry, error) {
		out := entries[:0:0]
		for _, e := range entries {
			if id != "" && (e.ID == id || e.User == id) {
				n++
				continue
			}
			out = append(out, e)
		}
		return out, nil
	})
	return n, err
}

// List returns the stored tokens (no secrets), as in the file now.
func (s *TokenStore) List() ([]TokenInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(); err != nil {
		return nil, err
	}
	out := make([]TokenInfo, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e.info())
	}
	return out, nil
}

// modify re-reads the file under an inter-process lock, applies fn and
// writes the result atomically (mode 0600).
func (s *TokenStore) modify(fn func([]tokenEntry) ([]tokenEntry, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := lockFile(s.path + ".lock")
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	defer unlock()
	entries, err := readTokenFile(s.path)
	if err != nil {
		return err
	}
	entries, err = fn(entries)
	if err != nil {
		return err
	}
	// Join tokens long expired go (kubeadm's token cleaner does the same).
	cutoff := s.now().Add(-joinTokenRetention)
	entries = slices.DeleteFunc(entries, func(e tokenEntry) bool {
		return e.Purpose == PurposeJoin && !e.Expires.IsZero() && e.Expires.Before(cutoff)
	})
	data, err := json.MarshalIndent(tokenFile{Version: 1, Tokens: entries}, "", "  ")
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	if err := atomicfile.WriteFile(s.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	s.entries = entries
	s.stat, _ = os.Stat(s.path)
	return nil
}

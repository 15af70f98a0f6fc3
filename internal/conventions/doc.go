// Package conventions holds no code: its tests enforce the repository's
// structure, as tailscale's deps tests do. No package under internal/
// imports test/ (the end-to-end harness); cmd/ballast imports only
// internal/cli and the standard library; every package under internal/
// and cmd/ says in a doc comment what it owns; no package under internal/
// is over about 1,500 lines of non-test code (size_test.go); the pure
// packages import no I/O (pure_test.go).
package conventions

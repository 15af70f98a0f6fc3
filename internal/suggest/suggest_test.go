package suggest

import (
	"slices"
	"testing"
)

func TestClosest(t *testing.T) {
	names := []string{"pod-manifest-path", "port", "data-dir", "imagePullPolicy", "image"}
	for _, tc := range []struct{ in, want string }{
		{"pod-manifest-pth", "pod-manifest-path"},
		{"pod-manifest-dir", ""}, // four edits
		{"portt", "port"},
		{"prot", ""},                           // a swap is two edits: too many for four letters
		{"imagepullpolicy", "imagePullPolicy"}, // case does not count
		{"datadir", "data-dir"},
		{"imag", "image"},
		{"xyz", ""},      // nothing close
		{"ab", ""},       // two edits are too many for a short name
		{"listen", ""},   // not a misspelling of anything
		{"port", "port"}, // itself
		{"", ""},
	} {
		if got := Closest(tc.in, slices.Values(names)); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Ties go to the name that sorts first, whatever the order given.
	if got := Closest("bat", slices.Values([]string{"cat", "bad"})); got != "bad" {
		t.Errorf("tie: %q", got)
	}
}

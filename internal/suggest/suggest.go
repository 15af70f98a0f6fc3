// Package suggest owns "did you mean?": the known name closest to a
// misspelt one, for the errors about unknown manifest fields and unknown
// configuration keys.
package suggest

import "strings"

// Closest returns the candidate closest to name (edit distance, ignoring
// case; ties go to the name that sorts first), or "" when none is close
// enough: at most 3 edits, and at most a third of name's length (at least 1).
func Closest(name string, candidates func(yield func(string) bool)) string {
	best, bestD := "", 4
	for c := range candidates {
		if d := distance(strings.ToLower(name), strings.ToLower(c)); d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	if best != "" && bestD <= max(1, len(name)/3) {
		return best
	}
	return ""
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

package manifest

import (
	"runtime"
	"strings"
	"testing"
)

func TestAliasBomb(t *testing.T) {
	data := `a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
`
	// Refused without expanding the aliases (9^9 nodes): a bound on the
	// memory allocated, not on time, so a slow machine cannot fail it.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Parse("/m/bomb.yaml", []byte(data), node)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("got %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
		t.Errorf("parsing the alias bomb allocated %d MiB", n>>20)
	}
	deep := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	if _, err := Parse("/m/deep.json", []byte(deep), node); err == nil {
		t.Errorf("deep: no error")
	}
	if _, err := Parse("/m/deep.yaml", []byte("a: "+deep), node); err == nil {
		t.Errorf("deep yaml: no error")
	}
}

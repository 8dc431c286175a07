package secrets

import (
	"testing"
	"time"
)

func TestHalfJitter_DrawsFromHalfToWhole(t *testing.T) {
	const d = 10 * time.Second
	lo, hi := d, time.Duration(0)
	for range 1000 {
		w := halfJitter(d)
		if w < d/2 || w > d {
			t.Fatalf("halfJitter(%v) = %v, outside [%v, %v]", d, w, d/2, d)
		}
		lo, hi = min(lo, w), max(hi, w)
	}
	if lo > 6*time.Second || hi < 9*time.Second {
		t.Errorf("1000 draws spread only over [%v, %v]", lo, hi)
	}
}

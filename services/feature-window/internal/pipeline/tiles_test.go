package pipeline

import (
	"math/rand/v2"
	"testing"
)

// TestTerminalTilesSum: window sums from the prefix sums equal a walk over the tiles, with
// transactions counted in between (which invalidate the sums from their tile on) and windows
// reaching past either end of the cached range.
func TestTerminalTilesSum(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	c := &terminalTiles{lo: 1000, tiles: make([][2]int64, 240)}
	for i := range c.tiles {
		c.tiles[i] = [2]int64{rng.Int64N(20), rng.Int64N(3)}
	}
	walk := func(lo, hi int64) (tx, fraud int64) {
		for tile := lo; tile <= hi; tile++ {
			if tile >= c.lo && tile <= c.hi() {
				tx, fraud = tx+c.tiles[tile-c.lo][0], fraud+c.tiles[tile-c.lo][1]
			}
		}
		return tx, fraud
	}
	for step := range 5000 {
		if rng.IntN(3) == 0 {
			c.addTx(c.lo - 5 + rng.Int64N(250)) // some outside the range: ignored
			continue
		}
		lo := c.lo - 10 + rng.Int64N(260)
		hi := lo + rng.Int64N(250) - 5 // sometimes hi < lo: empty
		tx, fraud := c.sum(lo, hi)
		if wtx, wfraud := walk(lo, hi); tx != wtx || fraud != wfraud {
			t.Fatalf("step %d: sum(%d, %d) = %d, %d; walk gives %d, %d", step, lo, hi, tx, fraud, wtx, wfraud)
		}
	}
}

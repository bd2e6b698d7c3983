package jsonenc

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/vigil-fraud/vigil/services/scoring/internal/jsonenc/jsonenctest"
)

func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	vals := append([]float64(nil), jsonenctest.EdgeFloats...)
	for _, v := range jsonenctest.EdgeFloats {
		vals = append(vals, -v, math.Nextafter(v, math.Inf(1)), math.Nextafter(v, math.Inf(-1)))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200_000 {
		vals = append(vals, math.Float64frombits(rng.Uint64()))                                 // any bit pattern
		vals = append(vals, float64(rng.IntN(1_000_000_000))/math.Pow10(rng.IntN(30)))          // decimals
		vals = append(vals, math.Pow10(rng.IntN(40)-30)*float64(1+rng.IntN(9))*(rng.Float64())) // around the cutoffs
		vals = append(vals, float64(rng.Int64N(1<<54)-1<<53), float64(rng.Int64N(1<<20)-1<<19)) // whole numbers
		vals = append(vals, float64(1<<53-rng.IntN(4)), -float64(1<<53-rng.IntN(4)), float64(1<<53+2*rng.IntN(4)))
	}
	for _, v := range vals {
		want, wantErr := json.Marshal(v)
		got, gotErr := AppendFloat([]byte("x"), v)
		if wantErr != nil || gotErr != nil {
			if wantErr == nil || gotErr == nil || wantErr.Error() != gotErr.Error() {
				t.Fatalf("%v (%#x): error %v, encoding/json %v", v, math.Float64bits(v), gotErr, wantErr)
			}
			continue
		}
		if string(got) != "x"+string(want) {
			t.Fatalf("%v (%#x): %s, encoding/json %s", v, math.Float64bits(v), got[1:], want)
		}
	}
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		_, wantErr := json.Marshal(v)
		if _, err := AppendFloat(nil, v); err == nil || err.Error() != wantErr.Error() {
			t.Errorf("%v: error %v, encoding/json %v", v, err, wantErr)
		}
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	strs := append([]string(nil), jsonenctest.EdgeStrings...)
	for b := range 256 {
		strs = append(strs, string([]byte{byte(b)}), "x"+string([]byte{byte(b)})+"y")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 50_000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		strs = append(strs, string(b), string(rune(rng.IntN(0x110000))))
	}
	for _, s := range strs {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("%q: %s, encoding/json %s", s, got[1:], want)
		}
	}
}

func FuzzAppendFloat(f *testing.F) {
	for _, v := range jsonenctest.EdgeFloats {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		want, wantErr := json.Marshal(v)
		got, err := AppendFloat(nil, v)
		if (err != nil) != (wantErr != nil) || err != nil && err.Error() != wantErr.Error() || err == nil && string(got) != string(want) {
			t.Fatalf("%v: %s %v, encoding/json %s %v", v, got, err, want, wantErr)
		}
	})
}

func FuzzAppendString(f *testing.F) {
	for _, s := range jsonenctest.EdgeStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("%q: %s, encoding/json %s", s, got, want)
		}
	})
}

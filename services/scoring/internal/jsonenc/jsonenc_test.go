package jsonenc

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

var tenth = 0.1 // a variable: 0.1 + 0.2 in constants would be exactly 0.3

// edgeFloats are the values where encoding/json's float format changes or is easy to get wrong.
var edgeFloats = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.1, tenth + 0.2, 1.5, -2.25, 100, 123456.789,
	1e-6, -1e-6, math.Nextafter(1e-6, 0), 1e-7, -1e-7, 1e-10, 1.5e-10, 1e-100, 2.5e-300,
	1e20, 1e21, -1e21, math.Nextafter(1e21, 0), 1e22, 1.2345e25, 1e100, 1e300, math.MaxFloat64, -math.MaxFloat64,
	1 << 53, 1<<53 + 2, 123456789012345678, 9007199254740993, math.MaxInt64, math.MinInt64, 1e15, 1e16, 1e17,
	math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64, 2.2250738585072014e-308, 2.225073858507201e-308, 1e-320,
	1.0 / 3, 2.0 / 3, math.Pi, math.E, 0.000001234, 12345678.9e-20,
}

// edgeStrings are the characters encoding/json escapes or replaces, and their neighbours.
var edgeStrings = []string{
	"", "amount", `a"b`, `back\slash`, "<tag>&amp;", "tab\there", "new\nline\r", "\b\f", "\x00\x01\x1f", "\x7f",
	"é", "日本", "\u2028\u2029", "line\u2028sep", "\xff", "a\xffb", "\xe2\x82", "\ufffd", "😀", "\xf0\x9f\x98", "/", "'",
	"FEATURE:amount", "score 0.9700 ≥ 0.9500", "rule amount-review v1 → review",
}

func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	vals := append([]float64(nil), edgeFloats...)
	for _, v := range edgeFloats {
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
	strs := append([]string(nil), edgeStrings...)
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
	for _, v := range edgeFloats {
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
	for _, s := range edgeStrings {
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

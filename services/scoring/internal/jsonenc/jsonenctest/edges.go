// Package jsonenctest holds the values jsonenc's tests, and those of its users, compare with
// encoding/json.
package jsonenctest

import "math"

var tenth = 0.1 // a variable: 0.1 + 0.2 in constants would be exactly 0.3

// EdgeFloats are the values where encoding/json's float format changes or is easy to get wrong.
var EdgeFloats = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.1, tenth + 0.2, 1.5, -2.25, 100, 123456.789,
	1e-6, -1e-6, math.Nextafter(1e-6, 0), 1e-7, -1e-7, 1e-10, 1.5e-10, 1e-100, 2.5e-300,
	1e20, 1e21, -1e21, math.Nextafter(1e21, 0), 1e22, 1.2345e25, 1e100, 1e300, math.MaxFloat64, -math.MaxFloat64,
	1 << 53, 1<<53 + 2, 123456789012345678, 9007199254740993, math.MaxInt64, math.MinInt64, 1e15, 1e16, 1e17,
	math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64, 2.2250738585072014e-308, 2.225073858507201e-308, 1e-320,
	1.0 / 3, 2.0 / 3, math.Pi, math.E, 0.000001234, 12345678.9e-20,
}

// EdgeStrings are the characters encoding/json escapes or replaces, and their neighbours.
var EdgeStrings = []string{
	"", "amount", `a"b`, `back\slash`, "<tag>&amp;", "tab\there", "new\nline\r", "\b\f", "\x00\x01\x1f", "\x7f",
	"é", "日本", "\u2028\u2029", "line\u2028sep", "\xff", "a\xffb", "\xe2\x82", "\ufffd", "😀", "\xf0\x9f\x98", "/", "'",
	"FEATURE:amount", "score 0.9700 ≥ 0.9500", "rule amount-review v1 → review",
}

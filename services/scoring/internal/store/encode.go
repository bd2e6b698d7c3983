package store

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// The JSON of the jsonb columns is written by hand: through encoding/json the sink spent a
// third of the service's CPU on reflection and on sorting the same 38 feature names for every
// row. Every function here writes exactly the bytes json.Marshal wrote for the row types it
// replaces (reasonRow, WindowRow, HitRow, map[string]float64), so stored values do not change;
// TestEncodersMatchEncodingJSON holds them to that.

// appendJSONString appends s as json.Marshal writes a string: HTML-escaped, invalid UTF-8 as
// U+FFFD, U+2028 and U+2029 escaped (encoding/json's appendString with escapeHTML).
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendJSONFloat appends f as json.Marshal writes a float64: the shortest representation that
// round-trips, in exponent form only below 1e-6 or from 1e21 on, with a one-digit negative
// exponent not zero-padded. NaN and ±Inf fail with the error json.Marshal gives.
func appendJSONFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		_, err := json.Marshal(f)
		return dst, err
	}
	// Counts and flags, most of a feature vector, are whole numbers. Below 2^53 every whole
	// number is a float64, so its shortest round-trip digits are exactly its integer digits.
	if i := int64(f); float64(i) == f && i > -1<<53 && i < 1<<53 && (i != 0 || !math.Signbit(f)) {
		return strconv.AppendInt(dst, i, 10), nil
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// featureLayout is how json.Marshal writes the map[string]float64 that names and a vector of
// at least len(names) values make: keys sorted bytewise, a repeated name holding the value of
// its last position. Building it once per feature schema saves the map and the sort per row.
type featureLayout struct {
	names int      // len(names): the values it reads are values[:names]
	index []int    // per key, in key order: the position of its value
	keys  []string // per key: the escaped key and a colon, after a comma but for the first
}

func newFeatureLayout(names []string) *featureLayout {
	last := make(map[string]int, len(names))
	for i, n := range names {
		last[n] = i
	}
	l := &featureLayout{names: len(names), index: make([]int, 0, len(last)), keys: make([]string, 0, len(last))}
	for _, i := range last {
		l.index = append(l.index, i)
	}
	slices.SortFunc(l.index, func(a, b int) int { return strings.Compare(names[a], names[b]) })
	for k, i := range l.index {
		var key []byte
		if k > 0 {
			key = append(key, ',')
		}
		key = append(appendJSONString(key, names[i]), ':')
		l.keys = append(l.keys, string(key))
	}
	return l
}

// appendJSON appends the object of values; len(values) must be at least l.names.
func (l *featureLayout) appendJSON(dst []byte, values []float64) ([]byte, error) {
	dst = append(dst, '{')
	for k, i := range l.index {
		dst = append(dst, l.keys[k]...)
		var err error
		if dst, err = appendJSONFloat(dst, values[i]); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// appendReasons writes what json.Marshal wrote for the []reasonRow of rs.
func appendReasons(dst []byte, rs []*fraudv1.Reason) ([]byte, error) {
	dst = append(dst, '[')
	for i, r := range rs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(append(dst, `{"code":`...), r.GetCode())
		if d := r.GetDescription(); d != "" {
			dst = appendJSONString(append(dst, `,"description":`...), d)
		}
		if w := r.GetWeight(); w != 0 {
			var err error
			if dst, err = appendJSONFloat(append(dst, `,"weight":`...), w); err != nil {
				return dst, err
			}
		}
		dst = append(dst, '}')
	}
	return append(dst, ']'), nil
}

// appendWindow writes what json.Marshal wrote for the WindowRow of w.
func appendWindow(dst []byte, w *fraudv1.AccountWindow) ([]byte, error) {
	dst = strconv.AppendInt(append(dst, `{"reviews_1h":`...), int64(w.GetReviews_1H()), 10)
	dst = strconv.AppendInt(append(dst, `,"declines_1h":`...), int64(w.GetDeclines_1H()), 10)
	dst = strconv.AppendInt(append(dst, `,"reviews_24h":`...), int64(w.GetReviews_24H()), 10)
	dst = strconv.AppendInt(append(dst, `,"declines_24h":`...), int64(w.GetDeclines_24H()), 10)
	dst, err := appendJSONFloat(append(dst, `,"max_score_24h":`...), w.GetMaxScore_24H())
	if err != nil {
		return dst, err
	}
	return append(dst, '}'), nil
}

// appendHits writes what json.Marshal wrote for the []HitRow of hs.
func appendHits(dst []byte, hs []*fraudv1.ListHit) []byte {
	dst = append(dst, '[')
	for i, h := range hs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(append(dst, `{"list":`...), h.GetList())
		dst = appendJSONString(append(dst, `,"kind":`...), h.GetKind())
		if r := h.GetReason(); r != "" {
			dst = appendJSONString(append(dst, `,"reason":`...), r)
		}
		if v := h.GetValueHash(); v != "" {
			dst = appendJSONString(append(dst, `,"value_hash":`...), v)
		}
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendCauses appends the Postgres text[] literal of the causes' names: every element
// quoted, backslash and double quote escaped with a backslash.
func appendCauses(dst []byte, causes []fraudv1.DegradedCause) []byte {
	dst = append(dst, '{')
	for i, c := range causes {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		name := causeName(c)
		for j := 0; j < len(name); j++ {
			if name[j] == '\\' || name[j] == '"' {
				dst = append(dst, '\\')
			}
			dst = append(dst, name[j])
		}
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

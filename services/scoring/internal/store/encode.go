package store

import (
	"slices"
	"strconv"
	"strings"

	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/jsonenc"
)

// The JSON of the jsonb columns is written by hand: encoding/json took most of the sink's
// encoding time (a quarter of the service's CPU at 2,000 tx/s), in reflection and in sorting
// the same 38 feature names for every row. Every function here writes exactly the bytes json.Marshal wrote for the row types it
// replaces (reasonRow, WindowRow, HitRow, map[string]float64), so stored values do not change;
// TestColumnsMatchReference and TestFeatureLayoutMatchesMap hold them to that.

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
		key = append(jsonenc.AppendString(key, names[i]), ':')
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
		if dst, err = jsonenc.AppendFloat(dst, values[i]); err != nil {
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
		dst = jsonenc.AppendString(append(dst, `{"code":`...), r.GetCode())
		if d := r.GetDescription(); d != "" {
			dst = jsonenc.AppendString(append(dst, `,"description":`...), d)
		}
		if w := r.GetWeight(); w != 0 {
			var err error
			if dst, err = jsonenc.AppendFloat(append(dst, `,"weight":`...), w); err != nil {
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
	dst, err := jsonenc.AppendFloat(append(dst, `,"max_score_24h":`...), w.GetMaxScore_24H())
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
		dst = jsonenc.AppendString(append(dst, `{"list":`...), h.GetList())
		dst = jsonenc.AppendString(append(dst, `,"kind":`...), h.GetKind())
		if r := h.GetReason(); r != "" {
			dst = jsonenc.AppendString(append(dst, `,"reason":`...), r)
		}
		if v := h.GetValueHash(); v != "" {
			dst = jsonenc.AppendString(append(dst, `,"value_hash":`...), v)
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

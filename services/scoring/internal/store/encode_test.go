package store

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/jsonenc/jsonenctest"
)

// TestFeatureLayoutMatchesMap: the object is the map[string]float64 the old code marshalled,
// repeated names included (the last value wins), in encoding/json's key order.
func TestFeatureLayoutMatchesMap(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	tests := [][]string{
		nil,
		{"amount"},
		features.Names,
		jsonenctest.EdgeStrings,
		{"b", "a", "b", "a", "c"}, // repeated: last position wins
		{"a", "a\x00", "ab", "A", "_", "é", "z"},    // bytewise order
		{"\xff", "\ufffd", "\u2028", "<", "&", ">"}, // different keys that escape alike or not at all
	}
	for range 200 {
		names := make([]string, rng.IntN(50))
		for i := range names {
			names[i] = jsonenctest.EdgeStrings[rng.IntN(len(jsonenctest.EdgeStrings))] + features.Names[rng.IntN(len(features.Names))][:rng.IntN(4)]
		}
		tests = append(tests, names)
	}
	for _, names := range tests {
		values := make([]float64, len(names))
		m := map[string]float64{}
		for i, n := range names {
			values[i] = jsonenctest.EdgeFloats[rng.IntN(len(jsonenctest.EdgeFloats))]
			m[n] = values[i]
		}
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := newFeatureLayout(names).appendJSON(nil, values)
		if err != nil || string(got) != string(want) {
			t.Fatalf("names %q:\n got %s %v\nwant %s", names, got, err, want)
		}
	}
}

type edgeDecision struct {
	name string
	dec  func(d *fraudv1.Decision)
	// err is the error the batch fails with, if any
	err string
}

// edgeDecisions change one part of a full decision at a time.
var edgeDecisions = []edgeDecision{
	{name: "full", dec: func(*fraudv1.Decision) {}},
	{"current schema, names left out", func(d *fraudv1.Decision) {
		d.Input.Features = &fraudv1.FeatureVector{SchemaVersion: features.SchemaVersion, SchemaHash: features.SchemaHash(),
			Values: cycle(jsonenctest.EdgeFloats, len(features.Names))}
	}, ""},
	{"current schema, fewer values than names", func(d *fraudv1.Decision) {
		d.Input.Features = &fraudv1.FeatureVector{SchemaVersion: features.SchemaVersion, SchemaHash: features.SchemaHash(),
			Values: cycle(jsonenctest.EdgeFloats, 7)}
	}, ""},
	{"current schema, more values than names", func(d *fraudv1.Decision) {
		d.Input.Features = &fraudv1.FeatureVector{SchemaVersion: features.SchemaVersion, SchemaHash: features.SchemaHash(),
			Values: cycle(jsonenctest.EdgeFloats, len(features.Names)+3)}
	}, ""},
	{"unknown schema, no names", func(d *fraudv1.Decision) {
		d.Input.Features = &fraudv1.FeatureVector{SchemaVersion: "fs-0", SchemaHash: "x", Values: []float64{1, 2}}
	}, ""},
	{"carried names needing escapes, repeated, edge values", func(d *fraudv1.Decision) {
		d.Input.Features = &fraudv1.FeatureVector{SchemaVersion: "fs-1", Names: append(append([]string(nil), protoStrings...), "amount", "é"),
			Values: cycle(jsonenctest.EdgeFloats, len(protoStrings)+2)}
	}, ""},
	{"carried names, fewer values", func(d *fraudv1.Decision) {
		d.Input.Features = &fraudv1.FeatureVector{Names: []string{"b", "a", "c"}, Values: []float64{1}}
	}, ""},
	{"NaN under a name a later position overwrites", func(d *fraudv1.Decision) {
		d.Input.Features = &fraudv1.FeatureVector{Names: []string{"a", "b", "a"}, Values: []float64{math.NaN(), 1, 2}}
	}, ""},
	{"NaN feature", func(d *fraudv1.Decision) {
		d.Input.Features = &fraudv1.FeatureVector{Names: []string{"z", "a", "b"}, Values: []float64{math.NaN(), 1, math.Inf(1)}}
	}, "encode features of dec_NaN feature: json: unsupported value: +Inf"},
	{"-Inf feature, current schema", func(d *fraudv1.Decision) {
		v := cycle(jsonenctest.EdgeFloats, len(features.Names))
		v[5] = math.Inf(-1)
		d.Input.Features = &fraudv1.FeatureVector{SchemaVersion: features.SchemaVersion, SchemaHash: features.SchemaHash(), Values: v}
	}, "encode features of dec_-Inf feature, current schema: json: unsupported value: -Inf"},
	{name: "empty input", dec: func(d *fraudv1.Decision) { d.Input = &fraudv1.EnrichedTransaction{} }},
	{name: "no input", dec: func(d *fraudv1.Decision) { d.Input = nil }},
	{name: "no reasons", dec: func(d *fraudv1.Decision) { d.Reasons = nil }},
	{"reasons with escapes and edge weights", func(d *fraudv1.Decision) {
		d.Reasons = nil
		for i, s := range protoStrings {
			d.Reasons = append(d.Reasons, &fraudv1.Reason{Code: s, Description: protoStrings[(i+3)%len(protoStrings)], Weight: jsonenctest.EdgeFloats[i%len(jsonenctest.EdgeFloats)]})
		}
	}, ""},
	{"NaN reason weight", func(d *fraudv1.Decision) {
		d.Reasons = append(d.Reasons, &fraudv1.Reason{Code: "X", Weight: math.NaN()})
	}, "encode reasons of dec_NaN reason weight: json: unsupported value: NaN"},
	{name: "no window", dec: func(d *fraudv1.Decision) { d.AccountWindow = nil }},
	{name: "zero window", dec: func(d *fraudv1.Decision) { d.AccountWindow = &fraudv1.AccountWindow{} }},
	{"extreme window", func(d *fraudv1.Decision) {
		d.AccountWindow = &fraudv1.AccountWindow{Reviews_1H: math.MaxInt32, Declines_1H: math.MinInt32, Reviews_24H: -1,
			Declines_24H: 7, MaxScore_24H: 1e-7}
	}, ""},
	{"Inf window score", func(d *fraudv1.Decision) { d.AccountWindow.MaxScore_24H = math.Inf(1) },
		"encode account window of dec_Inf window score: json: unsupported value: +Inf"},
	{name: "no hits", dec: func(d *fraudv1.Decision) { d.ListHits = nil }},
	{"hits with escapes, optional fields left out", func(d *fraudv1.Decision) {
		d.ListHits = []*fraudv1.ListHit{{List: `bl"ock`, Kind: "<card>"}, {List: "allow", Kind: "account", Reason: "vip\u2028\ufffd"},
			{List: "block", Kind: "ip", ValueHash: "ab&cd"}}
	}, ""},
	{name: "no causes", dec: func(d *fraudv1.Decision) { d.DegradedCauses = nil }},
	{"unknown cause", func(d *fraudv1.Decision) {
		d.DegradedCauses = []fraudv1.DegradedCause{fraudv1.DegradedCause_DEGRADED_CAUSE_UNSPECIFIED, 9, fraudv1.DegradedCause_DEGRADED_CAUSE_MODEL}
	}, ""},
	{name: "no shadow", dec: func(d *fraudv1.Decision) { d.ShadowModelVersion, d.ShadowScore = "", 0.5 }},
	{name: "unknown action", dec: func(d *fraudv1.Decision) { d.Action = 7 }},
	{name: "no times", dec: func(d *fraudv1.Decision) { d.ReceivedTime, d.DecidedTime = nil, nil }},
}

// protoStrings are the jsonenctest.EdgeStrings a proto3 string can hold (valid UTF-8): no decoded record
// has any other.
var protoStrings = func() []string {
	var out []string
	for _, s := range jsonenctest.EdgeStrings {
		if utf8.ValidString(s) {
			out = append(out, s)
		}
	}
	return out
}()

func cycle(vals []float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = vals[i%len(vals)]
	}
	return out
}

func edgeRecord(tb testing.TB, i int, e edgeDecision) *kgo.Record {
	tb.Helper()
	now := timestamppb.New(time.Date(2026, 5, 1, 12, 0, 0, 123456000, time.UTC))
	d := &fraudv1.Decision{
		DecisionId: "dec_" + e.name, TransactionId: e.name, AccountId: "acct", Action: fraudv1.Action_ACTION_REVIEW, Score: 0.97,
		Reasons:      []*fraudv1.Reason{{Code: "MODEL_SCORE", Description: `score "0.97" \ high`, Weight: 0.5}, {Code: "BARE"}},
		ModelVersion: "m1", RuleSetVersion: "r1", FeatureSchemaVersion: "fs-2", ReviewThreshold: 0.8, DeclineThreshold: 0.95,
		AmountMinor: 99, Currency: "EUR", ReceivedTime: now, DecidedTime: now, InputHash: "h", Degraded: true,
		ShadowModelVersion: "m2", ShadowScore: 0.25,
		AccountWindow:  &fraudv1.AccountWindow{Reviews_1H: 1, Declines_24H: 2, MaxScore_24H: tenth + 0.2},
		ListHits:       []*fraudv1.ListHit{{List: "blocked", Kind: "terminal", Reason: "seen", ValueHash: "ab"}},
		DegradedCauses: []fraudv1.DegradedCause{fraudv1.DegradedCause_DEGRADED_CAUSE_MODEL, fraudv1.DegradedCause_DEGRADED_CAUSE_DECISION_WINDOWS},
		Input: &fraudv1.EnrichedTransaction{
			Transaction: &fraudv1.Transaction{Id: e.name, AccountId: "acct", AmountMinor: 99, Card: &fraudv1.Card{Token: "tok"}, EventTime: now},
			Features:    &fraudv1.FeatureVector{Names: []string{"amount", "is_night"}, Values: []float64{0.99, 1}},
		},
	}
	e.dec(d)
	r, err := kafka.NewRecord("decisions.v1", "acct", d)
	if err != nil {
		tb.Fatal(err)
	}
	r.Partition, r.Offset = int32(i%3), int64(i)
	return r
}

// TestColumnsMatchReference: every column value of every row is what the encoding/json-based
// code (reference_test.go) produced, byte for byte, and a row it refused fails the batch with
// the same error.
func TestColumnsMatchReference(t *testing.T) {
	t.Parallel()
	d := NewDecisions(slog.New(slog.DiscardHandler))
	undecodable := &kgo.Record{Value: []byte("not a decision"), Offset: 99}
	type batch struct {
		recs []*kgo.Record
		err  string
	}
	batches := map[string]batch{"realistic": {recs: realisticRecords(t, 300)}, "empty": {}, "undecodable only": {recs: []*kgo.Record{undecodable}}}
	var all []*kgo.Record
	for i, e := range edgeDecisions {
		r := edgeRecord(t, i, e)
		batches[e.name] = batch{[]*kgo.Record{r}, e.err}
		batches[e.name+", among others"] = batch{[]*kgo.Record{edgeRecord(t, 100, edgeDecisions[0]), undecodable, r, edgeRecord(t, 101, edgeDecisions[1])}, e.err}
		if e.err == "" {
			all = append(all, r)
		}
	}
	batches["every edge in one batch"] = batch{recs: all}
	for name, b := range batches {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want, wantN, wantErr := d.referenceColumns(b.recs)
			got, gotN, gotErr := d.columns(b.recs)
			if wantErr != nil || gotErr != nil || b.err != "" {
				if wantErr == nil || gotErr == nil || gotErr.Error() != wantErr.Error() || gotErr.Error() != b.err {
					t.Fatalf("error %v, reference %v, want %s", gotErr, wantErr, b.err)
				}
				return
			}
			if gotN != wantN {
				t.Fatalf("%d rows, reference %d", gotN, wantN)
			}
			if wantN == 0 {
				return
			}
			wantArgs, gotArgs := want.args(), got.args()
			for i := range wantArgs {
				if !reflect.DeepEqual(gotArgs[i], wantArgs[i]) {
					t.Errorf("column $%d:\n got %s\nwant %s", i+1, show(gotArgs[i]), show(wantArgs[i]))
				}
			}
		})
	}
}

// show prints a column with pointers followed and nil slices told from empty ones.
func show(col any) string {
	v := reflect.ValueOf(col)
	var b strings.Builder
	for i := range v.Len() {
		e := v.Index(i)
		switch {
		case e.Kind() == reflect.Pointer && e.IsNil(), e.Kind() == reflect.Slice && e.IsNil():
			b.WriteString("<nil> ")
		case e.Kind() == reflect.Pointer:
			fmt.Fprintf(&b, "%q ", fmt.Sprint(e.Elem().Interface()))
		default:
			fmt.Fprintf(&b, "%q ", fmt.Sprint(e.Interface()))
		}
	}
	return b.String()
}

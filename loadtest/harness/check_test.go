package harness

import "testing"

func TestCheck(t *testing.T) {
	t.Parallel()
	clean := func() CheckInput {
		return CheckInput{
			Sent:       map[string]Outcome{"s:a": Acked, "s:b": Acked, "s:c": Rejected, "s:d": Unknown},
			Decisions:  map[string]int{"s:a": 1, "s:b": 1},
			DecisionOf: map[string]string{"da": "s:a", "db": "s:b"},
			AlertsPer:  map[string]int{"da": 1},
		}
	}
	for _, tc := range []struct {
		name  string
		edit  func(*CheckInput)
		kinds []string
	}{
		{"clean", func(*CheckInput) {}, nil},
		{"unknown outcome may be decided", func(in *CheckInput) { in.Decisions["s:d"] = 1 }, nil},
		{"lost", func(in *CheckInput) { delete(in.Decisions, "s:b") }, []string{"acknowledged transaction without a decision"}},
		{"duplicate", func(in *CheckInput) { in.Decisions["s:a"] = 2 }, []string{"transaction with more than one decision"}},
		{"rejected but decided", func(in *CheckInput) { in.Decisions["s:c"] = 1 }, []string{"decision for a rejected transaction"}},
		{"phantom", func(in *CheckInput) { in.Decisions["s:zz"] = 1 }, []string{"decision without a sent transaction"}},
		{"two alerts", func(in *CheckInput) { in.AlertsPer["da"] = 2 }, []string{"decision with more than one alert"}},
		{"orphan alert", func(in *CheckInput) { in.AlertsPer["dx"] = 1 }, []string{"alert without a decision"}},
		{"5xx", func(in *CheckInput) { in.ServerErrors = 3 }, []string{"5xx answers"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := clean()
			tc.edit(&in)
			got := Check(in)
			if len(got) != len(tc.kinds) {
				t.Fatalf("violations %v, want kinds %v", got, tc.kinds)
			}
			for i, k := range tc.kinds {
				if got[i].Kind != k {
					t.Fatalf("violation %v, want %s", got[i], k)
				}
			}
			if tc.name == "5xx" && got[0].Count != 3 {
				t.Fatalf("5xx count %d", got[0].Count)
			}
		})
	}
}

func TestMeasure(t *testing.T) {
	t.Parallel()
	truth := map[string]bool{"a": true, "b": true, "c": false, "d": false, "e": true}
	flagged := map[string]bool{"a": true, "c": true, "x": true}
	q := Measure(truth, flagged, []string{"a", "b", "c", "d", "x"}) // e not decided, x not ours
	if q.Decided != 4 || q.Frauds != 2 || q.Flagged != 2 || q.TruePositives != 1 {
		t.Fatalf("%+v", q)
	}
	if q.Precision != 0.5 || q.Recall != 0.5 || q.FraudRate != 0.5 {
		t.Fatalf("%+v", q)
	}
	if z := Measure(nil, nil, nil); z.Precision != 0 || z.Recall != 0 {
		t.Fatalf("empty: %+v", z)
	}
}

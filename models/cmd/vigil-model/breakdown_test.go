package main

import (
	"slices"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/models/dataset"
)

var t0 = time.Date(2018, 4, 1, 0, 0, 0, 0, time.UTC)

func row(hours int, terminal, customer string, scenario int) dataset.Row {
	return dataset.Row{Time: t0.Add(time.Duration(hours) * time.Hour), Terminal: terminal, Customer: customer,
		Fraud: scenario != 0, Scenario: scenario}
}

func TestCompromiseStart(t *testing.T) {
	t.Parallel()
	rows := []dataset.Row{
		row(0, "A", "c1", 0),
		row(1, "A", "c2", 2), // A's compromise starts
		row(2, "B", "c3", 2), // B's, independent of A's
		row(3, "A", "c4", 2),
		row(4, "A", "c5", 3), // a compromised card at A does not end A's compromise
		row(5, "A", "c6", 2),
		row(6, "A", "c7", 0), // a legitimate transaction at A does
		row(7, "A", "c8", 2), // a new compromise
	}
	got := compromiseStart(rows, len(rows))
	want := []time.Time{{}, rows[1].Time, rows[2].Time, rows[1].Time, {}, rows[1].Time, {}, rows[7].Time}
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("compromiseStart = %v, want %v", got, want)
	}
}

func TestFraudGroup(t *testing.T) {
	t.Parallel()
	delay := 7 * 24 * time.Hour
	for _, tc := range []struct {
		name  string
		r     dataset.Row
		start time.Time
		want  string
	}{
		{"legitimate", row(0, "A", "c", 0), time.Time{}, ""},
		{"amount", row(0, "A", "c", 1), time.Time{}, groupAmount},
		{"terminal, a day old", row(24, "A", "c", 2), t0, groupTerminalNew},
		{"terminal, just under the delay", row(7*24-1, "A", "c", 2), t0, groupTerminalNew},
		{"terminal, exactly the delay", row(7*24, "A", "c", 2), t0, groupTerminalOld},
		{"customer", row(0, "A", "c", 3), time.Time{}, groupCustomer},
	} {
		if got := fraudGroup(tc.r, tc.start, delay); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestBreakdownAndCeiling(t *testing.T) {
	t.Parallel()
	delay := 7 * 24 * time.Hour
	rows := []dataset.Row{
		row(0, "T", "c0", 2),      // 0: terminal compromised at hour 0
		row(1, "U", "c1", 0),      // 1
		row(2, "U", "c2", 0),      // 2
		row(3, "U", "c3", 1),      // 3
		row(4, "V", "c4", 0),      // 4
		row(7*24+5, "T", "c5", 2), // 5: T's compromise is 7 days old
		row(7*24+6, "V", "c6", 3), // 6
		row(7*24+7, "V", "c7", 0), // 7
	}
	start := compromiseStart(rows, len(rows))
	idx := []int{0, 1, 2, 3, 4, 5, 6, 7}
	// Legitimate rows score 0.2, 0.4, 0.6, 0.8 (rows 1, 2, 4, 7).
	scores := []float64{0.5, 0.2, 0.4, 0.9, 0.6, 0.3, 0.6, 0.8}
	got := breakdown(rows, start, idx, scores, delay)
	want := []groupResult{
		{groupAmount, 1, 0.25, 1},               // 0.9 beats all four
		{groupTerminalNew, 1, 0.25, 2.0 / 4},    // 0.5 beats 0.2 and 0.4
		{groupTerminalOld, 1, 0.25, 1.0 / 4},    // 0.3 beats 0.2
		{groupCustomer, 1, 0.25, (2 + 0.5) / 4}, // 0.6 beats 0.2, 0.4, ties 0.6
	}
	if !slices.Equal(got, want) {
		t.Errorf("breakdown =\n%v, want\n%v", got, want)
	}

	c := ceiling(rows, start, idx, t0, delay, 2)
	// Three detectable frauds above everything; the young terminal fraud among the four
	// legitimate rows at random: AUC = (3·4 + r) / (4·4) and AP = 3/4 + 1/4 · 4/(4+q), with
	// r legitimate rows below it and q = 4-r above.
	if r := c.AUC*16 - 12; r < 0 || r > 4 || r != float64(int(r)) || c.AP != 0.75+0.25*4/(4+(4-r)) {
		t.Errorf("ceiling = %+v", c)
	}
	// Without the young compromise the ceiling is perfect.
	c = ceiling(rows, start, idx[1:], t0, delay, 2)
	if c.AUC != 1 || c.AP != 1 {
		t.Errorf("ceiling without undetectable frauds = %+v, want AUC and AP 1", c)
	}
}

package dataset

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/models/features"
	"github.com/vigil-fraud/vigil/models/simulator"
)

func simRows(t *testing.T, days int) []Row {
	t.Helper()
	c := simulator.Default()
	c.Customers, c.Terminals, c.Days = 200, 400, days
	d, err := simulator.Generate(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := d.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows, err := ReadCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(d.Transactions) {
		t.Fatalf("read %d rows, wrote %d", len(rows), len(d.Transactions))
	}
	return rows
}

func TestReadCSVErrorsNameLineAndColumn(t *testing.T) {
	t.Parallel()
	const header = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO\n"
	good := "0,2018-04-01 00:01:17,3275,7788,10.12,77,0,0,0\n"
	tests := map[string]struct{ in, want string }{
		"missing column": {"TRANSACTION_ID,TX_DATETIME\n", "lacks column CUSTOMER_ID"},
		"bad time":       {header + "0,yesterday,1,2,3.00,0,0,0,0\n", "line 2 column TX_DATETIME"},
		"bad amount":     {header + good + "1,2018-04-01 00:02:00,1,2,abc,0,0,0,0\n", "line 3 column TX_AMOUNT"},
		"bad label":      {header + "0,2018-04-01 00:01:17,1,2,3.00,0,0,2,0\n", "column TX_FRAUD: \"2\""},
		"unsorted":       {header + good + "1,2018-04-01 00:00:00,1,2,3.00,0,0,0,0\n", "goes back in time"},
		"no rows":        {header, "no rows"},
		"empty":          {"", "header"},
		"empty customer": {header + "0,2018-04-01 00:01:17,,2,3.00,0,0,0,0\n", "column CUSTOMER_ID: is empty"},
	}
	for name, tt := range tests {
		_, err := ReadCSV(strings.NewReader(tt.in))
		if !errors.Is(err, ErrInvalidCSV) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want ErrInvalidCSV containing %q", name, err, tt.want)
		}
	}
	// Other column orders and no scenario column are fine (a user's labelled history).
	rows, err := ReadCSV(strings.NewReader("TX_FRAUD,TX_AMOUNT,TERMINAL_ID,CUSTOMER_ID,TX_DATETIME,TRANSACTION_ID\n1,12.5,t1,c1,2018-04-01T10:00:00Z,x\n"))
	if err != nil || len(rows) != 1 || rows[0].AmountMinor != 1250 || !rows[0].Fraud || rows[0].TxID != "x" {
		t.Errorf("reordered columns: %+v, %v", rows, err)
	}
}

// TestLabelsNewerThanDelayNeverChangeFeatures flips every label that is not yet known at a
// cutoff and checks that no feature of any row up to the cutoff moves.
func TestLabelsNewerThanDelayNeverChangeFeatures(t *testing.T) {
	t.Parallel()
	rows := simRows(t, 32)
	delay := 7 * 24 * time.Hour
	cutoff := rows[0].Time.AddDate(0, 0, 22)
	X := Features(rows, len(rows), delay, nil)

	flipped := slices.Clone(rows)
	for i := range flipped {
		if flipped[i].Time.Add(delay).After(cutoff) {
			flipped[i].Fraud = !flipped[i].Fraud
		}
	}
	X2 := Features(flipped, len(flipped), delay, nil)
	changedAfter := 0
	for i := range rows {
		same := slices.Equal(X[i], X2[i])
		if !rows[i].Time.After(cutoff) && !same {
			t.Fatalf("row %d at %v (cutoff %v): features changed from %v to %v by labels not yet known",
				i, rows[i].Time, cutoff, X[i], X2[i])
		}
		if !same {
			changedAfter++
		}
	}
	// fs-3 calls them terminal_fraud_ratio_*, the Handbook TERMINAL_ID_RISK_*.
	usesLabels := slices.ContainsFunc(features.Names, func(n string) bool {
		return strings.Contains(n, "fraud") || strings.Contains(n, "risk")
	})
	t.Logf("schema %s: %d rows after the cutoff changed", features.SchemaVersion, changedAfter)
	if usesLabels && changedAfter == 0 {
		t.Error("the schema has label-based features but flipping labels changed nothing: the test is vacuous")
	}
}

func TestHandbookSplit(t *testing.T) {
	t.Parallel()
	day0 := time.Date(2018, 4, 1, 0, 0, 0, 0, time.UTC)
	at := func(day int) time.Time { return day0.AddDate(0, 0, day).Add(12 * time.Hour) }
	rows := []Row{
		{TxID: "0", Time: at(-1), Customer: "a", Fraud: true}, // before the window: ignored
		{TxID: "1", Time: at(0), Customer: "a"},
		{TxID: "2", Time: at(1), Customer: "b", Fraud: true}, // train fraud: b known from test day 0
		{TxID: "3", Time: at(2), Customer: "c", Fraud: true}, // delay period day 2 (train 2 days, delay 2)
		{TxID: "4", Time: at(4), Customer: "b"},              // test day 0: b excluded
		{TxID: "5", Time: at(4), Customer: "c"},              // c's fraud on day 2 is known from day 2+2+1=5
		{TxID: "6", Time: at(4), Customer: "a"},              // a's old fraud predates the train window
		{TxID: "7", Time: at(5), Customer: "c"},              // now c is known: excluded
		{TxID: "8", Time: at(5), Customer: "d", Fraud: true},
		{TxID: "9", Time: at(6), Customer: "d"}, // after 2 test days
	}
	s := HandbookSplit(rows, day0, 2, 2, 2)
	if !slices.Equal(s.Train, []int{1, 2}) || !slices.Equal(s.Test, []int{5, 6, 8}) || s.End != 9 {
		t.Errorf("split = train %v test %v end %d", s.Train, s.Test, s.End)
	}
	if !s.TestStart.Equal(day0.AddDate(0, 0, 4)) {
		t.Errorf("test start %v", s.TestStart)
	}
	if w := Window(rows, day0.AddDate(0, 0, 4), 2); !slices.Equal(w, []int{4, 5, 6, 7, 8}) {
		t.Errorf("window = %v", w)
	}
	if n := Before(rows, day0.AddDate(0, 0, 4)); n != 4 {
		t.Errorf("Before(day 4) = %d, want 4", n)
	}
}

func TestBuild(t *testing.T) {
	t.Parallel()
	day0 := time.Date(2018, 4, 1, 0, 0, 0, 0, time.UTC)
	rows := []Row{
		{TxID: "0", Time: day0.Add(time.Hour), Customer: "a", Terminal: "t", AmountMinor: 100},
		{TxID: "1", Time: day0.Add(25 * time.Hour), Customer: "b", Terminal: "t", AmountMinor: 30000, Fraud: true},
		{TxID: "2", Time: day0.Add(49 * time.Hour), Customer: "a", Terminal: "t", AmountMinor: 200},
	}
	s := Build(rows, day0.AddDate(0, 0, 1), 1, 7*24*time.Hour)
	if len(s.X) != 1 || len(s.X[0]) != len(features.Names) || !slices.Equal(s.Y, []float64{1}) ||
		s.Meta[0] != (Meta{TxID: "1", Customer: "b", Day: 0, Fraud: true}) {
		t.Errorf("Build = %+v", s)
	}
	if s.X[0][features.Index("amount")] != 300 {
		t.Errorf("amount feature = %v", s.X[0][features.Index("amount")])
	}
}

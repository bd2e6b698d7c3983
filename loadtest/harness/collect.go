package harness

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
)

// LagSample is the total lag of each consumer at one moment.
type LagSample struct {
	AtSec float64          `json:"at_s"` // since the sampler started
	Lag   map[string]int64 `json:"lag"`  // consumer → records behind, summed over partitions
}

// LagSampler polls consumer lag every second: Kafka-committed groups through kadm.Lag, and
// sinks that keep their offsets in Postgres (kafka_offsets) against the topic's end offsets.
type LagSampler struct {
	adm     *kadm.Client
	pool    *pgxpool.Pool
	stack   *Stack
	start   time.Time
	mu      sync.Mutex
	samples []LagSample
}

// NewLagSampler samples the consumers of stack.
func NewLagSampler(adm *kadm.Client, pool *pgxpool.Pool, stack *Stack) *LagSampler {
	return &LagSampler{adm: adm, pool: pool, stack: stack, start: time.Now()}
}

// Run samples until ctx ends.
func (l *LagSampler) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		s, err := l.Sample(ctx)
		if err == nil {
			l.mu.Lock()
			l.samples = append(l.samples, s)
			l.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Samples returns what was collected so far.
func (l *LagSampler) Samples() []LagSample {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]LagSample(nil), l.samples...)
}

// Sample reads every consumer's lag once.
func (l *LagSampler) Sample(ctx context.Context) (LagSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s := LagSample{AtSec: time.Since(l.start).Seconds(), Lag: map[string]int64{}}
	lags, err := l.adm.Lag(ctx, l.stack.EOSGroups...)
	if err != nil {
		return s, err
	}
	lags.Each(func(g kadm.DescribedGroupLag) {
		var total int64
		for _, parts := range g.Lag {
			for _, ml := range parts {
				if ml.Err == nil && ml.Lag > 0 {
					total += ml.Lag
				}
			}
		}
		s.Lag[g.Group] = total
	})
	if len(l.stack.PGConsumers) == 0 || l.pool == nil {
		return s, nil
	}
	ends, err := l.adm.ListEndOffsets(ctx, l.stack.Topics.Decisions)
	if err != nil {
		return s, err
	}
	var end int64
	ends.Each(func(o kadm.ListedOffset) { end += o.Offset })
	for _, c := range l.stack.PGConsumers {
		var done int64
		if err := l.pool.QueryRow(ctx, `SELECT coalesce(sum(next_offset), 0) FROM kafka_offsets WHERE consumer = $1 AND topic = $2`,
			c, l.stack.Topics.Decisions).Scan(&done); err != nil {
			return s, err
		}
		// End offsets count transaction markers too, so an idle sink shows a small residue
		// (one marker per committed transaction per partition); growth is what matters.
		s.Lag[c] = max(end-done, 0)
	}
	return s, nil
}

// DecisionRow is one decision of the run as the checker and the reports need it.
type DecisionRow struct {
	TransactionID, DecisionID, Action  string
	ReceivedAt, DecidedAt, PersistedAt time.Time
}

// LikePattern matches the stored ids of a run prefix ("source:prefix-N").
func LikePattern(prefix string) string { return "%:" + prefix + "-%" }

// CountDecisions counts the run's decisions so far.
func CountDecisions(ctx context.Context, pool *pgxpool.Pool, prefix string) (int, error) {
	var n int
	err := pool.QueryRow(ctx, `SELECT count(*) FROM decisions WHERE transaction_id LIKE $1`, LikePattern(prefix)).Scan(&n)
	return n, err
}

// WaitDecisions polls until want decisions of the prefix exist, no new one arrived for idle,
// or ctx ends; it returns how many exist.
func WaitDecisions(ctx context.Context, pool *pgxpool.Pool, prefix string, want int, idle time.Duration) (int, error) {
	last, lastChange := -1, time.Now()
	for {
		n, err := CountDecisions(ctx, pool, prefix)
		if ctx.Err() != nil {
			// The drain time is over: what is missing now is for the checker to report.
			return max(n, last, 0), nil
		}
		if err != nil {
			return n, err
		}
		if n >= want {
			return n, nil
		}
		if n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) > idle {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return n, nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// LoadDecisions reads the run's decisions.
func LoadDecisions(ctx context.Context, pool *pgxpool.Pool, prefix string) ([]DecisionRow, error) {
	rows, err := pool.Query(ctx, `SELECT transaction_id, decision_id, action, received_at, decided_at, persisted_at
		FROM decisions WHERE transaction_id LIKE $1`, LikePattern(prefix))
	if err != nil {
		return nil, fmt.Errorf("load decisions: %w", err)
	}
	defer rows.Close()
	var out []DecisionRow
	for rows.Next() {
		var r DecisionRow
		if err := rows.Scan(&r.TransactionID, &r.DecisionID, &r.Action, &r.ReceivedAt, &r.DecidedAt, &r.PersistedAt); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// LoadAlerts counts alert rows per decision id for the run's transactions.
func LoadAlerts(ctx context.Context, pool *pgxpool.Pool, prefix string) (map[string]int, error) {
	rows, err := pool.Query(ctx, `SELECT decision_id, count(*) FROM alerts WHERE transaction_id LIKE $1 GROUP BY decision_id`, LikePattern(prefix))
	if err != nil {
		return nil, fmt.Errorf("load alerts: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var d string
		var n int
		if err := rows.Scan(&d, &n); err != nil {
			return nil, err
		}
		out[d] = n
	}
	return out, rows.Err()
}

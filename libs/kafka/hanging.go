package kafka

// A hanging transaction is one a partition still holds open after its transaction coordinator
// has finished it. Read-committed consumers stop at the partition's last stable offset, which
// cannot pass the open transaction's first record, and a transactional offset commit left
// pending in __consumer_offsets keeps the group's offsets "unstable", so nothing consumes that
// partition again: the pipeline stalls for good, without an error.
//
// Kafka 4.4 does this on one node in combined (broker + controller) mode after a kill -9 that
// lands while a commit's markers are being written (found by the chaos harness): the restarted
// controller still holds the old broker registration until its session times out (9 s), so the
// new broker acts on its stale metadata, loads the transaction coordinator and retries the
// markers; when the stale registration is fenced, the partitions have no leader for a moment,
// the marker sender takes "no leader" for "topic deleted", skips the markers and completes the
// transaction. Kafka's answer for hanging transactions is an operator tool (KIP-664,
// kafka-transactions.sh find-hanging / abort). The guard below does that job unattended, and
// more precisely: it only closes a transaction whose outcome the coordinator has already
// decided, with that outcome, so a committed transaction's records and offsets are not lost.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// OffsetsTopic is Kafka's consumer offsets topic: transactional offset commits live there.
const OffsetsTopic = "__consumer_offsets"

// Hanging is a transaction left open on one partition.
type Hanging struct {
	Topic         string
	Partition     int32
	ProducerID    int64
	ProducerEpoch int16     // of the open records on the partition
	StartOffset   int64     // first offset of the open transaction: the partition's last stable offset
	LastWrite     time.Time // of the producer's last records on the partition
	Age           time.Duration
	TxnID         string // the coordinator's transactional id for the producer, "" if unknown
	State         string // the coordinator's state for it
	// Outcome is "commit" or "abort" when the coordinator has finished this transaction, and
	// "" when it has not decided it (still open, or a later transaction replaced it): such a
	// transaction is reported, never closed.
	Outcome string
	// MarkerEpoch and CoordinatorEpoch are what the markers must carry.
	MarkerEpoch      int16
	CoordinatorEpoch int32
}

func (h Hanging) String() string {
	return fmt.Sprintf("%s/%d producer %d epoch %d open since offset %d for %s (transactional id %q, coordinator state %s)",
		h.Topic, h.Partition, h.ProducerID, h.ProducerEpoch, h.StartOffset, h.Age.Round(time.Second), h.TxnID, h.State)
}

// txnAdmin is the part of kadm.Client the guard uses (a fake in tests).
type txnAdmin interface {
	ListTopicsWithInternal(ctx context.Context, topics ...string) (kadm.TopicDetails, error)
	DescribeProducers(ctx context.Context, s kadm.TopicsSet) (kadm.DescribedProducersTopics, error)
	ListTransactions(ctx context.Context, producerIDs []int64, filterStates []string) (kadm.ListedTransactions, error)
	DescribeTransactions(ctx context.Context, txnIDs ...string) (kadm.DescribedTransactions, error)
	WriteTxnMarkers(ctx context.Context, markers ...kadm.TxnMarkers) (kadm.TxnMarkersResponses, error)
}

// FindHanging lists the transactions open on topics' partitions for at least minAge (measured
// from the producer's last write there), with the coordinator's verdict on each.
func FindHanging(ctx context.Context, adm txnAdmin, topics []string, minAge time.Duration, now time.Time) ([]Hanging, error) {
	details, err := adm.ListTopicsWithInternal(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	set := kadm.TopicsSet{}
	for _, t := range details.Sorted() {
		if t.Err != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Topic, t.Err)
		}
		set.Add(t.Topic, t.Partitions.Numbers()...)
	}
	described, err := adm.DescribeProducers(ctx, set)
	if err != nil {
		return nil, fmt.Errorf("describe producers: %w", err)
	}
	var open []Hanging
	var ids []int64
	for _, p := range described.SortedPartitions() {
		if p.Err != nil {
			return nil, fmt.Errorf("describe producers of %s/%d: %w", p.Topic, p.Partition, p.Err)
		}
		for _, a := range p.ActiveProducers.Sorted() {
			age := now.Sub(time.UnixMilli(a.LastTimestamp))
			if a.CurrentTxnStartOffset < 0 || age < minAge {
				continue
			}
			open = append(open, Hanging{Topic: a.Topic, Partition: a.Partition, ProducerID: a.ProducerID,
				ProducerEpoch: a.ProducerEpoch, StartOffset: a.CurrentTxnStartOffset, LastWrite: time.UnixMilli(a.LastTimestamp), Age: age,
				CoordinatorEpoch: a.CoordinatorEpoch, State: "unknown"})
			if !slices.Contains(ids, a.ProducerID) {
				ids = append(ids, a.ProducerID)
			}
		}
	}
	if len(open) == 0 {
		return nil, nil
	}
	listed, err := adm.ListTransactions(ctx, ids, nil)
	if err != nil {
		return nil, fmt.Errorf("list transactions: %w", err)
	}
	var txnIDs []string
	for _, l := range listed.Sorted() {
		txnIDs = append(txnIDs, l.TxnID)
	}
	byProducer := map[int64]kadm.DescribedTransaction{}
	if len(txnIDs) > 0 {
		txns, err := adm.DescribeTransactions(ctx, txnIDs...)
		if err != nil {
			return nil, fmt.Errorf("describe transactions: %w", err)
		}
		for _, d := range txns.Sorted() {
			if d.Err == nil {
				byProducer[d.ProducerID] = d
			}
		}
	}
	hanging := open[:0]
	for _, h := range open {
		if d, ok := byProducer[h.ProducerID]; ok {
			if stillOpen(h, d) {
				continue // the coordinator is still at it: it ends the transaction or times it out itself
			}
			h.TxnID, h.State = d.TxnID, d.State
			h.Outcome, h.MarkerEpoch = verdict(h, d)
		}
		hanging = append(hanging, h)
	}
	return hanging, nil
}

// stillOpen says whether the coordinator is still working on the transaction h holds open:
// it is ongoing at the records' epoch, or preparing to end at that epoch or the next.
func stillOpen(h Hanging, d kadm.DescribedTransaction) bool {
	switch d.State {
	case "Ongoing":
		return d.ProducerEpoch == h.ProducerEpoch
	case "PrepareCommit", "PrepareAbort":
		return d.ProducerEpoch == h.ProducerEpoch || d.ProducerEpoch == h.ProducerEpoch+1
	}
	return false
}

// verdict is the outcome the coordinator decided for the transaction h holds open, if it was
// this transaction it finished: the coordinator is done (CompleteCommit or CompleteAbort) at
// the open records' epoch (transaction version 1) or one above (version 2, Vigil's producers on
// Kafka 4: the epoch is bumped when a transaction ends). Anything else — an open or preparing
// transaction (its own markers are on the way) or a later transaction of the same producer —
// leaves the decision to a person. (The record timestamps on the partition are the client's
// and precede the coordinator's start of the transaction, so they cannot tell more.)
//
// One case stays ambiguous: a version-1 producer whose epoch was bumped by a restart (which
// aborts) and whose next transaction then completed also shows the coordinator one epoch above.
func verdict(h Hanging, d kadm.DescribedTransaction) (outcome string, markerEpoch int16) {
	if d.ProducerEpoch != h.ProducerEpoch && d.ProducerEpoch != h.ProducerEpoch+1 {
		return "", 0
	}
	switch d.State {
	case "CompleteCommit":
		return "commit", d.ProducerEpoch
	case "CompleteAbort":
		return "abort", d.ProducerEpoch
	}
	return "", 0
}

// CloseHanging writes the coordinator's decided outcome to each partition in hs that has one.
// It returns those it closed; partitions without a decided outcome are left alone.
func CloseHanging(ctx context.Context, adm txnAdmin, hs []Hanging) ([]Hanging, error) {
	var closed []Hanging
	var errs []error
	for _, h := range hs {
		if h.Outcome == "" {
			continue
		}
		// The partition's own coordinator epoch (-1 when it never saw a marker from this
		// producer): a higher one would fence the real coordinator's later markers.
		m := kadm.TxnMarkers{ProducerID: h.ProducerID, ProducerEpoch: h.MarkerEpoch, Commit: h.Outcome == "commit",
			CoordinatorEpoch: max(h.CoordinatorEpoch, 0), Topics: kadm.TopicsSet{}}
		m.Topics.Add(h.Topic, h.Partition)
		resp, err := adm.WriteTxnMarkers(ctx, m)
		if err == nil {
			resp.EachPartition(func(p kadm.TxnMarkersPartitionResponse) {
				if p.Err != nil && err == nil {
					err = p.Err
				}
			})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s marker for %s: %w", h.Outcome, h, err))
			continue
		}
		closed = append(closed, h)
	}
	return closed, errors.Join(errs...)
}

// TxnGuard looks for hanging transactions on a service's topics every Interval and closes
// those whose outcome the coordinator decided. Run it in every service that reads a
// transactional topic: the service stalled by a hanging transaction is the one that repairs it.
type TxnGuard struct {
	Brokers  []string
	Topics   []string // the topics to watch; __consumer_offsets is always added
	Interval time.Duration
	MinAge   time.Duration // how long a transaction must have been open (default 30 s)
	Log      *slog.Logger

	found *prometheus.CounterVec
}

// Register adds the guard's counter to reg.
func (g *TxnGuard) Register(reg prometheus.Registerer) {
	g.found = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_kafka_hanging_transactions_total",
		Help: "Transactions found open on a partition after their coordinator finished them, by what the guard did: commit or abort markers written, or unresolved (no decided outcome, or the markers failed; see the logs).",
	}, []string{"action"})
	reg.MustRegister(g.found)
}

// Run checks until ctx ends. Failures are logged and retried at the next interval.
func (g *TxnGuard) Run(ctx context.Context) error {
	if g.Interval <= 0 {
		return nil
	}
	minAge := g.MinAge
	if minAge <= 0 {
		minAge = 30 * time.Second
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(g.Brokers...))
	if err != nil {
		return fmt.Errorf("kafka admin client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics := append(slices.Clone(g.Topics), OffsetsTopic)
	t := time.NewTicker(g.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		g.check(ctx, adm, topics, minAge)
	}
}

func (g *TxnGuard) check(ctx context.Context, adm txnAdmin, topics []string, minAge time.Duration) {
	cctx, cancel := context.WithTimeout(ctx, g.Interval)
	defer cancel()
	hs, err := FindHanging(cctx, adm, topics, minAge, time.Now())
	if err != nil {
		if ctx.Err() == nil {
			g.Log.Warn("hanging transaction check failed", "err", err)
		}
		return
	}
	closed, err := CloseHanging(cctx, adm, hs)
	for _, h := range closed {
		g.Log.Warn("closed a hanging transaction with its coordinator's outcome", "outcome", h.Outcome, "transaction", h.String())
		g.count(h.Outcome)
	}
	if err != nil {
		g.Log.Error("could not close a hanging transaction", "err", err)
	}
	for _, h := range hs {
		if !slices.ContainsFunc(closed, func(c Hanging) bool { return c == h }) {
			g.Log.Error("transaction open on a partition with no decided outcome: consumers of this partition are stuck until it ends (kafka-transactions.sh describe / abort)", "transaction", h.String())
			g.count("unresolved")
		}
	}
}

func (g *TxnGuard) count(action string) {
	if g.found != nil {
		g.found.WithLabelValues(action).Inc()
	}
}

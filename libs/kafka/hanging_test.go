package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// fakeTxnAdmin is a cluster with one topic "out" of two partitions, the producers open on it,
// and the transaction coordinator's view of their transactional ids.
type fakeTxnAdmin struct {
	open    []kadm.DescribedProducer
	txns    []kadm.DescribedTransaction
	markErr error
	written []kadm.TxnMarkers
}

func (f *fakeTxnAdmin) ListTopicsWithInternal(_ context.Context, topics ...string) (kadm.TopicDetails, error) {
	td := kadm.TopicDetails{}
	for _, t := range topics {
		td[t] = kadm.TopicDetail{Topic: t, Partitions: kadm.PartitionDetails{0: {Topic: t, Partition: 0}, 1: {Topic: t, Partition: 1}}}
	}
	return td, nil
}

func (f *fakeTxnAdmin) DescribeProducers(_ context.Context, s kadm.TopicsSet) (kadm.DescribedProducersTopics, error) {
	out := kadm.DescribedProducersTopics{}
	for t, ps := range s {
		dt := kadm.DescribedProducersTopic{Topic: t, Partitions: kadm.DescribedProducersPartitions{}}
		for p := range ps {
			dp := kadm.DescribedProducersPartition{Topic: t, Partition: p, ActiveProducers: kadm.DescribedProducers{}}
			for _, o := range f.open {
				if o.Topic == t && o.Partition == p {
					dp.ActiveProducers[o.ProducerID] = o
				}
			}
			dt.Partitions[p] = dp
		}
		out[t] = dt
	}
	return out, nil
}

func (f *fakeTxnAdmin) ListTransactions(_ context.Context, ids []int64, _ []string) (kadm.ListedTransactions, error) {
	out := kadm.ListedTransactions{}
	for _, d := range f.txns {
		for _, id := range ids {
			if d.ProducerID == id {
				out[d.TxnID] = kadm.ListedTransaction{TxnID: d.TxnID, ProducerID: d.ProducerID, State: d.State}
			}
		}
	}
	return out, nil
}

func (f *fakeTxnAdmin) DescribeTransactions(_ context.Context, ids ...string) (kadm.DescribedTransactions, error) {
	out := kadm.DescribedTransactions{}
	for _, d := range f.txns {
		for _, id := range ids {
			if d.TxnID == id {
				out[id] = d
			}
		}
	}
	return out, nil
}

func (f *fakeTxnAdmin) WriteTxnMarkers(_ context.Context, ms ...kadm.TxnMarkers) (kadm.TxnMarkersResponses, error) {
	f.written = append(f.written, ms...)
	out := kadm.TxnMarkersResponses{}
	for _, m := range ms {
		r := kadm.TxnMarkersResponse{ProducerID: m.ProducerID, Topics: kadm.TxnMarkersTopicResponses{}}
		for t, ps := range m.Topics {
			tr := kadm.TxnMarkersTopicResponse{ProducerID: m.ProducerID, Topic: t, Partitions: kadm.TxnMarkersPartitionResponses{}}
			for p := range ps {
				tr.Partitions[p] = kadm.TxnMarkersPartitionResponse{ProducerID: m.ProducerID, Topic: t, Partition: p, Err: f.markErr}
			}
			r.Topics[t] = tr
		}
		out[m.ProducerID] = r
	}
	return out, nil
}

func TestFindHanging(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_800_000_000_000)
	at := func(ago time.Duration) int64 { return now.Add(-ago).UnixMilli() }
	// open is producer 7's transaction open on out/1 since offset 100, last written a minute ago.
	open := kadm.DescribedProducer{Topic: "out", Partition: 1, ProducerID: 7, ProducerEpoch: 438,
		LastTimestamp: at(time.Minute), CurrentTxnStartOffset: 100, CoordinatorEpoch: 3}
	coord := func(state string, epoch int16, started time.Duration) kadm.DescribedTransaction {
		return kadm.DescribedTransaction{TxnID: "fw-0", ProducerID: 7, ProducerEpoch: epoch, State: state, StartTimestamp: at(started)}
	}
	tests := []struct {
		name    string
		open    kadm.DescribedProducer
		txn     *kadm.DescribedTransaction
		found   bool
		outcome string
		epoch   int16
	}{
		// The chaos run's case: transaction version 2 bumped the epoch when it ended.
		{"committed, markers lost (v2)", open, new(coord("CompleteCommit", 439, 2*time.Minute)), true, "commit", 439},
		{"aborted, markers lost (v1)", open, new(coord("CompleteAbort", 438, 2*time.Minute)), true, "abort", 438},
		{"coordinator still in the transaction", open, new(coord("Ongoing", 438, 2*time.Minute)), false, "", 0},
		{"coordinator writing its markers", open, new(coord("PrepareCommit", 439, 2*time.Minute)), false, "", 0},
		{"a later transaction of the producer", open, new(coord("CompleteCommit", 441, 10*time.Second)), true, "", 0},
		// The records' timestamps are the client's, older than the coordinator's start.
		{"coordinator's transaction began after these records", open, new(coord("CompleteCommit", 439, 30*time.Second)), true, "commit", 439},
		{"producer unknown to the coordinator", open, nil, true, "", 0},
		{"open for less than the minimum age", func() kadm.DescribedProducer { o := open; o.LastTimestamp = at(5 * time.Second); return o }(),
			new(coord("CompleteCommit", 439, 2*time.Minute)), false, "", 0},
		{"not in a transaction", func() kadm.DescribedProducer { o := open; o.CurrentTxnStartOffset = -1; return o }(),
			new(coord("CompleteCommit", 439, 2*time.Minute)), false, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeTxnAdmin{open: []kadm.DescribedProducer{tc.open}}
			if tc.txn != nil {
				f.txns = []kadm.DescribedTransaction{*tc.txn}
			}
			hs, err := FindHanging(context.Background(), f, []string{"out"}, 30*time.Second, now)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.found {
				if len(hs) != 0 {
					t.Fatalf("found %v, want nothing", hs)
				}
				return
			}
			if len(hs) != 1 {
				t.Fatalf("found %d, want 1", len(hs))
			}
			h := hs[0]
			if h.Topic != "out" || h.Partition != 1 || h.ProducerID != 7 || h.StartOffset != 100 || h.Age != time.Minute || h.CoordinatorEpoch != 3 {
				t.Errorf("hanging = %+v", h)
			}
			if h.Outcome != tc.outcome || h.MarkerEpoch != tc.epoch {
				t.Errorf("outcome %q epoch %d, want %q %d", h.Outcome, h.MarkerEpoch, tc.outcome, tc.epoch)
			}
		})
	}
}

func TestCloseHangingWritesOnlyDecidedOutcomes(t *testing.T) {
	t.Parallel()
	hs := []Hanging{
		{Topic: "out", Partition: 0, ProducerID: 7, ProducerEpoch: 438, Outcome: "commit", MarkerEpoch: 439, CoordinatorEpoch: 2},
		{Topic: "__consumer_offsets", Partition: 4, ProducerID: 8, ProducerEpoch: 5, Outcome: "abort", MarkerEpoch: 5, CoordinatorEpoch: -1},
		{Topic: "out", Partition: 1, ProducerID: 9, ProducerEpoch: 1},
	}
	f := &fakeTxnAdmin{}
	closed, err := CloseHanging(context.Background(), f, hs)
	if err != nil {
		t.Fatal(err)
	}
	if len(closed) != 2 || closed[0] != hs[0] || closed[1] != hs[1] {
		t.Fatalf("closed %v", closed)
	}
	if len(f.written) != 2 {
		t.Fatalf("wrote %d markers, want 2", len(f.written))
	}
	m := f.written[0]
	if m.ProducerID != 7 || m.ProducerEpoch != 439 || !m.Commit || m.CoordinatorEpoch != 2 || len(m.Topics["out"]) != 1 {
		t.Errorf("commit marker = %+v", m)
	}
	if m := f.written[1]; m.Commit || m.ProducerID != 8 || m.CoordinatorEpoch != 0 {
		t.Errorf("abort marker = %+v", m)
	}

	f = &fakeTxnAdmin{markErr: kerr.TransactionCoordinatorFenced}
	closed, err = CloseHanging(context.Background(), f, hs[:1])
	if len(closed) != 0 || !errors.Is(err, kerr.TransactionCoordinatorFenced) {
		t.Fatalf("closed %v, err %v; want none and the partition's error", closed, err)
	}
}

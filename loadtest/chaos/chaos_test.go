package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/loadtest/harness"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

func TestParseFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    map[string]int
		wantErr string
	}{
		{in: "kill-ingest", want: map[string]int{"kill-ingest": 1}},
		{in: "kill-ingest=20, kill-broker=3", want: map[string]int{"kill-ingest": 20, "kill-broker": 3}},
		{in: "all=2,kill-redis=0", want: func() map[string]int {
			m := map[string]int{}
			for _, k := range faultKinds {
				m[k] = 2
			}
			m["kill-redis"] = 0
			delete(m, "flush-redis") // asked for by name only
			return m
		}()},
		{in: "all,flush-redis=1", want: func() map[string]int {
			m := map[string]int{}
			for _, k := range faultKinds {
				m[k] = 1
			}
			return m
		}()},
		{in: "kill-everything", wantErr: "unknown fault"},
		{in: "kill-ingest=-1", wantErr: "non-negative"},
	}
	for _, tc := range tests {
		got, err := ParseFaults(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseFaults(%q) error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("ParseFaults(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("ParseFaults(%q)[%s] = %d, want %d", tc.in, k, got[k], v)
			}
		}
	}
}

func TestScheduleIsSeededAndInsideTheRun(t *testing.T) {
	t.Parallel()
	counts := map[string]int{"kill-ingest": 20, "kill-broker": 3, "zombie-scoring": 1}
	d := 10 * time.Minute
	a, b := Schedule(counts, d, 7), Schedule(counts, d, 7)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave two schedules")
	}
	if slices.Equal(a, Schedule(counts, d, 8)) {
		t.Error("another seed gave the same schedule")
	}
	if len(a) != 24 {
		t.Fatalf("%d faults, want 24", len(a))
	}
	for i, p := range a {
		if p.At < d/20 || p.At+faultLength[p.Kind] > d*85/100 {
			t.Errorf("fault %s at %s does not run within [5%%, 85%%] of %s", p.Kind, p.At, d)
		}
		if i > 0 && p.At < a[i-1].At {
			t.Error("schedule not in time order")
		}
	}
}

func TestTarget(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"kill-ingest": "ingest", "kill-feature-window": "feature-window", "zombie-scoring": "scoring",
		"rebalance-feature-window": "feature-window", "kill-broker": "infra", "kill-redis": "infra", "restart-postgres": "infra",
	}
	for kind, want := range tests {
		if got := target(kind); got != want {
			t.Errorf("target(%q) = %q, want %q", kind, got, want)
		}
	}
}

func TestNeedles(t *testing.T) {
	t.Parallel()
	n := NewNeedles([]string{"4000000000001234", "4000000000005678", ""})
	tests := []struct {
		in   string
		want bool
	}{
		{"card 4000000000001234 in clear", true},
		{"hex 34303030303030303030303031323334 of it", true},
		{"bin 400000 and last4 1234 only", false},
		{"another 4000000000009999", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := n.Find([]byte(tc.in)) != ""; got != tc.want {
			t.Errorf("Find(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// world builds checker input: transactions t0..tn-1 of accounts a/b, all acknowledged, each
// published once and carried downstream once, in order.
func world(n int) CheckInput {
	load := &Load{}
	td := &TopicData{Features: map[string][][]float64{}, Names: map[string]int{}, Decisions: map[string][]string{}, DLQ: map[string]int{}, Undecoded: map[string]int{}}
	pg := &PGData{Decisions: map[string][]string{}, Alerts: map[string]int{}}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		id := "k:t" + string(rune('0'+i))
		acct := []string{"a", "b"}[i%2]
		at := base.Add(time.Duration(i) * time.Second)
		load.Txs = append(load.Txs, &TxResult{StoredID: id, Account: acct, Outcome: harness.Acked, FirstSent: at, AckedAt: at.Add(100 * time.Millisecond),
			Attempts: []Attempt{{Status: 202, At: at}}})
		tx := &fraudv1.Transaction{Id: id, AccountId: acct, EventTime: timestamppb.New(at)}
		r := rec{id: id, account: acct, partition: int32(i % 2), offset: int64(i)}
		td.Tx = append(td.Tx, tx)
		td.TxRecs = append(td.TxRecs, r)
		td.txAt = append(td.txAt, r)
		td.FeatRecs = append(td.FeatRecs, r)
		td.DecRecs = append(td.DecRecs, r)
		td.Decisions[id] = []string{"d-" + id}
		pg.Decisions[id] = []string{"d-" + id}
	}
	return CheckInput{Load: load, Topics: td, PG: pg, Partitions: 2}
}

func violations(invs []*Invariant) []string {
	var out []string
	for _, inv := range invs {
		for _, v := range inv.Violations {
			out = append(out, v.Kind)
		}
	}
	return out
}

func TestCheckersCatchBrokenGuarantees(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		check  func(CheckInput) *Invariant
		mutate func(*CheckInput)
		want   string // a violation kind, "" for none
	}{
		{"clean run: tx", checkTx, func(*CheckInput) {}, ""},
		{"clean run: order", checkOrder, func(*CheckInput) {}, ""},
		{"clean run: clients", checkClients, func(*CheckInput) {}, ""},
		{"lost acknowledged transaction", checkTx, func(in *CheckInput) {
			in.Topics.Tx = in.Topics.Tx[1:]
		}, "acknowledged but missing from tx.v1"},
		{"duplicate in tx.v1", checkTx, func(in *CheckInput) {
			in.Topics.Tx = append(in.Topics.Tx, in.Topics.Tx[0])
			in.Topics.txAt = append(in.Topics.txAt, rec{partition: 0, offset: 99})
		}, "transaction more than once in tx.v1"},
		{"rejected but published", checkTx, func(in *CheckInput) {
			in.Load.Txs[0].Outcome = harness.Rejected
		}, "4xx'd transaction in tx.v1"},
		{"decision twice on the topic", checkDownstream, func(in *CheckInput) {
			id := in.Topics.Tx[0].GetId()
			in.Topics.Decisions[id] = append(in.Topics.Decisions[id], "d-x")
		}, "decisions.v1 records ≠ 1 (2)"},
		{"decision row from an aborted transaction", checkDownstream, func(in *CheckInput) {
			in.PG.Decisions[in.Topics.Tx[0].GetId()] = []string{"d-aborted"}
		}, "decision row not on decisions.v1 (from an aborted transaction?)"},
		{"downstream reordered", checkOrder, func(in *CheckInput) {
			in.Topics.DecRecs[0], in.Topics.DecRecs[2] = in.Topics.DecRecs[2], in.Topics.DecRecs[0]
		}, "decisions.v1 order differs from tx.v1"},
		{"tx.v1 contradicts acknowledgement order", checkOrder, func(in *CheckInput) {
			in.Topics.TxRecs[0], in.Topics.TxRecs[2] = in.Topics.TxRecs[2], in.Topics.TxRecs[0]
		}, "tx.v1 order contradicts acknowledgement order"},
		{"500 answer", checkClients, func(in *CheckInput) {
			in.Load.Txs[0].Attempts = append([]Attempt{{Status: 500}}, in.Load.Txs[0].Attempts...)
		}, "500 answer"},
		{"503 without Retry-After", checkClients, func(in *CheckInput) {
			in.Load.Txs[0].Attempts = append([]Attempt{{Status: 503}}, in.Load.Txs[0].Attempts...)
		}, "503 without Retry-After"},
		{"retried and never succeeded", checkClients, func(in *CheckInput) {
			in.Load.Txs[0].Attempts = []Attempt{{Status: 503, RetryAfter: true}}
			in.Load.Txs[0].Outcome = harness.Unknown
		}, "retried transaction never succeeded"},
		{"two alerts for one decision", checkAlerts, func(in *CheckInput) {
			in.PG.Alerts["d-"+in.Topics.Tx[0].GetId()] = 2
		}, "decision with more than one alert"},
		{"label row missing from labels.v1", checkAlerts, func(in *CheckInput) {
			in.PG.Labels = []LabelRow{{LabelID: "l1", CaseID: "c1", Version: 2}}
		}, "label row not on labels.v1 exactly once"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := world(6)
			tc.mutate(&in)
			got := violations([]*Invariant{tc.check(in)})
			if tc.want == "" && len(got) > 0 {
				t.Errorf("violations %v on a clean run", got)
			}
			if tc.want != "" && !slices.Contains(got, tc.want) {
				t.Errorf("violations %v, want %q", got, tc.want)
			}
		})
	}
}

func TestFeatureCheckReplaysTheLog(t *testing.T) {
	t.Parallel()
	in := world(6)
	// A duplicate record, as a crashed ingest leaves it: the stream counts it again, and so
	// must the replay, or every later vector of the account would look wrong.
	dup := rec{id: in.Topics.TxRecs[0].id, account: in.Topics.TxRecs[0].account, partition: in.Topics.TxRecs[0].partition, offset: 100}
	in.Topics.Tx = append(in.Topics.Tx, in.Topics.Tx[0])
	in.Topics.txAt = append(in.Topics.txAt, dup)
	in.Topics.TxRecs = append(in.Topics.TxRecs, dup)
	o := features.NewOffline()
	for _, r := range in.Topics.TxRecs {
		tx := in.Topics.Tx[slices.Index(in.Topics.txAt, r)]
		in.Topics.Features[r.id] = append(in.Topics.Features[r.id], o.Next(features.FromTransaction(tx)))
	}
	if v := violations([]*Invariant{checkFeatures(in)}); len(v) > 0 {
		t.Fatalf("violations %v when the stream equals the replay", v)
	}
	id := in.Topics.TxRecs[2].id
	in.Topics.Features[id][0] = slices.Clone(in.Topics.Features[id][0])
	in.Topics.Features[id][0][features.Index("account_count_1h")]++
	if v := violations([]*Invariant{checkFeatures(in)}); !slices.Contains(v, "vector differs from the offline recomputation") {
		t.Errorf("violations %v, want a vector difference", v)
	}
}

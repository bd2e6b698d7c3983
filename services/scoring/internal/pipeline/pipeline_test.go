package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/decide"
	"github.com/vigil-fraud/vigil/services/scoring/internal/lists"
	"github.com/vigil-fraud/vigil/services/scoring/internal/modelset"
	"github.com/vigil-fraud/vigil/services/scoring/internal/rules"
	"github.com/vigil-fraud/vigil/services/scoring/internal/windows"
)

type fakeScorer struct {
	version string
	score   float64
	delay   time.Duration
	err     error
}

func (f fakeScorer) Version() string     { return f.version }
func (fakeScorer) FeatureSchema() string { return "fs-1" }
func (f fakeScorer) Score(v [][]float64) ([]float64, error) {
	time.Sleep(f.delay)
	if f.err != nil {
		return nil, f.err
	}
	out := make([]float64, len(v))
	for i := range out {
		out[i] = f.score
	}
	return out, nil
}

// fakeWindows keeps entries in memory; delay simulates a stalled Redis.
type fakeWindows struct {
	entries map[string][]windows.Entry
	delay   time.Duration
}

func (f *fakeWindows) Load(ctx context.Context, reqs []windows.Request) (map[string][]windows.Entry, error) {
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	out := map[string][]windows.Entry{}
	for _, r := range reqs {
		out[r.Account] = f.entries[r.Account]
	}
	return out, nil
}

func (f *fakeWindows) Record(_ context.Context, by map[string][]windows.Entry) error {
	for a, es := range by {
		f.entries[a] = append(f.entries[a], es...)
	}
	return nil
}

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func featureRecord(t *testing.T, id, acct string, amount int64, schema string, offset int64) *kgo.Record {
	t.Helper()
	r, err := kafka.NewRecord("features.v1", acct, &fraudv1.EnrichedTransaction{
		Transaction: &fraudv1.Transaction{Id: id, AccountId: acct, AmountMinor: amount, EventTime: timestamppb.New(t0.Add(time.Duration(offset) * time.Second))},
		Features:    &fraudv1.FeatureVector{SchemaVersion: schema, Names: []string{"amount", "account_count_1h"}, Values: []float64{float64(amount) / 100, 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Offset = offset
	return r
}

func testSet(t *testing.T) *rules.Set {
	t.Helper()
	set, err := rules.Compile([]rules.Rule{
		{ID: "amount-review", Version: 1, Expression: "tx.amount_minor >= 100000", Action: rules.ActionReview, Reason: "AMOUNT", Enabled: true},
		{ID: "repeat", Version: 1, Expression: "account.declines_1h >= 1", Action: rules.ActionReview, Reason: "REPEAT", Enabled: true},
		{ID: "big", Version: 1, Expression: "tx.amount_minor >= 500000", Action: rules.ActionDecline, Reason: "BIG", Priority: 10, Enabled: true},
	}, nil, []string{"amount", "account_count_1h"})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func newPipeline(t *testing.T, s modelset.Scorer, w Windows, b Budgets) (*Pipeline, *atomic.Int64) {
	set := testSet(t)
	calls := &atomic.Int64{}
	models := &modelset.Set{Primary: &modelset.Loaded{Scorer: s}, Shadow: &modelset.Loaded{Scorer: fakeScorer{version: "shadow-1", score: 0.42}}}
	deps := Deps{
		Models: func() *modelset.Set {
			calls.Add(1)
			return models
		},
		Rules: func() *rules.Set { return set },
		Lists: func() *lists.Snapshot {
			return lists.NewSnapshot([]lists.Entry{{List: lists.Block, Kind: lists.KindAccount, Value: "blocked"}})
		},
		Windows: w,
	}
	return New(deps, decide.DefaultPolicy(), b, "decisions.v1", func() time.Time { return t0 }, slog.New(slog.NewTextHandler(os.Stderr, nil))), calls
}

func decisions(t *testing.T, out []*kgo.Record) ([]*fraudv1.Decision, int) {
	t.Helper()
	var ds []*fraudv1.Decision
	dlq := 0
	for _, r := range out {
		switch r.Topic {
		case "decisions.v1":
			d := &fraudv1.Decision{}
			if err := kafka.Decode(r, d); err != nil {
				t.Fatal(err)
			}
			if string(r.Key) != d.GetAccountId() {
				t.Errorf("key %q", r.Key)
			}
			ds = append(ds, d)
		case "features.v1.dlq":
			dlq++
			if kafka.Header(r, kafka.HeaderError) == "" {
				t.Error("dead letter without a reason")
			}
		default:
			t.Fatalf("unexpected topic %s", r.Topic)
		}
	}
	return ds, dlq
}

func TestTransform(t *testing.T) {
	t.Parallel()
	p, calls := newPipeline(t, fakeScorer{version: "fake-1", score: 0.1}, &fakeWindows{entries: map[string][]windows.Entry{}}, Budgets{})
	in := []*kgo.Record{
		featureRecord(t, "s:1", "a", 1_000, "fs-1", 1),
		featureRecord(t, "s:2", "a", 200_000, "fs-1", 2),
		featureRecord(t, "s:3", "a", 1_000, "fs-0", 3), // wrong schema
		{Topic: "features.v1", Value: []byte("junk")},
		featureRecord(t, "s:4", "blocked", 1_000, "fs-1", 4),
	}
	out, err := p.Transform(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	ds, dlq := decisions(t, out)
	if len(ds) != 3 || dlq != 2 {
		t.Fatalf("decisions %d, dead letters %d", len(ds), dlq)
	}
	want := []fraudv1.Action{fraudv1.Action_ACTION_APPROVE, fraudv1.Action_ACTION_REVIEW, fraudv1.Action_ACTION_DECLINE}
	for i, d := range ds {
		if d.GetAction() != want[i] {
			t.Errorf("decision %d: %v, want %v", i, d.GetAction(), want[i])
		}
		if d.GetModelVersion() != "fake-1" {
			t.Errorf("model version %q", d.GetModelVersion())
		}
		if d.GetShadowModelVersion() != "shadow-1" || d.GetShadowScore() != 0.42 {
			t.Errorf("shadow not recorded: %q %v", d.GetShadowModelVersion(), d.GetShadowScore())
		}
		if d.GetDegraded() || d.GetAccountWindow() == nil || len(d.GetInputHash()) != 64 {
			t.Errorf("metadata of decision %d: degraded %v window %v hash %q", i, d.GetDegraded(), d.GetAccountWindow(), d.GetInputHash())
		}
		for _, r := range d.GetReasons() {
			if slices.Contains([]string{"INPUT_HASH", "ACCOUNT_WINDOW", "SHADOW_SCORE", "DEGRADED"}, r.GetCode()) {
				t.Errorf("decision %d still carries pseudo reason %s", i, r.GetCode())
			}
		}
	}
	if _, ok := decide.Reason(ds[2], "LIST_BLOCK_ACCOUNT"); !ok {
		t.Error("block hit not a reason")
	}
	wantHit := &fraudv1.ListHit{List: "block", Kind: "account", ValueHash: lists.ValueHash(lists.KindAccount, "blocked")}
	if hs := ds[2].GetListHits(); len(hs) != 1 || !proto.Equal(hs[0], wantHit) {
		t.Errorf("list hits %v, want %v", hs, wantHit)
	}
	if len(ds[0].GetListHits()) != 0 {
		t.Errorf("unlisted account has hits %v", ds[0].GetListHits())
	}
	if calls.Load() != 1 {
		t.Errorf("models read %d times in one batch, want once (a reload must not land mid-batch)", calls.Load())
	}
	if p.Stats.Degraded.Load() != 0 {
		t.Error("healthy batch counted as degraded")
	}
}

func TestWindowsFoldWithinABatchAndAcrossBatches(t *testing.T) {
	t.Parallel()
	w := &fakeWindows{entries: map[string][]windows.Entry{}}
	p, _ := newPipeline(t, fakeScorer{version: "fake-1", score: 0.1}, w, Budgets{})
	out, err := p.Transform(context.Background(), []*kgo.Record{
		featureRecord(t, "s:1", "a", 600_000, "fs-1", 1), // decline
		featureRecord(t, "s:2", "a", 1_000, "fs-1", 2),   // sees 1 decline in 1h → review
	})
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := decisions(t, out)
	if ds[1].GetAction() != fraudv1.Action_ACTION_REVIEW {
		t.Fatalf("in-batch window not applied: %v", ds[1].GetAction())
	}
	if len(w.entries["a"]) != 2 {
		t.Fatalf("recorded %d entries", len(w.entries["a"]))
	}
	out, _ = p.Transform(context.Background(), []*kgo.Record{featureRecord(t, "s:3", "a", 1_000, "fs-1", 3)})
	ds, _ = decisions(t, out)
	wnd, ok := decide.WindowOf(ds[0])
	if !ok || wnd.Declines1h != 1 || wnd.Reviews1h != 1 || wnd.MaxScore24h != 0.1 {
		t.Fatalf("next batch window %+v", wnd)
	}
}

func TestStallsDegradeInsteadOfBlocking(t *testing.T) {
	t.Parallel()
	model, redis := fraudv1.DegradedCause_DEGRADED_CAUSE_MODEL, fraudv1.DegradedCause_DEGRADED_CAUSE_DECISION_WINDOWS
	tests := []struct {
		name   string
		scorer fakeScorer
		win    *fakeWindows
		cause  fraudv1.DegradedCause
	}{
		{"model stalls", fakeScorer{version: "slow", score: 0.99, delay: 300 * time.Millisecond}, &fakeWindows{entries: map[string][]windows.Entry{}}, model},
		{"model fails", fakeScorer{version: "broken", err: errors.New("boom")}, &fakeWindows{entries: map[string][]windows.Entry{}}, model},
		{"redis stalls", fakeScorer{version: "fast", score: 0.1}, &fakeWindows{entries: map[string][]windows.Entry{}, delay: 300 * time.Millisecond}, redis},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, _ := newPipeline(t, tc.scorer, tc.win, Budgets{Model: 30 * time.Millisecond, Windows: 30 * time.Millisecond})
			start := time.Now()
			out, err := p.Transform(context.Background(), []*kgo.Record{
				featureRecord(t, "s:1", "a", 600_000, "fs-1", 1),
				featureRecord(t, "s:2", "b", 1_000, "fs-1", 2),
			})
			if err != nil {
				t.Fatal(err)
			}
			if el := time.Since(start); el > 250*time.Millisecond {
				t.Logf("note: transform took %s", el)
			}
			ds, _ := decisions(t, out)
			if len(ds) != 2 || p.Stats.Degraded.Load() != 2 {
				t.Fatalf("decisions %d degraded %d", len(ds), p.Stats.Degraded.Load())
			}
			if ds[0].GetAction() != fraudv1.Action_ACTION_DECLINE {
				t.Errorf("rules did not act while degraded: %v", ds[0].GetAction())
			}
			if d := ds[1]; !d.GetDegraded() || !slices.Equal(d.GetDegradedCauses(), []fraudv1.DegradedCause{tc.cause}) {
				t.Errorf("degraded %v causes %v, want [%v]", d.GetDegraded(), d.GetDegradedCauses(), tc.cause)
			}
			if (ds[1].GetAccountWindow() == nil) != (tc.cause == redis) {
				t.Errorf("account window %v with cause %v", ds[1].GetAccountWindow(), tc.cause)
			}
		})
	}
}

func TestStuckModelIsNotCalledAgain(t *testing.T) {
	t.Parallel()
	calls := &atomic.Int64{}
	slow := &countingScorer{fakeScorer: fakeScorer{version: "stuck", score: 0.5, delay: 400 * time.Millisecond}, calls: calls}
	p, _ := newPipeline(t, slow, nil, Budgets{Model: 20 * time.Millisecond})
	for i := range 3 {
		if _, err := p.Transform(context.Background(), []*kgo.Record{featureRecord(t, "s:1", "a", 1_000, "fs-1", int64(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != 1 || p.Stats.Degraded.Load() != 3 {
		t.Fatalf("stuck model called %d times, %d degraded; want 1 call, 3 degraded", calls.Load(), p.Stats.Degraded.Load())
	}
}

type countingScorer struct {
	fakeScorer
	calls *atomic.Int64
}

func (c *countingScorer) Score(v [][]float64) ([]float64, error) {
	c.calls.Add(1)
	return c.fakeScorer.Score(v)
}

// fakeRecorder keeps what the pipeline hands the metrics per transform call.
type fakeRecorder struct{ batches [][]*fraudv1.Decision }

func (f *fakeRecorder) Batch(ds []*fraudv1.Decision) { f.batches = append(f.batches, ds) }

func TestRecorderSeesEachBatchOnce(t *testing.T) {
	t.Parallel()
	p, _ := newPipeline(t, fakeScorer{version: "fake-1", score: 0.1}, nil, Budgets{})
	rec := &fakeRecorder{}
	p.deps.Recorder = rec
	out, err := p.Transform(context.Background(), []*kgo.Record{
		featureRecord(t, "s:1", "a", 1_000, "fs-1", 1),
		{Topic: "features.v1", Value: []byte("junk")},
		featureRecord(t, "s:2", "blocked", 1_000, "fs-1", 2),
	})
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := decisions(t, out)
	if _, err := p.Transform(context.Background(), []*kgo.Record{{Topic: "features.v1", Value: []byte("junk")}}); err != nil {
		t.Fatal(err)
	}
	if len(rec.batches) != 2 || len(rec.batches[0]) != 2 || len(rec.batches[1]) != 0 {
		t.Fatalf("batches %v: want the 2 decisions, then an empty batch for the dead-letter-only transaction", rec.batches)
	}
	for i, d := range rec.batches[0] {
		if !proto.Equal(d, ds[i]) {
			t.Errorf("recorded decision %d differs from the produced one", i)
		}
	}
}

// schemaScorer is a scorer of the current feature schema.
type schemaScorer struct{ fakeScorer }

func (schemaScorer) FeatureSchema() string { return features.SchemaVersion }

// TestCheckFeatureNames: features.v1 records leave the names out (the schema version and hash
// fix them); older records carry them. Values that cannot be named are dead-lettered.
func TestCheckFeatureNames(t *testing.T) {
	t.Parallel()
	tx := &fraudv1.Transaction{Id: "s:1", AccountId: "a"}
	n := len(features.Names)
	tests := []struct {
		name    string
		fv      *fraudv1.FeatureVector
		wantErr bool
	}{
		{"current schema without names", &fraudv1.FeatureVector{SchemaVersion: features.SchemaVersion, SchemaHash: features.SchemaHash(), Values: make([]float64, n)}, false},
		{"names carried", &fraudv1.FeatureVector{SchemaVersion: features.SchemaVersion, Names: []string{"a", "b"}, Values: []float64{1, 2}}, false},
		{"too few values", &fraudv1.FeatureVector{SchemaVersion: features.SchemaVersion, SchemaHash: features.SchemaHash(), Values: make([]float64, n-1)}, true},
		{"names and values differ", &fraudv1.FeatureVector{SchemaVersion: features.SchemaVersion, Names: []string{"a", "b"}, Values: []float64{1}}, true},
		{"unknown hash without names", &fraudv1.FeatureVector{SchemaVersion: features.SchemaVersion, SchemaHash: "0123456789abcdef", Values: make([]float64, n)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := check(&fraudv1.EnrichedTransaction{Transaction: tx, Features: tc.fv}, schemaScorer{})
			if (err != nil) != tc.wantErr {
				t.Fatalf("check = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, kafka.ErrDecode) {
				t.Errorf("check = %v, want a dead letter (kafka.ErrDecode)", err)
			}
		})
	}
}

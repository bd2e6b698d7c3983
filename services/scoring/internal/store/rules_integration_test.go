package store

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/libs/testinfra"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/lists"
	"github.com/vigil-fraud/vigil/services/scoring/internal/rules"
)

func TestIntegrationRulesSeedActivePublish(t *testing.T) {
	t.Parallel()
	pool, _ := testinfra.NewDatabase(t)
	ctx := context.Background()
	s := NewRules(pool)
	v1 := []rules.Rule{
		{ID: "a", Version: 1, Expression: "true", Action: rules.ActionReview, Reason: "A", Priority: 1, Enabled: true},
		{ID: "b", Version: 1, Expression: "false", Action: rules.ActionDecline, Reason: "B", Enabled: false, Description: "off"},
	}
	if n, err := s.Seed(ctx, v1, false); err != nil || n != 2 {
		t.Fatalf("seed: %d %v", n, err)
	}
	// A second seed without force leaves a non-empty table alone.
	if n, err := s.Seed(ctx, []rules.Rule{{ID: "c", Version: 1, Expression: "true", Action: rules.ActionReview, Reason: "C"}}, false); err != nil || n != 0 {
		t.Fatalf("reseed: %d %v", n, err)
	}
	// A new version of a rule supersedes the old one; the old row stays.
	if n, err := s.Seed(ctx, []rules.Rule{{ID: "a", Version: 2, Expression: "false", Action: rules.ActionDecline, Reason: "A2", Enabled: true}}, true); err != nil || n != 1 {
		t.Fatalf("force seed: %d %v", n, err)
	}
	active, err := s.Active(ctx)
	if err != nil || len(active) != 2 || active[0].Version != 2 || active[0].Reason != "A2" || active[1].Enabled || active[1].Description != "off" {
		t.Fatalf("active %+v %v", active, err)
	}
	set, err := rules.Compile(active, map[string]float64{"x": 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Publish(ctx, set); err != nil {
			t.Fatal(err)
		}
	}
	def, err := s.Set(ctx, set.Version())
	if err != nil {
		t.Fatal(err)
	}
	back, err := rules.FromCanonical(def, nil)
	if err != nil || back.Version() != set.Version() {
		t.Fatalf("stored set rebuilds as %v (%v), want %s", back, err, set.Version())
	}
	if _, err := s.Set(ctx, "rs-nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing set: %v", err)
	}
}

func TestIntegrationListsUnexpired(t *testing.T) {
	t.Parallel()
	pool, _ := testinfra.NewDatabase(t)
	ctx := context.Background()
	s := NewLists(pool)
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, e := range []lists.Entry{
		{List: lists.Block, Kind: lists.KindCard, Value: "tok", Reason: "stolen"},
		{List: lists.Allow, Kind: lists.KindAccount, Value: "a1", ExpiresAt: now.Add(time.Hour)},
		{List: lists.Block, Kind: lists.KindIP, Value: "198.51.100.1", ExpiresAt: now.Add(-time.Second)},
	} {
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, lists.Entry{List: "deny", Kind: lists.KindIP, Value: "x"}); err == nil {
		t.Fatal("invalid entry stored")
	}
	es, err := s.Unexpired(ctx, now)
	if err != nil || len(es) != 2 {
		t.Fatalf("unexpired %+v %v", es, err)
	}
	hits := lists.NewSnapshot(es).Match(lists.Keys{lists.KindCard: "tok", lists.KindAccount: "a1", lists.KindIP: "198.51.100.1"}, now)
	if len(hits) != 2 || hits[0].List != lists.Block {
		t.Fatalf("hits %+v", hits)
	}
}

func TestIntegrationApplyStoresExplainColumns(t *testing.T) {
	t.Parallel()
	pool, _ := testinfra.NewDatabase(t)
	ctx := context.Background()
	r := decisionRecord(t, "s:9", fraudv1.Action_ACTION_REVIEW, 0)
	d := &fraudv1.Decision{}
	if err := kafka.Decode(r, d); err != nil {
		t.Fatal(err)
	}
	d.InputHash, d.Degraded = "abc", true
	d.DegradedCauses = []fraudv1.DegradedCause{fraudv1.DegradedCause_DEGRADED_CAUSE_MODEL}
	d.ShadowModelVersion, d.ShadowScore = "lr-2", 0.25
	// A score that needs all 17 digits: jsonb must keep it bit for bit.
	d.AccountWindow = &fraudv1.AccountWindow{Reviews_1H: 1, Declines_24H: 2, MaxScore_24H: 0.1 + 0.2}
	d.ListHits = []*fraudv1.ListHit{{List: "block", Kind: "card", Reason: "stolen", ValueHash: lists.ValueHash(lists.KindCard, "tok")}}
	r, _ = kafka.NewRecord("decisions.v1", "acct", d)
	if err := postgres.InTx(ctx, pool, func(tx pgx.Tx) error {
		return NewDecisions(slog.New(slog.DiscardHandler)).Apply(ctx, tx, []*kgo.Record{r})
	}); err != nil {
		t.Fatal(err)
	}
	row, err := Decision(ctx, pool, "s:9")
	if err != nil {
		t.Fatal(err)
	}
	in := &fraudv1.EnrichedTransaction{}
	if err := proto.Unmarshal(row.Input, in); err != nil || !proto.Equal(in, d.GetInput()) || row.InputHash != "abc" {
		t.Fatalf("input %v hash %q %v", in, row.InputHash, err)
	}
	var degraded bool
	var shadowVersion, hits string
	var shadowScore float64
	if err := pool.QueryRow(ctx, `SELECT degraded, shadow_model_version, shadow_score, list_hits::text FROM decisions WHERE transaction_id = 's:9'`).
		Scan(&degraded, &shadowVersion, &shadowScore, &hits); err != nil {
		t.Fatal(err)
	}
	if !degraded || shadowVersion != "lr-2" || shadowScore != 0.25 {
		t.Fatalf("degraded %v shadow %s %v", degraded, shadowVersion, shadowScore)
	}
	if strings.Contains(hits, `"tok"`) || !strings.Contains(hits, lists.ValueHash(lists.KindCard, "tok")) {
		t.Fatalf("list_hits %s: want the value hash, never the token", hits)
	}
	// What explain reads back is what the scorer produced.
	want := &fraudv1.Decision{DecisionId: d.GetDecisionId(), TransactionId: "s:9", Reasons: d.GetReasons(), InputHash: "abc", Degraded: true,
		DegradedCauses: d.GetDegradedCauses(), ShadowModelVersion: "lr-2", ShadowScore: 0.25, AccountWindow: d.GetAccountWindow(), ListHits: d.GetListHits()}
	if !proto.Equal(row.Recorded, want) {
		t.Fatalf("recorded\n %v\nwant\n %v", row.Recorded, want)
	}
	if _, err := Decision(ctx, pool, "s:none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

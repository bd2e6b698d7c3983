package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/libs/testinfra"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/decide"
	"github.com/vigil-fraud/vigil/services/scoring/internal/lists"
	"github.com/vigil-fraud/vigil/services/scoring/internal/modelset"
	"github.com/vigil-fraud/vigil/services/scoring/internal/rules"
	"github.com/vigil-fraud/vigil/services/scoring/internal/store"
)

// TestIntegrationExplain stores decisions (healthy with a list hit and a window, and degraded)
// the way the sink does, explains them, then tampers with a row and with the model.
func TestIntegrationExplain(t *testing.T) {
	pool, dbURL := testinfra.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	modelPath, otherPath := filepath.Join(dir, "m.json"), filepath.Join(dir, "other.json")
	if err := testArtifact("lr-x").Save(modelPath); err != nil {
		t.Fatal(err)
	}
	if err := testArtifact("lr-y").Save(otherPath); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(config.FromMap(map[string]string{"VIGIL_POSTGRES_URL": dbURL, "VIGIL_SCORING_MODEL_PATH": modelPath}))
	if err != nil {
		t.Fatal(err)
	}
	rs, _, err := rulesFile("")
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(rs, cfg.Policy.Params(), features.Names)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.NewRules(pool).Publish(ctx, set); err != nil {
		t.Fatal(err)
	}
	m, err := modelset.Load(modelPath, features.SchemaVersion)
	if err != nil {
		t.Fatal(err)
	}
	et := func(id string, i int) *fraudv1.EnrichedTransaction {
		r := enrichedRecord(t, "x", i, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		e := &fraudv1.EnrichedTransaction{}
		if err := kafka.Decode(r, e); err != nil {
			t.Fatal(err)
		}
		e.Transaction.Id = id
		return e
	}
	healthy := et("ex:1", 10)
	scores, _ := m.Score([][]float64{healthy.GetFeatures().GetValues()})
	inputs := []decide.Input{
		{ET: healthy, Model: decide.ModelResult{Version: m.Version(), Score: scores[0], OK: true, Contributions: m.Contributions(healthy.GetFeatures().GetValues())},
			Window: rules.Window{Declines1h: 3, MaxScore24h: 0.1 + 0.2}, WindowOK: true,
			Hits:   []lists.Hit{{List: lists.Block, Kind: lists.KindDevice, Reason: "emulator", ValueHash: lists.ValueHash(lists.KindDevice, "d")}},
			Shadow: &decide.Shadow{Version: "lr-shadow", Score: 0.125}},
		{ET: et("ex:2", 50), Model: decide.ModelResult{Version: m.Version()}},
		modelOnly(t, m, et("ex:3", 30)),
		// ex:4 is rewritten below into the pre-0005 form (metadata as pseudo reasons).
		withWindow(modelOnly(t, m, et("ex:4", 20)), rules.Window{Reviews24h: 2, MaxScore24h: 0.7},
			[]lists.Hit{{List: lists.Allow, Kind: lists.KindCountry, Reason: "home"}}, &decide.Shadow{Version: "lr-shadow", Score: 0.5}),
	}
	var recs []*kgo.Record
	for i, in := range inputs {
		d, err := decide.Decide(in, set, cfg.Policy, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		d.ReceivedTime = timestamppb.Now()
		r, err := kafka.NewRecord("decisions.v1", d.GetAccountId(), d)
		if err != nil {
			t.Fatal(err)
		}
		r.Offset = int64(i)
		recs = append(recs, r)
	}
	if err := postgres.InTx(ctx, pool, func(tx pgx.Tx) error {
		return store.NewDecisions(slog.New(slog.DiscardHandler)).Apply(ctx, tx, recs)
	}); err != nil {
		t.Fatal(err)
	}

	legacy := `[{"code":"ACCOUNT_WINDOW","description":"{\"reviews_1h\":0,\"declines_1h\":0,\"reviews_24h\":2,\"declines_24h\":0,\"max_score_24h\":0.7}"},
		{"code":"SHADOW_SCORE","description":"lr-shadow","weight":0.5},
		{"code":"INPUT_HASH","description":"` + inputHash(t, inputs[3]) + `"}]`
	if _, err := pool.Exec(ctx, `UPDATE decisions SET reasons = reasons || $1::jsonb, account_window = NULL, list_hits = '[]',
		degraded_causes = '{}' WHERE transaction_id = 'ex:4'`, legacy); err != nil {
		t.Fatal(err)
	}

	for _, id := range []string{"ex:1", "ex:2", "ex:3", "ex:4"} {
		ex, err := explainDecision(ctx, pool, cfg, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if !ex.Match() {
			t.Fatalf("%s does not reproduce:\n%s", id, ex)
		}
		if !strings.Contains(ex.String(), "MATCH bit for bit") {
			t.Errorf("report: %s", ex)
		}
	}

	// One ulp on the stored score is a mismatch.
	if _, err := pool.Exec(ctx, `UPDATE decisions SET score = score * (1 + 2.3e-16) WHERE transaction_id = 'ex:1'`); err != nil {
		t.Fatal(err)
	}
	ex, err := explainDecision(ctx, pool, cfg, "ex:1")
	if err != nil || ex.Match() || !strings.Contains(ex.String(), "score: stored") {
		t.Fatalf("tampered score: %v\n%s", err, ex)
	}
	// So is a different window: the recomputed input hash no longer matches.
	if _, err := pool.Exec(ctx, `UPDATE decisions SET account_window = jsonb_set(account_window, '{declines_1h}', '4') WHERE transaction_id = 'ex:1'`); err != nil {
		t.Fatal(err)
	}
	ex, err = explainDecision(ctx, pool, cfg, "ex:1")
	if err != nil || ex.Match() || !strings.Contains(ex.String(), "input hash: stored") {
		t.Fatalf("tampered window: %v\n%s", err, ex)
	}
	// Another model than the recorded one is refused by name.
	cfg.ModelPath = otherPath
	if _, err := explainDecision(ctx, pool, cfg, "ex:1"); err == nil || !strings.Contains(err.Error(), "scored by model lr-x") {
		t.Fatalf("wrong model: %v", err)
	}
	if _, err := explainDecision(ctx, pool, cfg, "ex:none"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("unknown transaction: %v", err)
	}
}

// modelOnly is a decision input whose decision windows were unavailable but the model answered.
func modelOnly(t *testing.T, m *modelset.Loaded, e *fraudv1.EnrichedTransaction) decide.Input {
	t.Helper()
	v := e.GetFeatures().GetValues()
	sc, err := m.Score([][]float64{v})
	if err != nil {
		t.Fatal(err)
	}
	return decide.Input{ET: e, Model: decide.ModelResult{Version: m.Version(), Score: sc[0], OK: true, Contributions: m.Contributions(v)}}
}

func inputHash(t *testing.T, in decide.Input) string {
	t.Helper()
	h, err := decide.InputHash(in)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func withWindow(in decide.Input, w rules.Window, hits []lists.Hit, sh *decide.Shadow) decide.Input {
	in.Window, in.WindowOK, in.Hits, in.Shadow = w, true, hits, sh
	return in
}

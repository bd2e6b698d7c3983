package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/decide"
	"github.com/vigil-fraud/vigil/services/scoring/internal/lists"
	"github.com/vigil-fraud/vigil/services/scoring/internal/modelset"
	"github.com/vigil-fraud/vigil/services/scoring/internal/rules"
	"github.com/vigil-fraud/vigil/services/scoring/internal/store"
)

func rulesCheck(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rules check", flag.ContinueOnError)
	file := fs.String("file", "", "rules YAML file (default: the built-in rules.yaml)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rs, name, err := rulesFile(*file)
	if err != nil {
		return err
	}
	set, err := rules.Compile(rs, decide.DefaultPolicy().Params(), features.Names)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(stdout, "%s: %d rules compile; rule set %s (with default parameters)\n", name, len(rs), set.Version())
	return nil
}

func rulesSeed(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rules seed", flag.ContinueOnError)
	file := fs.String("file", "", "rules YAML file (default: VIGIL_SCORING_RULES_FILE, else the built-in rules.yaml)")
	force := fs.Bool("force", false, "also add rule versions not stored yet when the table is not empty")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(config.FromOS())
	if err != nil {
		return err
	}
	if *file != "" {
		cfg.RulesFile = *file
	}
	rs, name, err := rulesFile(cfg.RulesFile)
	if err != nil {
		return err
	}
	if _, err := rules.Compile(rs, cfg.Policy.Params(), features.Names); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.NewRules(pool)
	n, err := st.Seed(ctx, rs, *force)
	if err != nil {
		return err
	}
	set, err := compileStored(ctx, st, cfg.Policy.Params())
	if err != nil {
		return err
	}
	if err := st.Publish(ctx, set); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: inserted %d rule versions; active rule set %s\n", name, n, set.Version())
	return nil
}

func listsPut(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("lists put", flag.ContinueOnError)
	list := fs.String("list", "", "allow or block")
	kind := fs.String("kind", "", "account, card (token), terminal, device, ip or country")
	value := fs.String("value", "", "the value to match exactly")
	reason := fs.String("reason", "", "why (shown on decisions)")
	ttl := fs.Duration("ttl", 0, "expiry from now; 0 never expires")
	if err := fs.Parse(args); err != nil {
		return err
	}
	e := lists.Entry{List: lists.List(*list), Kind: lists.Kind(*kind), Value: *value, Reason: *reason}
	if *ttl < 0 {
		return fmt.Errorf("lists put: -ttl %s must not be negative", *ttl)
	}
	if *ttl > 0 {
		e.ExpiresAt = time.Now().Add(*ttl)
	}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("lists put: %w", err)
	}
	cfg, err := loadConfig(config.FromOS())
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := store.NewLists(pool).Put(ctx, e); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s entry stored; scorers pick it up within VIGIL_SCORING_LISTS_REFRESH (%s) or on SIGHUP\n", e.List, e.Kind, cfg.ListsRefresh)
	return nil
}

func explain(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	modelPath := fs.String("model", "", "model artifact the decision was scored with (default: VIGIL_SCORING_MODEL_PATH)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("explain: want exactly one transaction id")
	}
	cfg, err := loadConfig(config.FromOS())
	if err != nil {
		return err
	}
	if *modelPath != "" {
		cfg.ModelPath = *modelPath
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	rep, err := explainDecision(ctx, pool, cfg, fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, rep.String())
	if !rep.Match() {
		return fmt.Errorf("decision of %s does not reproduce", fs.Arg(0))
	}
	return nil
}

// Explanation compares a stored decision with its recomputation.
type Explanation struct {
	TransactionID, DecisionID, Action, ModelVersion, RuleSetVersion, InputHash string
	Score                                                                      float64
	Reasons                                                                    []*fraudv1.Reason
	Degraded                                                                   bool
	Shadow                                                                     string
	ShadowScore                                                                float64
	Diffs                                                                      []string
}

// Match reports a bit-for-bit reproduction.
func (e Explanation) Match() bool { return len(e.Diffs) == 0 }

func (e Explanation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "transaction %s → %s (decision %s)\n", e.TransactionID, e.Action, e.DecisionID)
	fmt.Fprintf(&b, "  score %.17g  model %s  rule set %s\n  input sha256 %s\n", e.Score, e.ModelVersion, e.RuleSetVersion, e.InputHash)
	if e.Degraded {
		b.WriteString("  degraded: rules and lists only\n")
	}
	if e.Shadow != "" {
		fmt.Fprintf(&b, "  shadow %s scored %.17g (never acts)\n", e.Shadow, e.ShadowScore)
	}
	for _, r := range e.Reasons {
		fmt.Fprintf(&b, "  reason %-28s %s", r.GetCode(), r.GetDescription())
		if r.GetWeight() != 0 {
			fmt.Fprintf(&b, " (%.6g)", r.GetWeight())
		}
		b.WriteString("\n")
	}
	if e.Match() {
		b.WriteString("recomputed: MATCH bit for bit (action, score, reasons, input hash, window, list hits, degraded, shadow)\n")
		return b.String()
	}
	b.WriteString("recomputed: MISMATCH\n")
	for _, d := range e.Diffs {
		fmt.Fprintf(&b, "  - %s\n", d)
	}
	return b.String()
}

// explainDecision recomputes the decision of txID from its stored inputs with the recorded rule
// set and the model at cfg.ModelPath (which must be the recorded version).
func explainDecision(ctx context.Context, pool *pgxpool.Pool, cfg Config, txID string) (Explanation, error) {
	row, err := store.Decision(ctx, pool, txID)
	if err != nil {
		return Explanation{}, err
	}
	// Rows written before migration 0005 carry the metadata as pseudo reasons.
	recorded, err := decide.LegacyMetadata(row.Recorded)
	if err != nil {
		return Explanation{}, err
	}
	ex := Explanation{TransactionID: txID, DecisionID: row.DecisionID, Action: row.Action, ModelVersion: row.ModelVersion,
		RuleSetVersion: row.RuleSetVersion, InputHash: recorded.GetInputHash(), Score: row.Score, Reasons: recorded.GetReasons(),
		Degraded: recorded.GetDegraded(), Shadow: recorded.GetShadowModelVersion(), ShadowScore: recorded.GetShadowScore()}
	if len(row.Input) == 0 {
		return ex, fmt.Errorf("decision %s has no stored input (written before migration 0004)", row.DecisionID)
	}
	et := &fraudv1.EnrichedTransaction{}
	if err := proto.Unmarshal(row.Input, et); err != nil {
		return ex, fmt.Errorf("decision %s: stored input: %w", row.DecisionID, err)
	}
	def, err := store.NewRules(pool).Set(ctx, row.RuleSetVersion)
	if err != nil {
		return ex, err
	}
	set, err := rules.FromCanonical(def, features.Names)
	if err != nil {
		return ex, fmt.Errorf("rule set %s: %w", row.RuleSetVersion, err)
	}
	if set.Version() != row.RuleSetVersion {
		return ex, fmt.Errorf("rule set %s rebuilt as %s: definition changed", row.RuleSetVersion, set.Version())
	}

	in := decide.Input{ET: et, Model: decide.ModelResult{Version: row.ModelVersion}}
	in.Model.OK = decide.ModelOK(recorded)
	in.Window, in.WindowOK = decide.WindowOf(recorded)
	in.Hits = decide.HitsOf(recorded)
	if v := recorded.GetShadowModelVersion(); v != "" {
		// The shadow never acts; its recorded score is carried over, not recomputed.
		in.Shadow = &decide.Shadow{Version: v, Score: recorded.GetShadowScore()}
	}
	if in.Model.OK {
		m, err := modelset.Load(cfg.ModelPath, row.FeatureSchemaVersion)
		if err != nil {
			return ex, err
		}
		if m.Version() != row.ModelVersion {
			return ex, fmt.Errorf("decision %s was scored by model %s, %q is %s: pass -model with that artifact",
				row.DecisionID, row.ModelVersion, cfg.ModelPath, m.Version())
		}
		values := et.GetFeatures().GetValues()
		scores, err := m.Score([][]float64{values})
		if err != nil {
			return ex, fmt.Errorf("rescore with %s: %w", m.Version(), err)
		}
		in.Model.Score, in.Model.Contributions = scores[0], m.Contributions(values)
	}
	p := cfg.Policy
	p.ReviewThreshold, p.DeclineThreshold = row.ReviewThreshold, row.DeclineThreshold
	got, err := decide.Decide(in, set, p, recorded.GetDecidedTime().AsTime())
	if err != nil {
		return ex, err
	}
	ex.Diffs = compare(row, recorded, got)
	return ex, nil
}

func compare(row store.StoredDecision, recorded, got *fraudv1.Decision) []string {
	var diffs []string
	if a := decide.ActionName(got.GetAction()); a != row.Action {
		diffs = append(diffs, fmt.Sprintf("action: stored %s, recomputed %s", row.Action, a))
	}
	if math.Float64bits(got.GetScore()) != math.Float64bits(row.Score) {
		diffs = append(diffs, fmt.Sprintf("score: stored %.17g, recomputed %.17g", row.Score, got.GetScore()))
	}
	if got.GetDecisionId() != row.DecisionID {
		diffs = append(diffs, fmt.Sprintf("decision id: stored %s, recomputed %s", row.DecisionID, got.GetDecisionId()))
	}
	if got.GetInputHash() != recorded.GetInputHash() {
		diffs = append(diffs, fmt.Sprintf("input hash: stored %s, recomputed %s", recorded.GetInputHash(), got.GetInputHash()))
	}
	if got.GetDegraded() != recorded.GetDegraded() || !slices.Equal(got.GetDegradedCauses(), recorded.GetDegradedCauses()) {
		diffs = append(diffs, fmt.Sprintf("degraded: stored %v %v, recomputed %v %v",
			recorded.GetDegraded(), recorded.GetDegradedCauses(), got.GetDegraded(), got.GetDegradedCauses()))
	}
	if !proto.Equal(got.GetAccountWindow(), recorded.GetAccountWindow()) {
		diffs = append(diffs, fmt.Sprintf("account window: stored %v, recomputed %v", recorded.GetAccountWindow(), got.GetAccountWindow()))
	}
	if got.GetShadowModelVersion() != recorded.GetShadowModelVersion() ||
		math.Float64bits(got.GetShadowScore()) != math.Float64bits(recorded.GetShadowScore()) {
		diffs = append(diffs, fmt.Sprintf("shadow: stored %s %v, recomputed %s %v",
			recorded.GetShadowModelVersion(), recorded.GetShadowScore(), got.GetShadowModelVersion(), got.GetShadowScore()))
	}
	if len(got.GetListHits()) != len(recorded.GetListHits()) {
		diffs = append(diffs, fmt.Sprintf("list hits: stored %d, recomputed %d", len(recorded.GetListHits()), len(got.GetListHits())))
	}
	for i := 0; i < min(len(got.GetListHits()), len(recorded.GetListHits())); i++ {
		if a, b := recorded.GetListHits()[i], got.GetListHits()[i]; !proto.Equal(a, b) {
			diffs = append(diffs, fmt.Sprintf("list hit %d: stored %v, recomputed %v", i, a, b))
		}
	}
	gr, rr := got.GetReasons(), recorded.GetReasons()
	if len(gr) != len(rr) {
		diffs = append(diffs, fmt.Sprintf("reasons: stored %d, recomputed %d", len(rr), len(gr)))
	}
	for i := 0; i < min(len(gr), len(rr)); i++ {
		a, b := rr[i], gr[i]
		if a.GetCode() != b.GetCode() || a.GetDescription() != b.GetDescription() || math.Float64bits(a.GetWeight()) != math.Float64bits(b.GetWeight()) {
			diffs = append(diffs, fmt.Sprintf("reason %d: stored %s %q %v, recomputed %s %q %v", i,
				a.GetCode(), a.GetDescription(), a.GetWeight(), b.GetCode(), b.GetDescription(), b.GetWeight()))
		}
	}
	return diffs
}

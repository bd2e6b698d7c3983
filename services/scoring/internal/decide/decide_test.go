package decide

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/lists"
	"github.com/vigil-fraud/vigil/services/scoring/internal/rules"
)

var names = []string{"amount", "account_count_1h", "is_night", "is_weekend"}

func enriched(amount int64, count1h float64) *fraudv1.EnrichedTransaction {
	return &fraudv1.EnrichedTransaction{
		Transaction: &fraudv1.Transaction{Id: "src:1", AccountId: "a", AmountMinor: amount, Currency: "EUR",
			Card: &fraudv1.Card{Token: "tok"}, Country: "FR", EventTime: timestamppb.New(time.Date(2024, 3, 6, 12, 0, 0, 0, time.UTC))},
		Features: &fraudv1.FeatureVector{
			SchemaVersion: "fs-1", Names: names, Values: []float64{float64(amount) / 100, count1h, 0, 0},
		},
	}
}

// defaultSet compiles the shipped rules.yaml: these tests pin what the default rule set does.
func defaultSet(t testing.TB) *rules.Set {
	t.Helper()
	b, err := os.ReadFile("../../rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.ParseYAML("rules.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(rs, DefaultPolicy().Params(), names)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func codes(d *fraudv1.Decision) []string {
	var out []string
	for _, r := range d.GetReasons() {
		out = append(out, r.GetCode())
	}
	return out
}

func TestDecideDefaultRules(t *testing.T) {
	t.Parallel()
	set := defaultSet(t)
	p := DefaultPolicy()
	tests := []struct {
		name    string
		amount  int64
		count   float64
		score   float64
		window  rules.Window
		want    fraudv1.Action
		reasons []string
	}{
		{"small amount approves", 1_000, 1, 0.1, rules.Window{}, fraudv1.Action_ACTION_APPROVE, nil},
		{"review amount", 100_000, 1, 0.1, rules.Window{}, fraudv1.Action_ACTION_REVIEW, []string{"AMOUNT_OVER_REVIEW_LIMIT"}},
		{"just under review amount", 99_999, 1, 0.1, rules.Window{}, fraudv1.Action_ACTION_APPROVE, nil},
		{"decline amount", 500_000, 1, 0.1, rules.Window{}, fraudv1.Action_ACTION_DECLINE, []string{"AMOUNT_OVER_DECLINE_LIMIT"}},
		{"score at review threshold", 1_000, 1, 0.8, rules.Window{}, fraudv1.Action_ACTION_REVIEW, []string{ReasonScoreReview}},
		{"score just under review threshold", 1_000, 1, 0.7999, rules.Window{}, fraudv1.Action_ACTION_APPROVE, nil},
		{"score at decline threshold", 1_000, 1, 0.95, rules.Window{}, fraudv1.Action_ACTION_DECLINE, []string{ReasonScoreDecline}},
		{"velocity", 1_000, 10, 0.1, rules.Window{}, fraudv1.Action_ACTION_REVIEW, []string{"ACCOUNT_VELOCITY_1H"}},
		{"repeat decliner window", 1_000, 1, 0.1, rules.Window{Declines1h: 3}, fraudv1.Action_ACTION_REVIEW, []string{"ACCOUNT_DECLINES_1H"}},
		{"strongest action wins, all reasons kept", 100_000, 12, 0.99, rules.Window{}, fraudv1.Action_ACTION_DECLINE,
			[]string{"AMOUNT_OVER_REVIEW_LIMIT", "ACCOUNT_VELOCITY_1H", ReasonScoreDecline}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := Input{ET: enriched(tc.amount, tc.count), Model: ModelResult{Version: "m1", Score: tc.score, OK: true}, Window: tc.window, WindowOK: true}
			d, err := Decide(in, set, p, time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if d.GetAction() != tc.want {
				t.Errorf("action %v, want %v", d.GetAction(), tc.want)
			}
			if got := codes(d); !slices.Equal(got, tc.reasons) {
				t.Errorf("reasons %v, want %v", got, tc.reasons)
			}
			if d.GetRuleSetVersion() != set.Version() || d.GetModelVersion() != "m1" || d.GetFeatureSchemaVersion() != "fs-1" ||
				d.GetReviewThreshold() != 0.8 || d.GetDeclineThreshold() != 0.95 {
				t.Errorf("versions/thresholds not recorded: %v", d)
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	set, err := rules.Compile([]rules.Rule{
		{ID: "vip", Version: 1, Expression: `tx.country == "LU"`, Action: rules.ActionApprove, Reason: "VIP", Priority: 200, Enabled: true},
		{ID: "big", Version: 1, Expression: `tx.amount_minor >= 500000`, Action: rules.ActionDecline, Reason: "BIG", Priority: 100, Enabled: true},
		{ID: "late-approve", Version: 1, Expression: `tx.currency == "EUR"`, Action: rules.ActionApprove, Reason: "LOW", Priority: 1, Enabled: true},
	}, nil, names)
	if err != nil {
		t.Fatal(err)
	}
	block := lists.Hit{List: lists.Block, Kind: lists.KindCard, Reason: "stolen"}
	allow := lists.Hit{List: lists.Allow, Kind: lists.KindAccount, Reason: "vip"}
	tests := []struct {
		name    string
		country string
		amount  int64
		score   float64
		hits    []lists.Hit
		want    fraudv1.Action
	}{
		{"block beats allow", "FR", 1_000, 0.1, []lists.Hit{block, allow}, fraudv1.Action_ACTION_DECLINE},
		{"allow overrides decline rule and score", "FR", 900_000, 0.99, []lists.Hit{allow}, fraudv1.Action_ACTION_APPROVE},
		{"high-priority approve rule overrides", "LU", 900_000, 0.99, nil, fraudv1.Action_ACTION_APPROVE},
		{"low-priority approve rule does not override", "FR", 900_000, 0.1, nil, fraudv1.Action_ACTION_DECLINE},
		{"low-priority approve rule alone approves even a high score", "FR", 1_000, 0.99, nil, fraudv1.Action_ACTION_APPROVE},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			et := enriched(tc.amount, 1)
			et.Transaction.Country = tc.country
			d, err := Decide(Input{ET: et, Model: ModelResult{Score: tc.score, OK: true}, WindowOK: true, Hits: tc.hits}, set, DefaultPolicy(), time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if d.GetAction() != tc.want {
				t.Errorf("action %v, want %v (reasons %v)", d.GetAction(), tc.want, codes(d))
			}
		})
	}
}

func TestReasonCodesAndMetadata(t *testing.T) {
	t.Parallel()
	set := defaultSet(t)
	in := Input{
		ET: enriched(1_000, 1),
		Model: ModelResult{Version: "m1", Score: 0.3, OK: true, Contributions: []Contribution{
			{Name: "amount", Value: 10, Logit: 0.5}, {Name: "is_night", Value: 1, Logit: 1.5},
			{Name: "account_count_1h", Value: 1, Logit: -2}, {Name: "is_weekend", Value: 0, Logit: 0.5},
		}},
		Window: rules.Window{Reviews24h: 2, MaxScore24h: 0.7}, WindowOK: true,
		Hits:   []lists.Hit{{List: lists.Allow, Kind: lists.KindCountry, Reason: "home", ValueHash: lists.ValueHash(lists.KindCountry, "FR")}},
		Shadow: &Shadow{Version: "m2", Score: 0.25},
	}
	p := DefaultPolicy()
	p.TopFeatures = 2
	d, err := Decide(in, set, p, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	// Reasons are real reasons only: the metadata has its own fields.
	want := []string{"LIST_ALLOW_COUNTRY", ReasonFeaturePrefix + "is_night", ReasonFeaturePrefix + "amount"}
	if got := codes(d); !slices.Equal(got, want) {
		t.Fatalf("reasons %v, want %v", got, want)
	}
	if r, _ := Reason(d, ReasonFeaturePrefix+"is_night"); r.GetWeight() != 1.5 {
		t.Errorf("contribution weight %v", r.GetWeight())
	}
	if d.GetShadowModelVersion() != "m2" || d.GetShadowScore() != 0.25 {
		t.Errorf("shadow %q %v", d.GetShadowModelVersion(), d.GetShadowScore())
	}
	if d.GetDegraded() || len(d.GetDegradedCauses()) != 0 {
		t.Errorf("healthy decision degraded: %v", d.GetDegradedCauses())
	}
	wantWindow := &fraudv1.AccountWindow{Reviews_24H: 2, MaxScore_24H: 0.7}
	if !proto.Equal(d.GetAccountWindow(), wantWindow) {
		t.Errorf("account window %v, want %v", d.GetAccountWindow(), wantWindow)
	}
	wantHits := []*fraudv1.ListHit{{List: "allow", Kind: "country", Reason: "home", ValueHash: lists.ValueHash(lists.KindCountry, "FR")}}
	if len(d.GetListHits()) != 1 || !proto.Equal(d.GetListHits()[0], wantHits[0]) {
		t.Errorf("list hits %v, want %v", d.GetListHits(), wantHits)
	}
	w, ok := WindowOf(d)
	if !ok || w != in.Window {
		t.Errorf("window round trip %v %v", w, ok)
	}
	if hits := HitsOf(d); !slices.Equal(hits, in.Hits) {
		t.Errorf("hits round trip %v", hits)
	}
	if !ModelOK(d) {
		t.Error("model answered but ModelOK is false")
	}

	// The input hash is stable and covers the window, the hits and the model's availability.
	h1, _ := InputHash(in)
	if d.GetInputHash() != h1 || len(h1) != 64 {
		t.Fatalf("input hash %q, want %s", d.GetInputHash(), h1)
	}
	for name, edit := range map[string]func(*Input){
		"window":  func(i *Input) { i.Window.Declines1h++ },
		"hits":    func(i *Input) { i.Hits = nil },
		"model":   func(i *Input) { i.Model.OK = false },
		"amount":  func(i *Input) { i.ET = enriched(1_001, 1) },
		"windows": func(i *Input) { i.WindowOK = false },
	} {
		c := in
		edit(&c)
		if h2, _ := InputHash(c); h2 == h1 {
			t.Errorf("hash ignores %s", name)
		}
	}
}

func TestDegraded(t *testing.T) {
	t.Parallel()
	set := defaultSet(t)
	// The model missed its deadline: its (stale) score must not act, rules still do.
	in := Input{ET: enriched(600_000, 1), Model: ModelResult{Version: "m1", Score: 0.01, OK: false}, WindowOK: false}
	d, err := Decide(in, set, DefaultPolicy(), time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if d.GetAction() != fraudv1.Action_ACTION_DECLINE || d.GetScore() != 0 {
		t.Fatalf("action %v score %v", d.GetAction(), d.GetScore())
	}
	wantCauses := []fraudv1.DegradedCause{fraudv1.DegradedCause_DEGRADED_CAUSE_MODEL, fraudv1.DegradedCause_DEGRADED_CAUSE_DECISION_WINDOWS}
	if !d.GetDegraded() || !slices.Equal(d.GetDegradedCauses(), wantCauses) || ModelOK(d) {
		t.Fatalf("degraded %v causes %v", d.GetDegraded(), d.GetDegradedCauses())
	}
	if d.GetAccountWindow() != nil {
		t.Error("degraded decision records a window")
	}
	if got := codes(d); !slices.Equal(got, []string{"AMOUNT_OVER_DECLINE_LIMIT"}) {
		t.Errorf("reasons %v: degradation is a field, not a reason", got)
	}
}

func TestDegradedCauses(t *testing.T) {
	t.Parallel()
	set := defaultSet(t)
	tests := []struct {
		name     string
		modelOK  bool
		windowOK bool
		want     []fraudv1.DegradedCause
		window   bool
	}{
		{"healthy", true, true, nil, true},
		{"model only", false, true, []fraudv1.DegradedCause{fraudv1.DegradedCause_DEGRADED_CAUSE_MODEL}, true},
		{"windows only", true, false, []fraudv1.DegradedCause{fraudv1.DegradedCause_DEGRADED_CAUSE_DECISION_WINDOWS}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := Input{ET: enriched(1_000, 1), Model: ModelResult{Version: "m1", Score: 0.5, OK: tc.modelOK}, WindowOK: tc.windowOK,
				Window: rules.Window{Declines1h: 1}}
			d, err := Decide(in, set, DefaultPolicy(), time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if d.GetDegraded() != (len(tc.want) > 0) || !slices.Equal(d.GetDegradedCauses(), tc.want) {
				t.Errorf("degraded %v causes %v, want %v", d.GetDegraded(), d.GetDegradedCauses(), tc.want)
			}
			if (d.GetAccountWindow() != nil) != tc.window || ModelOK(d) != tc.modelOK {
				t.Errorf("window %v model ok %v", d.GetAccountWindow(), ModelOK(d))
			}
			if tc.modelOK && d.GetScore() != 0.5 || !tc.modelOK && d.GetScore() != 0 {
				t.Errorf("score %v", d.GetScore())
			}
		})
	}
}

// TestLegacyMetadata: a decision written before the metadata fields existed (pseudo reasons)
// converts to the field form, compares equal to today's decision for the same input, and keeps
// the same input hash.
func TestLegacyMetadata(t *testing.T) {
	t.Parallel()
	set := defaultSet(t)
	in := Input{ET: enriched(1_000, 1), Model: ModelResult{Version: "m1", Score: 0.3, OK: true},
		Window: rules.Window{Reviews1h: 1, MaxScore24h: 0.123456789012345}, WindowOK: true,
		Hits: []lists.Hit{{List: lists.Allow, Kind: lists.KindCountry, Reason: "home"}}, Shadow: &Shadow{Version: "m2", Score: 0.25}}
	now := d0()
	d, err := Decide(in, set, DefaultPolicy(), now)
	if err != nil {
		t.Fatal(err)
	}
	legacy := &fraudv1.Decision{DecisionId: d.GetDecisionId(), Reasons: []*fraudv1.Reason{
		{Code: "LIST_ALLOW_COUNTRY", Description: "home"},
		{Code: "ACCOUNT_WINDOW", Description: `{"reviews_1h":1,"declines_1h":0,"reviews_24h":0,"declines_24h":0,"max_score_24h":0.123456789012345}`},
		{Code: "SHADOW_SCORE", Description: "m2", Weight: 0.25},
		{Code: "INPUT_HASH", Description: d.GetInputHash()},
	}}
	got, err := LegacyMetadata(legacy)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.GetAccountWindow(), d.GetAccountWindow()) || got.GetInputHash() != d.GetInputHash() ||
		got.GetShadowModelVersion() != "m2" || got.GetShadowScore() != 0.25 || got.GetDegraded() {
		t.Fatalf("converted %v", got)
	}
	if codes(got)[0] != "LIST_ALLOW_COUNTRY" || len(got.GetReasons()) != len(d.GetReasons()) {
		t.Fatalf("reasons %v, want %v", codes(got), codes(d))
	}
	if hits := HitsOf(got); len(hits) != 1 || hits[0].Kind != lists.KindCountry {
		t.Fatalf("hits %v", hits)
	}
	// Recomputing from the converted metadata gives the recorded input hash.
	re := Input{ET: in.ET, Model: in.Model, WindowOK: true, Hits: HitsOf(got), Shadow: in.Shadow}
	re.Window, _ = WindowOf(got)
	if h, _ := InputHash(re); h != d.GetInputHash() {
		t.Fatalf("recomputed hash %s, recorded %s", h, d.GetInputHash())
	}
	deg, err := LegacyMetadata(&fraudv1.Decision{Reasons: []*fraudv1.Reason{
		{Code: "DEGRADED", Description: "model, decision windows unavailable: rules and lists only"}, {Code: "INPUT_HASH", Description: "x"}}})
	if err != nil || !deg.GetDegraded() || len(deg.GetDegradedCauses()) != 2 || deg.GetAccountWindow() != nil || len(deg.GetReasons()) != 0 {
		t.Fatalf("degraded legacy %v %v", deg, err)
	}
	if same, _ := LegacyMetadata(d); same != d {
		t.Error("a current decision was rewritten")
	}
}

func d0() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

func TestDecisionIDIsDeterministic(t *testing.T) {
	t.Parallel()
	if DecisionID("a:1") != DecisionID("a:1") || DecisionID("a:1") == DecisionID("a:2") {
		t.Fatal("decision id must be a function of the transaction id")
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	bad := []Policy{
		{ReviewThreshold: -0.1, DeclineThreshold: 0.9, ReviewAmountMinor: 1, DeclineAmountMinor: 2},
		{ReviewThreshold: 0.9, DeclineThreshold: 0.8, ReviewAmountMinor: 1, DeclineAmountMinor: 2},
		{ReviewThreshold: 0.8, DeclineThreshold: 0.9, ReviewAmountMinor: 5, DeclineAmountMinor: 2},
	}
	for i, p := range bad {
		if p.Validate() == nil {
			t.Errorf("policy %d accepted", i)
		}
	}
	if err := DefaultPolicy().Validate(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkDecide is the per-transaction cost of rules + decision + input hash with the
// default rule set.
func BenchmarkDecide(b *testing.B) {
	set := defaultSet(b)
	in := Input{ET: enriched(150_000, 3), Model: ModelResult{Version: "m1", Score: 0.3, OK: true,
		Contributions: []Contribution{{Name: "amount", Value: 1500, Logit: 1.2}, {Name: "is_night", Value: 1, Logit: 0.2}}},
		WindowOK: true, Window: rules.Window{Reviews1h: 1}}
	p := DefaultPolicy()
	now := time.Unix(0, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decide(in, set, p, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/tx")
}

// TestRuleEnvFeatureNames: rules see features by name whether the vector carries its names
// (older records) or leaves them to its schema version and hash (features.v1 now).
func TestRuleEnvFeatureNames(t *testing.T) {
	t.Parallel()
	values := make([]float64, len(features.Names))
	for i := range values {
		values[i] = float64(i + 1)
	}
	tests := []struct {
		name string
		fv   *fraudv1.FeatureVector
		want map[string]float64
	}{
		{"names carried", &fraudv1.FeatureVector{SchemaVersion: "fs-1", Names: []string{"amount", "is_night"}, Values: []float64{5, 1}},
			map[string]float64{"amount": 5, "is_night": 1}},
		{"current schema without names", &fraudv1.FeatureVector{SchemaVersion: features.SchemaVersion, SchemaHash: features.SchemaHash(), Values: values},
			map[string]float64{"amount": 1, "account_count_1h": 2, "country_mismatch": float64(len(values))}},
		{"unknown schema without names", &fraudv1.FeatureVector{SchemaVersion: "fs-0", SchemaHash: "x", Values: values}, map[string]float64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			et := enriched(500, 1)
			et.Features = tc.fv
			env := RuleEnv(Input{ET: et})
			for k, v := range tc.want {
				if got, ok := env.Features[k]; !ok || got != v {
					t.Errorf("features[%q] = %v, %v; want %v", k, got, ok, v)
				}
			}
			if len(tc.want) == 0 && len(env.Features) != 0 {
				t.Errorf("features %v, want none", env.Features)
			}
		})
	}
}

// BenchmarkDecideCurrentSchema is BenchmarkDecide as the pipeline runs it: the current
// feature schema (names left to the schema hash), a full transaction, rules compiled for
// features.Names, three contributions and a shadow score.
func BenchmarkDecideCurrentSchema(b *testing.B) {
	rb, err := os.ReadFile("../../rules.yaml")
	if err != nil {
		b.Fatal(err)
	}
	rs, err := rules.ParseYAML("rules.yaml", rb)
	if err != nil {
		b.Fatal(err)
	}
	p := DefaultPolicy()
	set, err := rules.Compile(rs, p.Params(), features.Names)
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 12, 6, 22, 59, 0, 0, time.UTC)
	values := make([]float64, len(features.Names))
	for i := range values {
		values[i] = float64(i*7919%1000) / 37
	}
	et := &fraudv1.EnrichedTransaction{
		Transaction: &fraudv1.Transaction{
			Id: "psp-1:tx-00001234", Source: "psp-1", ClientTransactionId: "tx-00001234", AccountId: "acct-01234",
			Card:        &fraudv1.Card{Token: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", TokenKeyId: "k1", Bin: "497010", Last4: "1234"},
			AmountMinor: 12_345, Currency: "EUR", MerchantId: "m-0042", TerminalId: "t-00042", Mcc: "5411", Country: "FR",
			Channel: fraudv1.Channel_CHANNEL_ECOMMERCE, DeviceId: "dev-000042", Ip: "192.0.2.17",
			EventTime: timestamppb.New(at), ReceivedTime: timestamppb.New(at.Add(3 * time.Millisecond)),
		},
		Features: &fraudv1.FeatureVector{SchemaVersion: features.SchemaVersion, SchemaHash: features.SchemaHash(), Values: values},
	}
	in := Input{ET: et, WindowOK: true, Window: rules.Window{Reviews1h: 1, Reviews24h: 2, MaxScore24h: 0.8123},
		Model: ModelResult{Version: "lr-fs-3-20261206", Score: 0.42, OK: true, Contributions: []Contribution{
			{Name: "amount", Value: 123.45, Logit: 0.7}, {Name: "account_count_1h", Value: 3, Logit: 0.2}, {Name: "is_night", Value: 1, Logit: 0.1}}},
		Shadow: &Shadow{Version: "gbt-fs-3-20261206", Score: 0.37}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decide(in, set, p, at); err != nil {
			b.Fatal(err)
		}
	}
}

func TestActionName(t *testing.T) {
	t.Parallel()
	for a := range fraudv1.Action(6) {
		if got, want := ActionName(a), strings.ToLower(strings.TrimPrefix(a.String(), "ACTION_")); got != want {
			t.Errorf("%v: %q, want %q", a, got, want)
		}
	}
}

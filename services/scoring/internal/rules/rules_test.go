package rules

import (
	"errors"
	"strings"
	"testing"
)

var names = []string{"amount", "account_count_1h"}

func rule(id, expr string) Rule {
	return Rule{ID: id, Version: 1, Expression: expr, Action: ActionReview, Reason: "R_" + id, Priority: 1, Enabled: true}
}

func TestCompileErrorsPointAtTheRule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rule Rule
		want []string
	}{
		{"syntax", rule("bad-syntax", "tx.amount_minor >= "), []string{`rule "bad-syntax" v1`, "(1:"}},
		{"unknown field", rule("typo", "tx.amount > 5"), []string{`rule "typo" v1`, "amount", "(1:4)"}},
		{"not a bool", rule("number", "tx.amount_minor + 1"), []string{`rule "number"`, "bool"}},
		{"unknown feature", rule("feat", "score > 0.5 && features.acount_count_1h > 5"), []string{`rule "feat"`, `unknown feature "acount_count_1h" at column 25`}},
		{"unknown param", rule("param", "tx.amount_minor > params.nope"), []string{`unknown parameter "nope"`}},
		{"bad action", Rule{ID: "act", Version: 1, Expression: "true", Action: "block", Reason: "X"}, []string{`rule "act" v1`, `action "block"`}},
		{"no reason, no version", Rule{ID: "r", Expression: "true", Action: ActionReview}, []string{"version 0", "reason is empty"}},
		{"empty expression", Rule{ID: "e", Version: 1, Action: ActionReview, Reason: "X"}, []string{"expression is empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Compile([]Rule{rule("ok", "true"), tc.rule}, map[string]float64{"limit": 1}, names)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestCompileReportsEveryBadRule(t *testing.T) {
	t.Parallel()
	_, err := Compile([]Rule{rule("a", "nope"), rule("b", "tx.x"), rule("c", "true")}, nil, names)
	if err == nil || !strings.Contains(err.Error(), `"a"`) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("err %v", err)
	}
	if _, err := Compile([]Rule{rule("a", "true"), rule("a", "false")}, nil, names); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate id: %v", err)
	}
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	rs := []Rule{
		{ID: "low", Version: 1, Expression: "features.account_count_1h > 5", Action: ActionReview, Reason: "VEL", Priority: 1, Enabled: true},
		{ID: "high", Version: 2, Expression: "score > 0.9 && account.declines_1h >= 1", Action: ActionDecline, Reason: "RISK", Priority: 9, Enabled: true},
		{ID: "off", Version: 1, Expression: "true", Action: ActionDecline, Reason: "OFF", Priority: 99, Enabled: false},
		{ID: "param", Version: 1, Expression: "tx.amount_minor >= params.limit && tx.country in ['FR', 'DE']", Action: ActionReview, Reason: "P", Enabled: true},
	}
	set, err := Compile(rs, map[string]float64{"limit": 100}, names)
	if err != nil {
		t.Fatal(err)
	}
	env := Env{
		Tx:       Tx{AmountMinor: 100, Country: "FR"},
		Features: map[string]float64{"account_count_1h": 6},
		Score:    0.95,
		Account:  Window{Declines1h: 1},
	}
	fired, err := set.Evaluate(env)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range fired {
		ids = append(ids, f.ID)
	}
	if strings.Join(ids, ",") != "high,low,param" {
		t.Fatalf("fired %v, want high,low,param in priority order (disabled rule skipped)", ids)
	}
	env.Score = 0.5
	env.Tx.Country = "US"
	if fired, _ = set.Evaluate(env); len(fired) != 1 || fired[0].ID != "low" {
		t.Fatalf("fired %v", fired)
	}
}

func TestVersionIsContentHash(t *testing.T) {
	t.Parallel()
	a, _ := Compile([]Rule{rule("x", "true"), rule("y", "false")}, map[string]float64{"p": 1}, names)
	b, _ := Compile([]Rule{rule("y", "false"), rule("x", "true")}, map[string]float64{"p": 1}, names)
	c, _ := Compile([]Rule{rule("y", "false"), rule("x", "true")}, map[string]float64{"p": 2}, names)
	if a.Version() != b.Version() || !strings.HasPrefix(a.Version(), "rs-") {
		t.Fatalf("order changed the version: %s %s", a.Version(), b.Version())
	}
	if a.Version() == c.Version() {
		t.Fatal("parameters are not part of the version")
	}
	back, err := FromCanonical(a.Canonical(), names)
	if err != nil || back.Version() != a.Version() {
		t.Fatalf("canonical round trip: %v %v", back, err)
	}
}

func TestParseYAML(t *testing.T) {
	t.Parallel()
	rs, err := ParseYAML("f.yaml", []byte("rules:\n  - id: a\n    expression: 'true'\n    action: review\n    reason: A\n  - id: b\n    version: 3\n    enabled: false\n    expression: 'false'\n    action: decline\n    reason: B\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Version != 1 || !rs[0].Enabled || rs[1].Version != 3 || rs[1].Enabled {
		t.Fatalf("parsed %+v", rs)
	}
	for name, src := range map[string]string{
		"unknown key": "rules:\n  - id: a\n    expresion: 'true'\n",
		"empty":       "",
		"not yaml":    "rules: [",
	} {
		if _, err := ParseYAML("f.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), "f.yaml") {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

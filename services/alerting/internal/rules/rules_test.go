package rules

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestCheckExpression(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr    string
		wantErr string
	}{
		{`tx.amount_minor > params.review_amount_minor && account.declines_1h >= 1`, ""},
		{`features.account_count_1h > 10 or score > 0.9 or degraded`, ""},
		{`tx.country in ["KP", "IR"] and tx.hour_utc < 5`, ""},
		{``, "is empty"},
		{`tx.amount_minor >`, "does not compile"},
		{`tx.amount_minor + 1`, "does not compile"}, // not a bool
		{`tx.pan == "4111"`, "does not compile"},    // no such field
		{`features.acount_count_1h > 3`, "unknown feature \"acount_count_1h\""},
		{`params.max_amount > 1`, "unknown parameter \"max_amount\""},
	}
	for _, tc := range tests {
		err := CheckExpression(tc.expr)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tc.expr, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: error %v, want %q", tc.expr, err, tc.wantErr)
		}
	}
}

func TestValidateNamesEachField(t *testing.T) {
	t.Parallel()
	ok := Rule{ID: "big_amount", Expression: "tx.amount_minor > 100", Action: "review", Reason: "AMOUNT_HIGH", Enabled: true}
	if bad := Validate(ok); len(bad) != 0 {
		t.Fatalf("valid rule refused: %v", bad)
	}
	bad := Validate(Rule{ID: "Bad Id", Expression: "1", Action: "block", Reason: "lower", Priority: 5000})
	var fields []string
	for _, f := range bad {
		fields = append(fields, f.Field)
	}
	if got := strings.Join(fields, ","); got != "rule_id,action,reason_code,priority,expression" {
		t.Fatalf("fields %s", got)
	}
}

// TestEnvMatchesScoring guards the duplicated environment: every expr tag of scoring's rules
// package must appear here and the other way round, so a field added there is noticed here.
func TestEnvMatchesScoring(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../../../scoring/internal/rules/rules.go")
	if err != nil {
		t.Fatalf("scoring's rule environment: %v", err)
	}
	theirs := map[string]bool{}
	for _, m := range regexp.MustCompile("expr:\"([a-z0-9_]+)\"").FindAllStringSubmatch(string(src), -1) {
		theirs[m[1]] = true
	}
	ours := map[string]bool{}
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			ours[f.Tag.Get("expr")] = true
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeOf(env{}))
	for n := range theirs {
		if !ours[n] {
			t.Errorf("scoring's environment has %q, ours does not", n)
		}
	}
	for n := range ours {
		if !theirs[n] {
			t.Errorf("our environment has %q, scoring's does not", n)
		}
	}
	policy, err := os.ReadFile("../../../scoring/internal/decide/decide.go")
	if err != nil {
		t.Fatal(err)
	}
	for p := range paramNames {
		if !strings.Contains(string(policy), `"`+p+`":`) {
			t.Errorf("parameter %q is not in scoring's Policy.Params", p)
		}
	}
}

// Package rules checks scoring rules an admin writes before they reach scoring_rules.
//
// The scoring service compiles the whole active rule set on every refresh and keeps its old set
// when that fails, so one bad row would silently freeze every later change. An edit is therefore
// compiled here with the same expression environment as scoring (services/scoring/internal/rules,
// which another module cannot import): the same variable names and types, the same feature names
// (models/features), the same parameter names, and the result must be a bool. Keep Env and
// paramNames in step with that package; TestEnvMatchesScoring pins the names.
package rules

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"

	"github.com/vigil-fraud/vigil/models/features"
)

// Rule is one version of a scoring rule as the admin pages show and write it.
type Rule struct {
	ID          string `json:"rule_id"`
	Version     int    `json:"version"`
	Expression  string `json:"expression"`
	Action      string `json:"action"`
	Reason      string `json:"reason_code"`
	Priority    int    `json:"priority"`
	Enabled     bool   `json:"enabled"`
	Description string `json:"description"`
}

// tx mirrors scoring's rules.Tx.
type tx struct {
	ID          string `expr:"id"`
	AccountID   string `expr:"account_id"`
	Source      string `expr:"source"`
	AmountMinor int64  `expr:"amount_minor"`
	Currency    string `expr:"currency"`
	MerchantID  string `expr:"merchant_id"`
	TerminalID  string `expr:"terminal_id"`
	MCC         string `expr:"mcc"`
	Country     string `expr:"country"`
	Channel     string `expr:"channel"`
	DeviceID    string `expr:"device_id"`
	IP          string `expr:"ip"`
	CardBIN     string `expr:"card_bin"`
	HourUTC     int    `expr:"hour_utc"`
}

// window mirrors scoring's rules.Window.
type window struct {
	Reviews1h   int     `expr:"reviews_1h"`
	Declines1h  int     `expr:"declines_1h"`
	Reviews24h  int     `expr:"reviews_24h"`
	Declines24h int     `expr:"declines_24h"`
	MaxScore24h float64 `expr:"max_score_24h"`
}

// env mirrors scoring's rules.Env.
type env struct {
	Tx       tx                 `expr:"tx"`
	Features map[string]float64 `expr:"features"`
	Score    float64            `expr:"score"`
	Account  window             `expr:"account"`
	Params   map[string]float64 `expr:"params"`
	Degraded bool               `expr:"degraded"`
}

// paramNames are the keys of scoring's decide.Policy.Params().
var paramNames = map[string]bool{"review_amount_minor": true, "decline_amount_minor": true, "velocity_review_1h": true}

var (
	idPattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
	reasonPattern = regexp.MustCompile(`^[A-Z][A-Z0-9_:]{0,63}$`)
)

// FieldError names one bad field.
type FieldError struct{ Field, Detail string }

// Validate reports every bad field of r (its version is assigned by the store).
func Validate(r Rule) []FieldError {
	var bad []FieldError
	if !idPattern.MatchString(r.ID) {
		bad = append(bad, FieldError{"rule_id", "must be 1-64 of a-z, 0-9, _ . - starting with a letter or digit"})
	}
	switch r.Action {
	case "approve", "review", "decline":
	default:
		bad = append(bad, FieldError{"action", "must be approve, review or decline"})
	}
	if !reasonPattern.MatchString(r.Reason) {
		bad = append(bad, FieldError{"reason_code", "must be 1-64 of A-Z, 0-9, _ : starting with a letter, e.g. AMOUNT_HIGH"})
	}
	if r.Priority < -1000 || r.Priority > 1000 {
		bad = append(bad, FieldError{"priority", "must be in [-1000, 1000]"})
	}
	if len(r.Description) > 1000 {
		bad = append(bad, FieldError{"description", "must be at most 1000 characters"})
	}
	if err := CheckExpression(r.Expression); err != nil {
		bad = append(bad, FieldError{"expression", err.Error()})
	}
	return bad
}

// CheckExpression compiles e as scoring would.
func CheckExpression(e string) error {
	if strings.TrimSpace(e) == "" {
		return fmt.Errorf("is empty")
	}
	if len(e) > 4000 {
		return fmt.Errorf("must be at most 4000 characters")
	}
	v := &nameCheck{}
	if _, err := expr.Compile(e, expr.Env(env{}), expr.AsBool(), expr.Patch(v)); err != nil {
		return fmt.Errorf("does not compile: %s", strings.Join(strings.Fields(err.Error()), " "))
	}
	if v.err != "" {
		return fmt.Errorf("%s", v.err)
	}
	return nil
}

// nameCheck rejects features.<x> and params.<x> names scoring does not know: a typo there
// would read 0 at run time instead of failing.
type nameCheck struct{ err string }

func (c *nameCheck) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok || c.err != "" {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok {
		return
	}
	prop, ok := m.Property.(*ast.StringNode)
	if !ok {
		return
	}
	col := m.Location().From + 1
	switch id.Value {
	case "features":
		if !knownFeature(prop.Value) {
			c.err = fmt.Sprintf("unknown feature %q at column %d", prop.Value, col)
		}
	case "params":
		if !paramNames[prop.Value] {
			c.err = fmt.Sprintf("unknown parameter %q at column %d", prop.Value, col)
		}
	}
}

func knownFeature(n string) bool {
	for _, f := range features.Names {
		if f == n {
			return true
		}
	}
	return false
}

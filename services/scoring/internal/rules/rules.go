// Package rules compiles and evaluates the scoring rule set: expr-lang expressions over the
// transaction, its features, the model score and the account's decision windows.
//
// A rule set is immutable once compiled; its version is a hash of every rule's definition and
// of the parameters the expressions read, so a decision's rule_set_version names exactly the
// logic that produced it.
package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
)

// Action a rule asks for. Approve is an override: see Evaluate.
type Action string

// Rule actions.
const (
	ActionApprove Action = "approve"
	ActionReview  Action = "review"
	ActionDecline Action = "decline"
)

// ErrInvalid marks a rule or rule set that cannot be compiled; the message names the rule.
var ErrInvalid = errors.New("invalid rule")

// Rule is one rule as stored in Postgres and in rules.yaml.
type Rule struct {
	ID          string `yaml:"id" json:"id"`
	Version     int    `yaml:"version" json:"version"`
	Expression  string `yaml:"expression" json:"expression"`
	Action      Action `yaml:"action" json:"action"`
	Reason      string `yaml:"reason" json:"reason"`
	Priority    int    `yaml:"priority" json:"priority"`
	Enabled     bool   `yaml:"enabled" json:"enabled"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
}

// Tx is the transaction as rules see it. Card numbers never reach scoring: only the token, BIN
// and last four.
type Tx struct {
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

// Window is the account's recent decisions, before this transaction.
type Window struct {
	Reviews1h   int     `expr:"reviews_1h" json:"reviews_1h"`
	Declines1h  int     `expr:"declines_1h" json:"declines_1h"`
	Reviews24h  int     `expr:"reviews_24h" json:"reviews_24h"`
	Declines24h int     `expr:"declines_24h" json:"declines_24h"`
	MaxScore24h float64 `expr:"max_score_24h" json:"max_score_24h"`
}

// Env is everything an expression can read.
type Env struct {
	Tx       Tx                 `expr:"tx"`
	Features map[string]float64 `expr:"features"`
	Score    float64            `expr:"score"`
	Account  Window             `expr:"account"`
	// Params are operator-tunable constants (amount limits from VIGIL_SCORING_*), part of the
	// rule set version.
	Params map[string]float64 `expr:"params"`
	// Degraded is true when the model or the decision windows were unavailable: rules can
	// choose to be stricter.
	Degraded bool `expr:"degraded"`
}

type compiled struct {
	Rule
	program *vm.Program
}

// Set is a compiled, immutable rule set.
type Set struct {
	version string
	rules   []compiled // enabled rules, highest priority first, then id
	all     []Rule
	params  map[string]float64
}

// Version is "rs-" and the first 12 hex digits of the sha256 of the canonical rule set.
func (s *Set) Version() string { return s.version }

// Rules returns the definitions the set was compiled from, in canonical order.
func (s *Set) Rules() []Rule { return slices.Clone(s.all) }

// Params returns a copy of the parameters.
func (s *Set) Params() map[string]float64 {
	out := make(map[string]float64, len(s.params))
	for k, v := range s.params {
		out[k] = v
	}
	return out
}

// Canonical is the JSON the version hashes: the sorted rules and the parameters. It is also
// what Postgres keeps in scoring_rule_sets so explain can rebuild an old set.
func (s *Set) Canonical() []byte {
	b, _ := json.Marshal(struct {
		Rules  []Rule             `json:"rules"`
		Params map[string]float64 `json:"params"`
	}{s.all, s.params})
	return b
}

// FromCanonical rebuilds a set from Canonical's output.
func FromCanonical(b []byte, featureNames []string) (*Set, error) {
	var c struct {
		Rules  []Rule             `json:"rules"`
		Params map[string]float64 `json:"params"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: stored rule set: %w", ErrInvalid, err)
	}
	return Compile(c.Rules, c.Params, featureNames)
}

// Compile validates and compiles rules. featureNames are the names features.<name> may use;
// an unknown name is an error pointing at the rule and the column, so a typo never silently
// reads 0.
func Compile(rs []Rule, params map[string]float64, featureNames []string) (*Set, error) {
	all := slices.Clone(rs)
	sort.Slice(all, func(i, j int) bool {
		if all[i].ID != all[j].ID {
			return all[i].ID < all[j].ID
		}
		return all[i].Version < all[j].Version
	})
	if params == nil {
		params = map[string]float64{}
	}
	s := &Set{all: all, params: params}
	known := map[string]bool{}
	for _, n := range featureNames {
		known[n] = true
	}
	seen := map[string]bool{}
	var errs []error
	for _, r := range all {
		if err := validate(r); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[r.ID] {
			errs = append(errs, fmt.Errorf("%w: rule %q appears twice in one rule set", ErrInvalid, r.ID))
			continue
		}
		seen[r.ID] = true
		v := &nameCheck{features: known, params: params}
		prog, err := expr.Compile(r.Expression, expr.Env(Env{}), expr.AsBool(), expr.Patch(v))
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: rule %q v%d: expression: %s", ErrInvalid, r.ID, r.Version, oneLine(err)))
			continue
		}
		if v.err != "" {
			errs = append(errs, fmt.Errorf("%w: rule %q v%d: expression: %s", ErrInvalid, r.ID, r.Version, v.err))
			continue
		}
		if r.Enabled {
			s.rules = append(s.rules, compiled{Rule: r, program: prog})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.SliceStable(s.rules, func(i, j int) bool { return s.rules[i].Priority > s.rules[j].Priority })
	sum := sha256.Sum256(s.Canonical())
	s.version = "rs-" + hex.EncodeToString(sum[:])[:12]
	return s, nil
}

func validate(r Rule) error {
	var problems []string
	if r.ID == "" {
		problems = append(problems, "id is empty")
	}
	if r.Version < 1 {
		problems = append(problems, fmt.Sprintf("version %d must be ≥ 1", r.Version))
	}
	switch r.Action {
	case ActionApprove, ActionReview, ActionDecline:
	default:
		problems = append(problems, fmt.Sprintf("action %q must be approve, review or decline", r.Action))
	}
	if r.Reason == "" {
		problems = append(problems, "reason is empty")
	}
	if strings.TrimSpace(r.Expression) == "" {
		problems = append(problems, "expression is empty")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: rule %q v%d: %s", ErrInvalid, r.ID, r.Version, strings.Join(problems, "; "))
	}
	return nil
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// nameCheck rejects features.<x> and params.<x> names that do not exist.
type nameCheck struct {
	features map[string]bool
	params   map[string]float64
	err      string
}

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
		if !c.features[prop.Value] {
			c.err = fmt.Sprintf("unknown feature %q at column %d", prop.Value, col)
		}
	case "params":
		if _, ok := c.params[prop.Value]; !ok {
			c.err = fmt.Sprintf("unknown parameter %q at column %d", prop.Value, col)
		}
	}
}

// Fired is a rule whose expression was true.
type Fired struct {
	ID       string
	Version  int
	Action   Action
	Reason   string
	Priority int
}

// Evaluate runs every enabled rule, highest priority first, and returns the fired ones in that
// order. A runtime error (e.g. a type mismatch in a map lookup) is returned naming the rule: the
// caller decides whether that is fatal.
func (s *Set) Evaluate(env Env) ([]Fired, error) {
	env.Params = s.params
	// Boxed once: passing the struct itself would copy it into a new interface for every rule.
	boxed := any(env)
	var fired []Fired
	for _, r := range s.rules {
		out, err := expr.Run(r.program, boxed)
		if err != nil {
			return nil, fmt.Errorf("rule %q v%d: %w", r.ID, r.Version, err)
		}
		if b, _ := out.(bool); b {
			fired = append(fired, Fired{ID: r.ID, Version: r.Version, Action: r.Action, Reason: r.Reason, Priority: r.Priority})
		}
	}
	return fired, nil
}

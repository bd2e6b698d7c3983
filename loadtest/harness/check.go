package harness

import (
	"fmt"
	"sort"
)

// Outcome is what the client learnt about one transaction it sent.
type Outcome int

const (
	// Acked: ingest answered 2xx, so the pipeline owes exactly one decision.
	Acked Outcome = iota + 1
	// Rejected: ingest answered 4xx/5xx, so no decision may exist.
	Rejected
	// Unknown: the request failed in transport (timeout, reset); the transaction may or may
	// not have been published, so either zero or one decision is correct.
	Unknown
)

// CheckInput is everything the checker looks at, already loaded from the run and Postgres.
type CheckInput struct {
	Sent          map[string]Outcome // stored transaction id (source:client id) → outcome
	Decisions     map[string]int     // transaction id → decision rows, for the run's id prefix
	DecisionOf    map[string]string  // decision id → transaction id
	AlertsPer     map[string]int     // decision id → alert rows, for the run's id prefix
	ServerErrors  int                // 5xx answers
	MaxViolations int                // examples kept per kind (0: 5)
}

// Violation is one kind of broken guarantee with a count and a few examples.
type Violation struct {
	Kind     string   `json:"kind"`
	Count    int      `json:"count"`
	Examples []string `json:"examples,omitempty"`
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: %d (e.g. %v)", v.Kind, v.Count, v.Examples)
}

// Check proves the run's guarantees: every acknowledged transaction has exactly one decision,
// no decision exists without an acknowledged (or possibly published) transaction, at most one
// alert per decision and every alert belongs to a decision of the run, and no 5xx answer.
func Check(in CheckInput) []Violation {
	keep := in.MaxViolations
	if keep <= 0 {
		keep = 5
	}
	found := map[string]*Violation{}
	add := func(kind, example string) {
		v := found[kind]
		if v == nil {
			v = &Violation{Kind: kind}
			found[kind] = v
		}
		v.Count++
		if len(v.Examples) < keep {
			v.Examples = append(v.Examples, example)
		}
	}
	for id, o := range in.Sent {
		n := in.Decisions[id]
		switch {
		case o == Acked && n == 0:
			add("acknowledged transaction without a decision", id)
		case n > 1:
			add("transaction with more than one decision", fmt.Sprintf("%s×%d", id, n))
		case o == Rejected && n > 0:
			add("decision for a rejected transaction", id)
		}
	}
	for id, n := range in.Decisions {
		if _, ok := in.Sent[id]; !ok && n > 0 {
			add("decision without a sent transaction", id)
		}
	}
	for d, n := range in.AlertsPer {
		if n > 1 {
			add("decision with more than one alert", fmt.Sprintf("%s×%d", d, n))
		}
		if _, ok := in.DecisionOf[d]; !ok {
			add("alert without a decision", d)
		}
	}
	if in.ServerErrors > 0 {
		add("5xx answers", fmt.Sprint(in.ServerErrors))
		found["5xx answers"].Count = in.ServerErrors
	}
	out := make([]Violation, 0, len(found))
	for _, v := range found {
		sort.Strings(v.Examples)
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

// Quality is the detection quality of the flagged transactions against the simulator's truth.
type Quality struct {
	Decided        int     `json:"decided"`
	Frauds         int     `json:"frauds"`
	Flagged        int     `json:"flagged"`
	TruePositives  int     `json:"true_positives"`
	Precision      float64 `json:"precision"`
	Recall         float64 `json:"recall"`
	FraudRate      float64 `json:"fraud_rate"`
	FlaggedByAlert bool    `json:"flagged_by_alert"`
}

// Measure counts, over the decided transactions, how many flagged ones were frauds
// (precision) and how many frauds were flagged (recall). Undefined ratios are 0.
func Measure(truth map[string]bool, flagged map[string]bool, decided []string) Quality {
	var q Quality
	for _, id := range decided {
		fraud, ok := truth[id]
		if !ok {
			continue
		}
		q.Decided++
		if fraud {
			q.Frauds++
		}
		if flagged[id] {
			q.Flagged++
			if fraud {
				q.TruePositives++
			}
		}
	}
	if q.Flagged > 0 {
		q.Precision = float64(q.TruePositives) / float64(q.Flagged)
	}
	if q.Frauds > 0 {
		q.Recall = float64(q.TruePositives) / float64(q.Frauds)
	}
	if q.Decided > 0 {
		q.FraudRate = float64(q.Frauds) / float64(q.Decided)
	}
	return q
}

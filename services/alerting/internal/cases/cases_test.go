package cases

import (
	"errors"
	"net/url"
	"testing"
	"time"
)

func TestParseFilter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query string
		field string
		check func(Filter) bool
	}{
		{"", "", func(f Filter) bool { return f.Status == "open" && f.Sort == "score_desc" && f.Limit == 50 }},
		{"status=any&action=decline&min_score=0.8&assignee=none&sort=age_desc&limit=10&offset=20&max_age=24h", "",
			func(f Filter) bool {
				return f.Status == "" && f.Action == "decline" && f.MinScore == .8 && f.Assignee == "none" && f.Sort == "age_desc" &&
					f.Limit == 10 && f.Offset == 20 && f.MaxAge == 24*time.Hour
			}},
		{"status=pending", "status", nil},
		{"action=approve", "action", nil},
		{"min_score=abc", "min_score", nil},
		{"max_score=-1", "max_score", nil},
		{"min_score=0.9&max_score=0.1", "min_score", nil},
		{"min_age=-5m", "min_age", nil},
		{"max_age=5", "max_age", nil},
		{"sort=chaos", "sort", nil},
		{"limit=501", "limit", nil},
		{"offset=-1", "offset", nil},
		{"foo=bar", "foo", nil},
		{"assignee=", "assignee", nil},
	}
	for _, tc := range tests {
		q, _ := url.ParseQuery(tc.query)
		f, err := ParseFilter(q)
		var inv *InvalidError
		switch {
		case tc.field == "" && (err != nil || !tc.check(f)):
			t.Errorf("%q: %+v %v", tc.query, f, err)
		case tc.field != "" && (!errors.As(err, &inv) || inv.Fields[0].Field != tc.field || !errors.Is(err, ErrInvalid)):
			t.Errorf("%q: %v, want a problem naming %s", tc.query, err, tc.field)
		}
	}
}

func TestExplainReason(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]string{
		"MODEL_SCORE_HIGH":         "The fraud model's score is above the decline threshold.",
		"FEATURE:account_count_1h": "The feature account count 1h pushed the score up.",
		"RULE_X":                   "rule x fired",
		"UNKNOWN":                  "Reason code UNKNOWN.",
	} {
		desc := ""
		if code == "RULE_X" {
			desc = "rule x fired"
		}
		if got := ExplainReason(code, desc); got != want {
			t.Errorf("ExplainReason(%s) = %q, want %q", code, got, want)
		}
	}
}

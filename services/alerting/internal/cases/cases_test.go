package cases

import (
	"errors"
	"fmt"
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

func TestSplitReasons(t *testing.T) {
	t.Parallel()
	old := []ReasonCode{{Code: "MODEL_SCORE_ELEVATED"}, {Code: "ACCOUNT_WINDOW", Description: `{"reviews_1h":1}`},
		{Code: "DEGRADED", Description: "model unavailable: rules and lists only"}, {Code: "SHADOW_SCORE", Description: "lr-2"},
		{Code: "INPUT_HASH", Description: "abc"}, {Code: "AMOUNT_HIGH"}}
	tests := []struct {
		name     string
		codes    []ReasonCode
		stored   bool
		keep     []int
		degraded bool
		why      string
	}{
		{"old pseudo codes", old, false, []int{0, 5}, true, "model unavailable: rules and lists only"},
		{"new rows: flag, no codes", []ReasonCode{{Code: "AMOUNT_HIGH"}}, true, []int{0}, true, ""},
		{"not degraded", []ReasonCode{{Code: "MODEL_SCORE_HIGH"}, {Code: "INPUT_HASH"}}, false, []int{0}, false, ""},
		{"none", nil, false, nil, false, ""},
	}
	for _, tc := range tests {
		keep, deg, why := SplitReasons(tc.codes, tc.stored)
		if fmt.Sprint(keep) != fmt.Sprint(tc.keep) || deg != tc.degraded || why != tc.why {
			t.Errorf("%s: keep %v degraded %v why %q", tc.name, keep, deg, why)
		}
	}
}

func TestCursor(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 25, 14, 0, 0, 123456000, time.UTC)
	c := Cursor{Sort: "score_desc", Score: 0.7300000000000001, CreatedAt: at, CaseID: "cas_1"}
	f, err := ParseFilter(url.Values{"cursor": {c.Encode()}})
	if err != nil || f.After == nil || *f.After != c {
		t.Fatalf("round trip: %+v %v", f.After, err)
	}
	tests := []struct {
		name string
		q    url.Values
		want string
	}{
		{"garbage", url.Values{"cursor": {"!!!"}}, "cursor"},
		{"not json", url.Values{"cursor": {"bm90IGpzb24"}}, "cursor"},
		{"other sort", url.Values{"cursor": {c.Encode()}, "sort": {"age_desc"}}, "cursor"},
		{"with offset", url.Values{"cursor": {c.Encode()}, "offset": {"50"}}, "cursor"},
		{"score out of range", url.Values{"cursor": {Cursor{Sort: "score_desc", Score: 7, CreatedAt: at, CaseID: "x"}.Encode()}}, "cursor"},
	}
	for _, tc := range tests {
		_, err := ParseFilter(tc.q)
		var inv *InvalidError
		if !errors.As(err, &inv) || inv.Fields[0].Field != tc.want {
			t.Errorf("%s: %v, want a %s error", tc.name, err, tc.want)
		}
	}
}

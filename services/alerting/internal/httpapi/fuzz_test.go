package httpapi

import (
	"testing"

	"github.com/vigil-fraud/vigil/libs/openapifuzz"
)

// FuzzAnalystAPI sends every operation of the OpenAPI document (openapifuzz picks one from op,
// so a new endpoint is fuzzed without touching this file), as every role, with fuzzed path
// parameters ('/' separates the values of several), query strings and bodies (JSON and form):
// the API must never answer 5xx or panic (the recovery middleware would turn a panic into a 500).
func FuzzAnalystAPI(f *testing.F) {
	ops, err := openapifuzz.Operations(openAPI)
	if err != nil {
		f.Fatal(err)
	}
	if len(ops) < 10 {
		f.Fatalf("only %d operations in the OpenAPI document", len(ops))
	}
	seeds := []struct {
		op, param, q string
		body         string
		role         uint8
		csrf, form   bool
	}{
		{"POST /login", "", "", `{"email":"a@b.c","password":"x"}`, 0, false, false},
		{"POST /logout", "", "", "", 2, true, false},
		{"GET /v1/cases", "", "status=open&limit=5", "", 2, true, false},
		{"GET /v1/cases/{id}", "%00", "limit=-1", "{", 1, false, false},
		{"POST /v1/cases/{id}/{action}", "c1/label", "", `{"note":"checked","label":"fraud"}`, 2, true, false},
		{"POST /v1/cases/bulk", "", "", `{"ids":["c1","c2"],"action":"close"}`, 2, true, false},
		{"POST /v1/admin/rules", "", "", `{"name":"big","expression":"amount > 100","action":"review"}`, 3, true, false},
		{"POST /v1/admin/rules/{id}/disable", "r1", "", "", 3, true, false},
		{"POST /v1/admin/lists", "", "", `{"list":"block","kind":"card","value":"4111111111111111"}`, 3, true, false},
		{"POST /v1/webhooks", "", "", "url=http%3A%2F%2F127.0.0.1%2Fh&events=alert", 3, true, true},
		{"GET /v1/webhooks/attempts", "", "limit=10&status=failed", "", 3, false, false},
		{"GET /v1/alerts", "", "since=2025-06-01T00:00:00Z", "", 1, false, false},
	}
	for _, s := range seeds {
		if o := openapifuzz.Pick(ops, s.op); o.String() != s.op {
			f.Fatalf("seed names %q, which the OpenAPI document does not list", s.op)
		}
		f.Add(s.op, s.param, s.q, s.body, s.role, s.csrf, s.form)
	}
	h := newTestServer(f, &fakeCases{})
	f.Fuzz(func(t *testing.T, op, param, query, body string, role uint8, csrf, form bool) {
		o := openapifuzz.Pick(ops, op)
		target := o.Target(param, query)
		if form {
			body = "form:" + body
		}
		w := request(h, o.Method, target, body, who(int(role)%4), csrf)
		if w.Code >= 500 {
			t.Fatalf("%s %s as %d: %d %s", o.Method, target, role%4, w.Code, w.Body.String())
		}
	})
}

package httpapi

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// specOperations lists the analyst API's operations from its OpenAPI document: the fuzzer
// below is driven by the schema, so a new endpoint is fuzzed without touching this file.
func specOperations(t testing.TB) [][2]string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var ops [][2]string
	for path, methods := range doc.Paths {
		for m := range methods {
			switch strings.ToUpper(m) {
			case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
				ops = append(ops, [2]string{strings.ToUpper(m), path})
			}
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i][1]+ops[i][0] < ops[j][1]+ops[j][0] })
	return ops
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// FuzzAnalystAPI sends every operation of the OpenAPI document, as every role, with fuzzed path
// parameters, query strings and bodies (JSON and form): the API must never answer 5xx or
// panic (the recovery middleware would turn a panic into a 500).
func FuzzAnalystAPI(f *testing.F) {
	ops := specOperations(f)
	if len(ops) < 10 {
		f.Fatalf("only %d operations in the OpenAPI document", len(ops))
	}
	seeds := []struct {
		op         uint8
		param, q   string
		body       string
		role       uint8
		csrf, form bool
	}{
		{0, "c1", "", `{"email":"a@b.c","password":"x"}`, 0, false, false},
		{3, "c1", "status=open&limit=5", "", 2, true, false},
		{5, "c1", "", `{"note":"checked","label":"fraud"}`, 2, true, false},
		{6, "", "", `{"ids":["c1","c2"],"action":"close"}`, 2, true, false},
		{11, "r1", "", `{"name":"big","expression":"amount > 100","action":"review"}`, 3, true, false},
		{14, "", "", `{"list":"block","kind":"card","value":"4111111111111111"}`, 3, true, false},
		{9, "", "", "url=http%3A%2F%2F127.0.0.1%2Fh&events=alert", 3, true, true},
		{1, "%00", "limit=-1", "{", 1, false, false},
	}
	for _, s := range seeds {
		f.Add(s.op, s.param, s.q, s.body, s.role, s.csrf, s.form)
	}
	h := newTestServer(f, &fakeCases{})
	f.Fuzz(func(t *testing.T, op uint8, param, query, body string, role uint8, csrf, form bool) {
		o := ops[int(op)%len(ops)]
		path := pathParam.ReplaceAllStringFunc(o[1], func(string) string { return urlSafe(param) })
		if query != "" {
			path += "?" + urlSafe(query)
		}
		if form {
			body = "form:" + body
		}
		w := request(h, o[0], path, body, who(int(role)%4), csrf)
		if w.Code >= 500 {
			t.Fatalf("%s %s as %d: %d %s", o[0], path, role%4, w.Code, w.Body.String())
		}
	})
}

// urlSafe keeps a fuzzed string usable in a request line: httptest.NewRequest panics on what
// no client could send, which is not the API's to answer.
func urlSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r > 0x20 && r < 0x7f && r != '#' && r != '?' && r != '/' && r != '%' {
			b.WriteRune(r)
		} else {
			b.WriteString("_")
		}
	}
	return b.String()
}

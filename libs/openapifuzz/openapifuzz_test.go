package openapifuzz

import (
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

const doc = `{
  "openapi": "3.1.0",
  "paths": {
    "/v1/items/{id}": {
      "parameters": [{"name": "id", "in": "path", "required": true}],
      "get": {"responses": {"200": {}, "404": {}, "5XX": {}}},
      "delete": {"responses": {"204": {}}}
    },
    "/v1/items": {
      "summary": "not an operation",
      "post": {"responses": {"201": {}, "default": {}}},
      "get": {"responses": {"200": {}}},
      "trace": {"responses": {"200": {}}}
    },
    "/v1/items/{id}/{action}": {"post": {"responses": {"202": {}}}}
  }
}`

func TestOperations(t *testing.T) {
	t.Parallel()
	ops, err := Operations([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range ops {
		got = append(got, o.String()+" "+strings.Join(o.Responses, ","))
	}
	want := []string{
		"GET /v1/items 200",
		"POST /v1/items 201,default",
		"DELETE /v1/items/{id} 204",
		"GET /v1/items/{id} 200,404,5XX",
		"POST /v1/items/{id}/{action} 202",
	}
	if !slices.Equal(got, want) {
		t.Errorf("operations\n got %q\nwant %q", got, want)
	}
}

func TestOperationsErrors(t *testing.T) {
	t.Parallel()
	for name, d := range map[string]string{
		"not JSON":        `{"paths":`,
		"no paths":        `{"openapi":"3.1.0"}`,
		"no operations":   `{"paths":{"/x":{"parameters":[]}}}`,
		"bad operation":   `{"paths":{"/x":{"get":[]}}}`,
		"bad responses":   `{"paths":{"/x":{"get":{"responses":[]}}}}`,
		"paths not a map": `{"paths":[]}`,
	} {
		if _, err := Operations([]byte(d)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestPick(t *testing.T) {
	t.Parallel()
	ops, err := Operations([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range ops {
		if got := Pick(ops, o.String()); got.String() != o.String() {
			t.Errorf("Pick(%q) = %s", o.String(), got)
		}
	}
	// Any other selector lands on some operation, the same one every time, and mutations
	// spread over all of them.
	seen := map[string]bool{}
	for i := range 200 {
		sel := strings.Repeat("x", i)
		o := Pick(ops, sel)
		if Pick(ops, sel).String() != o.String() {
			t.Fatalf("Pick(%q) is not deterministic", sel)
		}
		seen[o.String()] = true
	}
	if len(seen) != len(ops) {
		t.Errorf("200 selectors reached %d of %d operations", len(seen), len(ops))
	}
}

func TestDocuments(t *testing.T) {
	t.Parallel()
	o := Operation{Method: "GET", Path: "/x", Responses: []string{"200", "404", "5xx", "default"}}
	for status, want := range map[int]bool{200: true, 404: true, 500: true, 503: true, 201: false, 400: false, 422: false} {
		if got := o.Documents(status); got != want {
			t.Errorf("Documents(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path, params, query, want string
	}{
		{"/v1/items", "ignored", "", "/v1/items"},
		{"/v1/items", "", "limit=5&q=a b", "/v1/items?limit=5&q=a_b"},
		{"/v1/items/{id}", "c1", "", "/v1/items/c1"},
		{"/v1/items/{id}", "", "", "/v1/items/"},
		{"/v1/items/{id}/{action}", "c1/close", "", "/v1/items/c1/close"},
		{"/v1/items/{id}/{action}", "c1", "", "/v1/items/c1/c1"},
		{"/v1/items/{id}/{action}", "a/b/c", "", "/v1/items/a/b"},
		{"/v1/items/{id}", "a?b#c%zz%2F%0", "x?y%41", "/v1/items/a_b_c_zz%2F_0?x_y%41"},
	}
	for _, tc := range tests {
		o := Operation{Method: "GET", Path: tc.path}
		if got := o.Target(tc.params, tc.query); got != tc.want {
			t.Errorf("%s Target(%q, %q) = %q, want %q", tc.path, tc.params, tc.query, got, tc.want)
		}
	}
}

func TestURLSafe(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"":             "",
		"abc-._~:@!$&": "abc-._~:@!$&",
		"a b\tc\x00":   "a_b_c_",
		"é":            "__",
		"\xff":         "_",
		"a/b?c#d":      "a_b_c_d",
		"%41%4g%%2f%":  "%41_4g_%2f_",
		"%":            "_",
		"%4":           "_4",
	}
	for in, want := range tests {
		if got := URLSafe(in); got != want {
			t.Errorf("URLSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHeaderValue(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"":                 "",
		"  key-1\t":        "key-1",
		"a\r\nX-Evil: 1":   "a__X-Evil: 1",
		"a\x00b\x7fc\td":   "a_b_c\td",
		"caf\xc3\xa9 \xff": "caf\xc3\xa9 \xff",
	}
	for in, want := range tests {
		if got := HeaderValue(in); got != want {
			t.Errorf("HeaderValue(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzTarget: whatever the fuzzed values, the target is a request line httptest (and so any
// client) accepts, it routes to the operation's path (same segments outside placeholders),
// and header values pass net/http's own check.
func FuzzTarget(f *testing.F) {
	f.Add("/v1/items/{id}/{action}", "c1/close", "limit=1")
	f.Add("/v1/items/{id}", "%zz\x00é/", "?#%")
	f.Fuzz(func(t *testing.T, path, params, query string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?#%") || URLSafe(strings.ReplaceAll(path, "/", "")) != strings.ReplaceAll(path, "/", "") {
			return // not a template a document would hold
		}
		o := Operation{Method: "GET", Path: path}
		target := o.Target(params, query)
		for _, c := range []byte(target) {
			if c <= 0x20 || c >= 0x7f {
				t.Fatalf("target %q has byte %#x", target, c)
			}
		}
		func() {
			defer func() {
				if v := recover(); v != nil {
					t.Fatalf("httptest.NewRequest(%q) panicked: %v", target, v)
				}
			}()
			r := httptest.NewRequest("GET", target, nil)
			segments := strings.Split(placeholder.ReplaceAllString(path, "{}"), "/")
			got := strings.Split(r.URL.EscapedPath(), "/")
			if len(got) != len(segments) {
				t.Fatalf("target %q has %d segments, template %q %d", target, len(got), path, len(segments))
			}
		}()
		h := HeaderValue(params)
		for _, c := range []byte(h) {
			if c < 0x20 && c != '\t' || c == 0x7f {
				t.Fatalf("HeaderValue(%q) = %q keeps control byte %#x", params, h, c)
			}
		}
		if h != strings.Trim(h, " \t") {
			t.Fatalf("HeaderValue(%q) = %q has surrounding white space", params, h)
		}
	})
}

// Package openapifuzz drives go test -fuzz targets from an OpenAPI 3 document, so a fuzzer
// sends every operation the document lists and a new endpoint is fuzzed without touching the
// test. It lists the operations with their documented response codes, picks one from a fuzzed
// selector, fills its path template and query from fuzzed strings, and keeps fuzzed strings
// within what a real client can put in a request line or a header (httptest.NewRequest panics
// on the rest, and net/http servers refuse it before any handler runs).
//
// It has no dependencies beyond the standard library; checking bodies against the document's
// schemas is left to the caller.
package openapifuzz

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Operation is one method on one path of an OpenAPI document.
type Operation struct {
	// Method is upper case: GET, POST, PUT, PATCH or DELETE.
	Method string
	// Path is the template as documented, e.g. /v1/transactions/{id}/decision.
	Path string
	// Responses are the documented response keys, sorted: codes ("404"), ranges ("4XX") or "default".
	Responses []string
}

// String is the operation's key, "POST /v1/transactions", as Pick accepts it.
func (o Operation) String() string { return o.Method + " " + o.Path }

var methods = map[string]bool{
	http.MethodGet: true, http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true, http.MethodDelete: true,
}

// Operations lists the operations of an OpenAPI 3 document (JSON), sorted by path then method.
// Path-level keys that are not methods (parameters, summary, servers...) are skipped. A document
// without a single operation is an error: a fuzzer driven by it would test nothing.
func Operations(doc []byte) ([]Operation, error) {
	var d struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("parse OpenAPI document: %w", err)
	}
	var ops []Operation
	for path, items := range d.Paths {
		for key, raw := range items {
			m := strings.ToUpper(key)
			if !methods[m] {
				continue
			}
			var op struct {
				Responses map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				return nil, fmt.Errorf("operation %s %s: %w", m, path, err)
			}
			o := Operation{Method: m, Path: path}
			for code := range op.Responses {
				o.Responses = append(o.Responses, code)
			}
			slices.Sort(o.Responses)
			ops = append(ops, o)
		}
	}
	if len(ops) == 0 {
		return nil, errors.New("the OpenAPI document has no operations")
	}
	slices.SortFunc(ops, func(a, b Operation) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})
	return ops, nil
}

// Pick returns the operation whose key (see String) is sel, or, for any other sel, one chosen
// by a hash of it. Seeds can thus name their operation ("POST /v1/transactions") and stay
// valid when the document grows, while every mutation of sel still lands on some operation.
// ops must not be empty.
func Pick(ops []Operation, sel string) Operation {
	for _, o := range ops {
		if o.String() == sel {
			return o
		}
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(sel))
	return ops[h.Sum32()%uint32(len(ops))]
}

// Documents reports whether the document lists status for the operation, exactly or by its
// range ("5XX"). "default" is not counted: it documents errors in general, not this one.
func (o Operation) Documents(status int) bool {
	code := strconv.Itoa(status)
	class := code[:1] + "XX"
	for _, r := range o.Responses {
		if r == code || strings.EqualFold(r, class) {
			return true
		}
	}
	return false
}

var placeholder = regexp.MustCompile(`\{[^}/]*\}`)

// Target is the request target for the operation: each {placeholder} of the path in turn
// gets the next '/'-separated value of params (cycling when there are fewer values than
// placeholders; all empty when params is), each made URLSafe; a non-empty query is appended
// after '?', made URLSafe too. '/' is free as the separator because URLSafe would replace it.
func (o Operation) Target(params, query string) string {
	values := strings.Split(params, "/")
	i := 0
	path := placeholder.ReplaceAllStringFunc(o.Path, func(string) string {
		v := URLSafe(values[i%len(values)])
		i++
		return v
	})
	if query != "" {
		path += "?" + URLSafe(query)
	}
	return path
}

// URLSafe keeps a fuzzed string usable in one path segment or a query string: every byte
// outside printable ASCII, '#', '?', '/', and a '%' that does not start a valid escape (two
// hex digits) becomes '_'. What it removes no client could send as such (httptest.NewRequest
// panics on it), or it would move the value to another segment or part of the URL. Valid
// escapes stay, so the handler still meets any byte a client can send encoded ("%2F", "%00").
func URLSafe(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteString(s[i : i+3])
			i += 2
		case c > 0x20 && c < 0x7f && c != '#' && c != '?' && c != '/' && c != '%':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// HeaderValue keeps a fuzzed string a header field value a net/http server would accept
// (RFC 9110 field-value): control bytes other than horizontal tab become '_', and leading and
// trailing spaces and tabs are dropped, as the server's parser would drop them. Bytes of 0x80
// and above (obs-text) are kept: a client can send them.
func HeaderValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			b[i] = '_'
		}
	}
	return strings.Trim(string(b), " \t")
}

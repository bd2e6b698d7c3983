package httpapi

import (
	"bytes"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var (
	specOnce sync.Once
	spec     map[string]any
	specErr  error
	compiler *jsonschema.Compiler
)

// loadSpec reads openapi.json once and registers it as a schema resource, so any
// "#/components/..." or "#/paths/..." pointer in it compiles as JSON Schema 2020-12 (which
// OpenAPI 3.1 schemas are).
func loadSpec(t *testing.T) map[string]any {
	t.Helper()
	specOnce.Do(func() {
		raw, err := os.ReadFile("../../openapi.json")
		if err != nil {
			specErr = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			specErr = err
			return
		}
		spec, _ = doc.(map[string]any)
		compiler = jsonschema.NewCompiler()
		compiler.DefaultDraft(jsonschema.Draft2020)
		specErr = compiler.AddResource("https://vigil.invalid/openapi.json", doc)
	})
	if specErr != nil {
		t.Fatalf("openapi.json: %v", specErr)
	}
	return spec
}

var schemaMu sync.Mutex

// checkResponse validates a recorded response against the schema openapi.json documents for
// operation path+method and the response's status and content type.
func checkResponse(t *testing.T, method, path string, rec *httptest.ResponseRecorder) {
	t.Helper()
	doc := loadSpec(t)
	op, ok := dig(doc, "paths", path, strings.ToLower(method)).(map[string]any)
	if !ok {
		t.Fatalf("openapi.json has no operation %s %s", method, path)
	}
	status := strconv.Itoa(rec.Code)
	resp, ok := dig(op, "responses", status).(map[string]any)
	if !ok {
		t.Fatalf("openapi.json does not document status %s for %s %s", status, method, path)
	}
	if ref, ok := resp["$ref"].(string); ok {
		resp, _ = dig(doc, strings.Split(strings.TrimPrefix(ref, "#/"), "/")...).(map[string]any)
	}
	ct := rec.Header().Get("Content-Type")
	content, ok := dig(resp, "content", ct).(map[string]any)
	if !ok {
		t.Fatalf("openapi.json documents no %s body for %s %s %s", ct, method, path, status)
	}
	if _, ok := content["schema"]; !ok {
		return
	}
	for name, h := range dig(resp, "headers").(map[string]any) {
		if dig(h, "required") == true && rec.Header().Get(name) == "" {
			t.Errorf("%s %s %s: documented header %s missing", method, path, status, name)
		}
	}
	// Point at the schema where it is written, through the shared response when $ref'd.
	base := "#/paths/" + escapePointer(path) + "/" + strings.ToLower(method) + "/responses/" + status
	if ref, ok := dig(op, "responses", status).(map[string]any)["$ref"].(string); ok {
		base = ref
	}
	ptr := "https://vigil.invalid/openapi.json" + base + "/content/" + escapePointer(ct) + "/schema"
	schemaMu.Lock()
	sch, err := compiler.Compile(ptr)
	schemaMu.Unlock()
	if err != nil {
		t.Fatalf("compile %s: %v", ptr, err)
	}
	body, err := jsonschema.UnmarshalJSON(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatalf("%s %s %s: body is not JSON: %v", method, path, status, err)
	}
	if err := sch.Validate(body); err != nil {
		t.Errorf("%s %s %s: body does not match openapi.json: %v\nbody: %s", method, path, status, err, rec.Body.String())
	}
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	if v == nil {
		return map[string]any{}
	}
	return v
}

// The document itself must parse and its schemas compile.
func TestOpenAPICompiles(t *testing.T) {
	t.Parallel()
	loadSpec(t)
	for _, name := range []string{"TransactionRequest", "BatchRequest", "Accepted", "BatchResult", "Decision", "Problem"} {
		schemaMu.Lock()
		_, err := compiler.Compile("https://vigil.invalid/openapi.json#/components/schemas/" + name)
		schemaMu.Unlock()
		if err != nil {
			t.Errorf("schema %s: %v", name, err)
		}
	}
	// The checker must be able to fail: a decision with an unknown action does not match.
	schemaMu.Lock()
	sch, err := compiler.Compile("https://vigil.invalid/openapi.json#/components/schemas/Decision")
	schemaMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]any{"id": "a:b", "status": "decided", "action": "maybe", "score": 0.5, "reasons": []any{},
		"model_version": "m", "decided_at": "2025-06-01T12:00:00Z", "decision_url": "/x"}
	if err := sch.Validate(bad); err == nil {
		t.Error("schema accepted action \"maybe\"")
	}
}

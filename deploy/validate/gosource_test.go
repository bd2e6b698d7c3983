package validate

import (
	"os"
	"path/filepath"
	"testing"
)

func TestScanGoFindsReadsSecretsAndRequirements(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lib := `package pg
import "github.com/vigil-fraud/vigil/libs/config"
func LoadConfig(e *config.Env) string { return e.Secret("VIGIL_PG_URL", true) }
func Optional(e *config.Env) string { return e.String("VIGIL_PG_OPT", "") }
`
	svc := `package main
import (
	"github.com/vigil-fraud/vigil/libs/config"
	db "github.com/vigil-fraud/vigil/libs/pg"
)
func load(e *config.Env) {
	_ = e.Required("VIGIL_SVC_NEEDED")
	_ = e.Secret("VIGIL_SVC_TOKEN", false)
	_ = e.String("VIGIL_SVC_ADDR", "")
	_ = "VIGIL_SVC_" // a prefix, not a variable
	_ = db.LoadConfig(e)
}
`
	test := `package main
const x = "VIGIL_ONLY_IN_TESTS"
`
	for path, src := range map[string]string{"libs/pg/pg.go": lib, "svc/main.go": svc, "svc/main_test.go": test} {
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	libs, err := scanGo([]string{filepath.Join(dir, "libs")}, func(d string) string { return modulePrefix + "libs/" + filepath.Base(d) })
	if err != nil {
		t.Fatal(err)
	}
	own, err := scanGo([]string{filepath.Join(dir, "svc")}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"literal read", own.Accepts("VIGIL_SVC_ADDR"), true},
		{"secret _FILE form", own.Accepts("VIGIL_SVC_TOKEN_FILE"), true},
		{"_FILE of a non-secret", own.Accepts("VIGIL_SVC_ADDR_FILE"), false},
		{"prefix is not a variable", own.Accepts("VIGIL_SVC_"), false},
		{"test files ignored", own.Accepts("VIGIL_ONLY_IN_TESTS"), false},
		{"Required() is required", own.Required["VIGIL_SVC_NEEDED"], true},
		{"Secret(false) is optional", own.Required["VIGIL_SVC_TOKEN"], false},
		{"aliased lib call recorded", own.Calls[modulePrefix+"libs/pg.LoadConfig"], true},
		{"lib loader requirement", len(libs.RequiredBy[modulePrefix+"libs/pg.LoadConfig"]) == 1, true},
		{"optional lib loader", len(libs.RequiredBy[modulePrefix+"libs/pg.Optional"]) == 0, true},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// The real services must keep yielding requirements, or the compose and k8s checks would pass
// vacuously after a refactor of libs/config.
func TestRealSourcesHaveRequirements(t *testing.T) {
	t.Parallel()
	for _, svc := range []string{"ingest", "scoring", "alerting"} {
		env, err := sources(t).service(svc)
		if err != nil {
			t.Fatal(err)
		}
		if !env.Required["VIGIL_POSTGRES_URL"] {
			t.Errorf("%s: VIGIL_POSTGRES_URL not found as required (via postgres.LoadConfig)", svc)
		}
	}
}

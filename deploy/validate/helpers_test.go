package validate

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// repoRoot is the monorepo root: this package lives in deploy/validate.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("repository root not found from deploy/validate: %v", err)
	}
	return root
}

var (
	indexOnce sync.Once
	index     *sourceIndex
	indexErr  error
)

// sources is the Go source index shared by the tests (scanning libs once is enough).
func sources(t testing.TB) *sourceIndex {
	t.Helper()
	indexOnce.Do(func() { index, indexErr = newSourceIndex(repoRoot(t)) })
	if indexErr != nil {
		t.Fatalf("scan Go source: %v", indexErr)
	}
	return index
}

// checkEnv reports VIGIL_* names the deployable does not read and, when server is true (the
// container runs the long-running service, not a subcommand), required names left unset.
// set maps a variable name to whether it is set (value or _FILE counts for secrets).
func checkEnv(t *testing.T, where, deployable string, set map[string]bool, server bool) {
	t.Helper()
	env, err := sources(t).service(deployable)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	for name := range set {
		if envName.MatchString(name) && !env.Accepts(name) {
			t.Errorf("%s: sets %s, which %s's Go source (and libs) never reads", where, name, deployable)
		}
	}
	if !server {
		return
	}
	for name := range env.Required {
		if !set[name] && !set[name+"_FILE"] {
			t.Errorf("%s: %s requires %s (or %s_FILE), which is not set", where, deployable, name, name)
		}
	}
}

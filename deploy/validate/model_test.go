package validate

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// imageModels is where the runtime image holds models/artifacts.
const imageModels = "/usr/share/vigil/models/"

// TestShippedModelIsWhereDeploymentsLookForIt: the runtime image copies models/artifacts to
// imageModels, and compose and every overlay point scoring's VIGIL_SCORING_MODEL_PATH at a file
// that is there, so renaming the artifact cannot leave a deployment scoring with a missing file
// (scoring refuses to start without it).
func TestShippedModelIsWhereDeploymentsLookForIt(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	stages, _ := parseDockerfile(t, filepath.Join(root, "deploy", "docker", "Dockerfile"))
	copied := false
	for _, n := range stages[len(stages)-1].instrs {
		if n.Value != "copy" {
			continue
		}
		var args []string
		for a := n.Next; a != nil; a = a.Next {
			args = append(args, a.Value)
		}
		if len(args) == 2 && strings.TrimSuffix(args[0], "/") == "models/artifacts" && args[1] == imageModels {
			copied = true
		}
	}
	if !copied {
		t.Fatalf("the runtime stage of deploy/docker/Dockerfile does not COPY models/artifacts/ %s", imageModels)
	}
	check := func(where, p string) {
		t.Helper()
		if !strings.HasPrefix(p, imageModels) {
			t.Errorf("%s: VIGIL_SCORING_MODEL_PATH=%q, want the image's %s<file>", where, p, imageModels)
			return
		}
		if _, err := os.Stat(filepath.Join(root, "models", "artifacts", path.Base(p))); err != nil {
			t.Errorf("%s: VIGIL_SCORING_MODEL_PATH=%q: not in models/artifacts: %v", where, p, err)
		}
	}

	s, ok := loadCompose(t).Services["scoring"]
	if !ok {
		t.Fatal("docker-compose.yml has no scoring service")
	}
	check("docker-compose.yml scoring", deref(s.Environment["VIGIL_SCORING_MODEL_PATH"]))

	for _, dir := range overlays(t) {
		found := false
		for _, obj := range renderOverlay(t, dir).typed {
			d, ok := obj.(*appsv1.Deployment)
			if !ok || d.Name != "scoring" {
				continue
			}
			found = true
			p := ""
			for _, e := range d.Spec.Template.Spec.Containers[0].Env {
				if e.Name == "VIGIL_SCORING_MODEL_PATH" {
					p = e.Value
				}
			}
			check("overlay "+filepath.Base(dir)+" scoring", p)
		}
		if !found {
			t.Errorf("overlay %s renders no scoring Deployment", filepath.Base(dir))
		}
	}
}

package validate

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

type stage struct {
	image, alias string
	instrs       []*parser.Node
}

// parseDockerfile returns the stages and the ARG defaults declared before the first FROM.
func parseDockerfile(t *testing.T, path string) ([]stage, map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: parser warning: %s", path, w.Short)
	}
	globals := map[string]string{}
	var stages []stage
	for _, n := range res.AST.Children {
		// Instruction keywords come back as written (upper case here); compare case-insensitively.
		n.Value = strings.ToLower(n.Value)
		switch {
		case n.Value == "from":
			st := stage{image: n.Next.Value}
			if n.Next.Next != nil && strings.EqualFold(n.Next.Next.Value, "as") && n.Next.Next.Next != nil {
				st.alias = n.Next.Next.Next.Value
			}
			stages = append(stages, st)
		case len(stages) == 0 && n.Value == "arg":
			if k, v, ok := strings.Cut(n.Next.Value, "="); ok {
				globals[k] = v
			}
		case len(stages) > 0:
			stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, n)
		}
	}
	return stages, globals
}

var argRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

// text is an instruction's source with its heredoc bodies.
func text(n *parser.Node) string {
	var b strings.Builder
	b.WriteString(n.Original)
	for _, h := range n.Heredocs {
		b.WriteString("\n" + h.Content)
	}
	return b.String()
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	stages, globals := parseDockerfile(t, filepath.Join(root, "deploy", "docker", "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stages", len(stages))
	}
	aliases := map[string]bool{}
	for _, st := range stages {
		image := argRef.ReplaceAllStringFunc(st.image, func(m string) string {
			return globals[argRef.FindStringSubmatch(m)[1]]
		})
		if !aliases[image] {
			name, tag, _ := strings.Cut(image[strings.LastIndex(image, "/")+1:], ":")
			switch {
			case strings.Contains(image, "@sha256:"):
			case tag == "" || tag == "latest":
				t.Errorf("FROM %s (%s): base image not pinned to a version tag or digest", st.image, image)
			case name == "golang" && !regexp.MustCompile(`^1\.\d+\.\d+`).MatchString(tag):
				t.Errorf("FROM %s: pin Go to an exact release (1.x.y), got tag %q", st.image, tag)
			}
		}
		if st.alias != "" {
			aliases[st.alias] = true
		}
	}

	build, final := stages[0], stages[len(stages)-1]
	if !strings.HasPrefix(build.image, "golang:") {
		t.Errorf("first stage %q: want the golang builder", build.image)
	}
	var buildText strings.Builder
	for _, n := range build.instrs {
		buildText.WriteString(text(n) + "\n")
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "go.work"} {
		if !strings.Contains(buildText.String(), want) {
			t.Errorf("builder stage does not mention %s", want)
		}
	}

	if !strings.HasPrefix(final.image, "gcr.io/distroless/static") || !strings.HasSuffix(final.image, ":nonroot") {
		t.Errorf("final stage %q: want gcr.io/distroless/static-*:nonroot", final.image)
	}
	var user string
	var exposed, entrypoint bool
	for _, n := range final.instrs {
		switch n.Value {
		case "user":
			user = n.Next.Value
		case "expose":
			exposed = true
		case "run":
			t.Errorf("line %d: RUN in the final stage, which has no shell", n.StartLine)
		case "entrypoint", "cmd":
			entrypoint = entrypoint || n.Value == "entrypoint"
			if !n.Attributes["json"] {
				t.Errorf("line %d: %s in shell form; the distroless image has no shell, use JSON form", n.StartLine, strings.ToUpper(n.Value))
			}
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u != "nonroot" && u != "65532" {
		t.Errorf("final stage USER %q: want nonroot (65532)", user)
	}
	if !exposed {
		t.Error("final stage: no EXPOSE")
	}
	if !entrypoint {
		t.Error("final stage: no ENTRYPOINT")
	}

	// Every deployable compose builds must be a case of the build script, and every module of
	// go.work must have its go.mod copied into the module-download layer.
	for name, s := range loadCompose(t).Services {
		if dep := vigilDeployable(s); dep != "" && !strings.Contains(buildText.String(), dep+")") && !strings.Contains(buildText.String(), dep+"|") {
			t.Errorf("compose service %s builds SERVICE=%s, which the Dockerfile's build step does not handle", name, dep)
		}
	}
	for _, mod := range workModules(t, root) {
		if !strings.Contains(buildText.String(), "COPY "+mod+"/go.mod "+mod+"/go.sum "+mod+"/") {
			t.Errorf("Dockerfile does not copy %s/go.mod and go.sum; go.work lists it, so the build fails without it", mod)
		}
	}
}

// workModules lists the `use` directories of go.work, without "./".
func workModules(t *testing.T, root string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var mods []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "use ("):
			in = true
		case in && line == ")":
			in = false
		case in && strings.HasPrefix(line, "./"):
			mods = append(mods, strings.TrimPrefix(line, "./"))
		case strings.HasPrefix(line, "use ./"):
			mods = append(mods, strings.TrimPrefix(line, "use ./"))
		}
	}
	if len(mods) == 0 {
		t.Fatal("go.work lists no modules")
	}
	return mods
}

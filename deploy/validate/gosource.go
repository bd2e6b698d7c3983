package validate

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// modulePrefix is the import path of the monorepo; libs packages live under modulePrefix+"libs/".
const modulePrefix = "github.com/vigil-fraud/vigil/"

var envName = regexp.MustCompile(`^VIGIL_[A-Z0-9_]*[A-Z0-9]$`)

// envUse is what a set of Go packages does with VIGIL_* variables.
type envUse struct {
	// Read holds every VIGIL_* string literal: a variable the code can look up.
	Read map[string]bool
	// Secret holds names passed to config.Env.Secret, which also reads NAME_FILE.
	Secret map[string]bool
	// Required holds names the code fails without: Required("X") and Secret("X", true).
	Required map[string]bool
	// Calls holds "importpath.Func" for every call of a function from another package, so
	// requirements of libs loaders (postgres.LoadConfig) can be attributed to their callers.
	Calls map[string]bool
	// RequiredBy maps "importpath.Func" to the names that function requires.
	RequiredBy map[string][]string
}

func newEnvUse() envUse {
	return envUse{Read: map[string]bool{}, Secret: map[string]bool{}, Required: map[string]bool{},
		Calls: map[string]bool{}, RequiredBy: map[string][]string{}}
}

// Accepts reports whether setting name is meaningful to this code: read as a literal, or the
// _FILE form of a secret.
func (u envUse) Accepts(name string) bool {
	if u.Read[name] {
		return true
	}
	base, ok := strings.CutSuffix(name, "_FILE")
	return ok && u.Secret[base]
}

// scanGo parses the non-test Go files under dirs. importPath maps a directory to its import
// path (for RequiredBy keys); it may return "" for directories whose functions nobody calls.
func scanGo(dirs []string, importPath func(dir string) string) (envUse, error) {
	u := newEnvUse()
	fset := token.NewFileSet()
	for _, root := range dirs {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if n := d.Name(); n == "testdata" || n == "vendor" || strings.HasPrefix(n, ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			scanFile(f, importPath(filepath.Dir(path)), &u)
			return nil
		})
		if err != nil {
			return u, err
		}
	}
	return u, nil
}

func scanFile(f *ast.File, pkgPath string, u *envUse) {
	imports := map[string]string{} // local name → import path
	for _, is := range f.Imports {
		p, _ := strconv.Unquote(is.Path.Value)
		name := p[strings.LastIndex(p, "/")+1:]
		if is.Name != nil {
			name = is.Name.Name
		}
		imports[name] = p
	}
	for _, decl := range f.Decls {
		fn, _ := decl.(*ast.FuncDecl)
		var required []string
		ast.Inspect(decl, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if s, err := strconv.Unquote(n.Value); err == nil && n.Kind == token.STRING && envName.MatchString(s) {
					u.Read[s] = true
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); ok {
					if p, ok := imports[x.Name]; ok {
						u.Calls[p+"."+sel.Sel.Name] = true
					}
				}
				if len(n.Args) == 0 {
					return true
				}
				name, ok := stringArg(n.Args[0])
				if !ok || !envName.MatchString(name) {
					return true
				}
				switch {
				case sel.Sel.Name == "Required" && len(n.Args) == 1:
					required = append(required, name)
				case sel.Sel.Name == "Secret" && len(n.Args) == 2:
					u.Secret[name] = true
					if b, ok := n.Args[1].(*ast.Ident); ok && b.Name == "true" {
						required = append(required, name)
					}
				}
			}
			return true
		})
		for _, r := range required {
			u.Required[r] = true
		}
		if fn != nil && fn.Recv == nil && pkgPath != "" && len(required) > 0 {
			key := pkgPath + "." + fn.Name.Name
			u.RequiredBy[key] = append(u.RequiredBy[key], required...)
		}
	}
}

func stringArg(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// serviceEnv is what one deployable reads: its own tree plus libs. Required holds its own
// Required/Secret(true) names and those of the libs loaders it calls directly.
type serviceEnv struct {
	Accepts  func(string) bool
	IsSecret func(string) bool
	Required map[string]bool
}

// sourceIndex scans libs once and each deployable on demand.
type sourceIndex struct {
	root string
	libs envUse

	mu       sync.Mutex
	services map[string]serviceEnv
}

func newSourceIndex(root string) (*sourceIndex, error) {
	libsDir := filepath.Join(root, "libs")
	libs, err := scanGo([]string{libsDir}, func(dir string) string {
		rel, err := filepath.Rel(libsDir, dir)
		if err != nil {
			return ""
		}
		return modulePrefix + "libs/" + filepath.ToSlash(rel)
	})
	if err != nil {
		return nil, err
	}
	return &sourceIndex{root: root, libs: libs, services: map[string]serviceEnv{}}, nil
}

// deployableDirs maps the Dockerfile's SERVICE names to their source trees.
var deployableDirs = map[string]string{
	"ingest":         "services/ingest",
	"feature-window": "services/feature-window",
	"scoring":        "services/scoring",
	"alerting":       "services/alerting",
	"vigilctl":       "cmd/vigilctl",
	"vigil-send":     "loadtest/cmd/vigil-send",
	"vigil-model":    "models/cmd/vigil-model",
}

func (x *sourceIndex) service(name string) (serviceEnv, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if env, ok := x.services[name]; ok {
		return env, nil
	}
	dir, ok := deployableDirs[name]
	if !ok {
		return serviceEnv{}, errUnknownDeployable(name)
	}
	own, err := scanGo([]string{filepath.Join(x.root, dir)}, func(string) string { return "" })
	if err != nil {
		return serviceEnv{}, err
	}
	req := map[string]bool{}
	for n := range own.Required {
		req[n] = true
	}
	for call := range own.Calls {
		for _, n := range x.libs.RequiredBy[call] {
			req[n] = true
		}
	}
	env := serviceEnv{
		Accepts:  func(n string) bool { return own.Accepts(n) || x.libs.Accepts(n) },
		IsSecret: func(n string) bool { return own.Secret[n] || x.libs.Secret[n] },
		Required: req,
	}
	x.services[name] = env
	return env, nil
}

type errUnknownDeployable string

func (e errUnknownDeployable) Error() string {
	return "no source tree known for deployable " + strconv.Quote(string(e)) + " (add it to deployableDirs)"
}

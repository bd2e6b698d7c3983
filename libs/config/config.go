// Package config reads a service's settings from environment variables and reports every bad
// or missing one at once, each by its variable name.
package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Env reads variables and collects problems. Call Err once after reading everything.
type Env struct {
	lookup func(string) (string, bool)
	errs   []error
}

// FromOS reads the process environment.
func FromOS() *Env { return New(os.LookupEnv) }

// FromMap reads a fixed map; for tests.
func FromMap(m map[string]string) *Env {
	return New(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
}

// New reads through lookup.
func New(lookup func(string) (string, bool)) *Env { return &Env{lookup: lookup} }

// Err returns all problems found so far, or nil.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// Fail records a problem with a variable that the caller validated itself.
func (e *Env) Fail(name, format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

func (e *Env) get(name string) (string, bool) {
	v, ok := e.lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// String returns the variable or def when it is unset or empty.
func (e *Env) String(name, def string) string {
	if v, ok := e.get(name); ok {
		return v
	}
	return def
}

// Required returns the variable and records a problem when it is unset or empty.
func (e *Env) Required(name string) string {
	v, ok := e.get(name)
	if !ok {
		e.Fail(name, "is required")
	}
	return v
}

// List splits a comma-separated variable, dropping empty items.
func (e *Env) List(name string, def []string) []string {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Int parses an integer within [lo, hi].
func (e *Env) Int(name string, def, lo, hi int) int {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.Fail(name, "%q is not an integer", v)
		return def
	}
	if n < lo || n > hi {
		e.Fail(name, "%d is outside [%d, %d]", n, lo, hi)
		return def
	}
	return n
}

// Float parses a number within [lo, hi].
func (e *Env) Float(name string, def, lo, hi float64) float64 {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		e.Fail(name, "%q is not a number", v)
		return def
	}
	if f < lo || f > hi {
		e.Fail(name, "%g is outside [%g, %g]", f, lo, hi)
		return def
	}
	return f
}

// Duration parses a Go duration ("250ms", "5s") that must be positive.
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	d, ok := e.duration(name, def)
	if ok && d <= 0 {
		e.Fail(name, "%s must be positive", d)
		return def
	}
	return d
}

// DurationRange parses a Go duration within [lo, hi]; unlike Duration it may be zero.
func (e *Env) DurationRange(name string, def, lo, hi time.Duration) time.Duration {
	d, ok := e.duration(name, def)
	if ok && (d < lo || d > hi) {
		e.Fail(name, "%s is outside [%s, %s]", d, lo, hi)
		return def
	}
	return d
}

// duration parses name; ok is false when it is unset or invalid (def is returned).
func (e *Env) duration(name string, def time.Duration) (time.Duration, bool) {
	v, set := e.get(name)
	if !set {
		return def, false
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.Fail(name, "%q is not a duration like 500ms or 5s", v)
		return def, false
	}
	return d, true
}

// Bool parses true/false/1/0.
func (e *Env) Bool(name string, def bool) bool {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.Fail(name, "%q is not true or false", v)
		return def
	}
	return b
}

// Secret reads NAME, or the file named by NAME_FILE (for Kubernetes and Docker secrets).
// Setting both is an error: which one wins would be a guess.
func (e *Env) Secret(name string, required bool) string {
	v, hasValue := e.get(name)
	path, hasFile := e.get(name + "_FILE")
	switch {
	case hasValue && hasFile:
		e.Fail(name, "set either %s or %s_FILE, not both", name, name)
		return ""
	case hasFile:
		b, err := os.ReadFile(path)
		if err != nil {
			e.Fail(name+"_FILE", "cannot read secret file: %v", err)
			return ""
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			e.Fail(name+"_FILE", "secret file %s is empty", path)
		}
		return s
	case hasValue:
		return v
	}
	if required {
		e.Fail(name, "is required (or %s_FILE naming a file that holds it)", name)
	}
	return ""
}

// Mask hides a secret in logs, keeping only whether it is set.
func Mask(s string) string {
	if s == "" {
		return ""
	}
	return "***"
}

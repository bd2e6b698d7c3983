package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEnvCollectsEveryProblem(t *testing.T) {
	t.Parallel()
	e := FromMap(map[string]string{
		"A_INT":   "x",
		"A_DUR":   "-1s",
		"A_BOOL":  "maybe",
		"A_RANGE": "99",
	})
	e.Int("A_INT", 1, 0, 10)
	e.Duration("A_DUR", time.Second)
	e.Bool("A_BOOL", false)
	e.Int("A_RANGE", 1, 0, 10)
	e.Required("A_MISSING")
	err := e.Err()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, name := range []string{"A_INT", "A_DUR", "A_BOOL", "A_RANGE", "A_MISSING"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestEnvDefaultsAndValues(t *testing.T) {
	t.Parallel()
	e := FromMap(map[string]string{"N": " 7 ", "L": "a, b,,c", "D": "250ms", "F": "0.5"})
	if got := e.Int("N", 1, 0, 10); got != 7 {
		t.Errorf("Int = %d", got)
	}
	if got := e.List("L", nil); strings.Join(got, "|") != "a|b|c" {
		t.Errorf("List = %q", got)
	}
	if got := e.Duration("D", time.Second); got != 250*time.Millisecond {
		t.Errorf("Duration = %s", got)
	}
	if got := e.Float("F", 0, 0, 1); got != 0.5 {
		t.Errorf("Float = %g", got)
	}
	if got := e.String("UNSET", "def"); got != "def" {
		t.Errorf("String = %q", got)
	}
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestSecretFromFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr string
	}{
		{"value", map[string]string{"K": "v"}, "v", ""},
		{"file", map[string]string{"K_FILE": path}, "s3cret", ""},
		{"both", map[string]string{"K": "v", "K_FILE": path}, "", "not both"},
		{"missing file", map[string]string{"K_FILE": path + ".nope"}, "", "K_FILE"},
		{"required", map[string]string{}, "", "K: is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := FromMap(tc.env)
			got := e.Secret("K", true)
			err := e.Err()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestDurationRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		val     string
		want    time.Duration
		wantErr bool
	}{
		{"", time.Second, false}, // unset: the default
		{"0", 0, false},
		{"0s", 0, false},
		{"250ms", 250 * time.Millisecond, false},
		{"2m", time.Second, true},
		{"-1s", time.Second, true},
		{"soon", time.Second, true},
	}
	for _, tt := range tests {
		m := map[string]string{}
		if tt.val != "" {
			m["D"] = tt.val
		}
		e := FromMap(m)
		got := e.DurationRange("D", time.Second, 0, time.Minute)
		if got != tt.want || (e.Err() != nil) != tt.wantErr {
			t.Errorf("DurationRange(%q) = %v, %v; want %v, error %v", tt.val, got, e.Err(), tt.want, tt.wantErr)
		}
	}
}

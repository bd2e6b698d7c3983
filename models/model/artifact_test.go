package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/models/features"
)

func validArtifact() *Artifact {
	return &Artifact{
		Version:       "lr-2024-03-06",
		Kind:          KindLogistic,
		FeatureSchema: features.SchemaVersion,
		FeatureHash:   features.SchemaHash(),
		Names:         append([]string(nil), features.Names...),
		Mean:          filled(80, 4.5),
		Std:           filled(70, 2.9),
		Weights:       filled(7.3, 0.1),
		Bias:          -8.1,
		TrainedAt:     time.Date(2024, 3, 6, 12, 0, 0, 123, time.UTC),
		Metrics:       map[string]float64{"train_auc": 0.999},
	}
}

// filled returns a vector of the current schema's length starting first,
// then rest repeated.
func filled(first, rest float64) []float64 {
	v := make([]float64, len(features.Names))
	for i := range v {
		v[i] = rest
	}
	v[0] = first
	return v
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for name, a := range map[string]*Artifact{"hand-made": validArtifact(), "trained": trainScenarioOne(t)} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.json")
			if err := a.Save(path); err != nil {
				t.Fatalf("Save: %v", err)
			}
			got, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !got.TrainedAt.Equal(a.TrainedAt) {
				t.Errorf("trained_at = %v, want %v", got.TrainedAt, a.TrainedAt)
			}
			want := *a
			want.TrainedAt, got.TrainedAt = time.Time{}, time.Time{}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("round trip changed the artifact:\n got %+v\nwant %+v", *got, want)
			}

			// Saving over an existing artifact replaces it and leaves no temp files.
			if err := a.Save(path); err != nil {
				t.Fatalf("second Save: %v", err)
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries after Save, want only the artifact", len(entries))
			}
		})
	}
}

func TestSaveRefusesInvalidArtifact(t *testing.T) {
	a := validArtifact()
	a.Weights[1] = math.NaN()
	path := filepath.Join(t.TempDir(), "model.json")
	err := a.Save(path)
	if !errors.Is(err, ErrInvalidArtifact) || !strings.Contains(err.Error(), `"weights[1]"`) {
		t.Errorf("Save error = %v, want ErrInvalidArtifact naming weights[1]", err)
	}
	if _, statErr := os.Stat(path); !os.IsNotExist(statErr) {
		t.Errorf("invalid artifact was written (stat: %v)", statErr)
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	n := len(features.Names)
	// Each case edits the JSON of a valid artifact; want is text the error
	// must contain so an operator can find the bad field.
	tests := []struct {
		name string
		edit func(m map[string]any)
		raw  string // used instead of the edited JSON when set
		want string
	}{
		{name: "empty version", edit: func(m map[string]any) { m["version"] = "" }, want: `"version" is empty`},
		{name: "missing version", edit: func(m map[string]any) { delete(m, "version") }, want: `"version" is empty`},
		{name: "unknown kind", edit: func(m map[string]any) { m["kind"] = "gbm" }, want: `"kind" is "gbm"`},
		{name: "ffnn without hidden layer", edit: func(m map[string]any) { m["kind"] = "ffnn" }, want: `"hidden" is missing`},
		{name: "lr with hidden layer", edit: func(m map[string]any) {
			m["hidden"] = map[string]any{"w": [][]float64{filled(1, 1)}, "b": []float64{0}}
		}, want: `"hidden" is set`},
		{name: "no schema", edit: func(m map[string]any) { m["feature_schema"] = "" }, want: `"feature_schema" is empty`},
		{name: "no names", edit: func(m map[string]any) { m["names"] = []string{} }, want: `"names" is empty`},
		{name: "duplicate name", edit: func(m map[string]any) {
			names := append([]string(nil), features.Names...)
			names[1] = names[0]
			m["names"] = names
		}, want: fmt.Sprintf(`"names[1]" repeats %q`, features.Names[0])},
		{name: "hash mismatch", edit: func(m map[string]any) { m["feature_hash"] = "0000000000000000" }, want: `"feature_hash"`},
		{name: "names reordered under same hash", edit: func(m map[string]any) {
			names := append([]string(nil), features.Names...)
			names[0], names[1] = names[1], names[0]
			m["names"] = names
		}, want: `"feature_hash"`},
		{name: "short mean", edit: func(m map[string]any) { m["mean"] = []float64{1, 2} }, want: fmt.Sprintf(`"mean" has 2 values, names has %d`, n)},
		{name: "long std", edit: func(m map[string]any) { m["std"] = append(filled(1, 1), 1) }, want: fmt.Sprintf(`"std" has %d values`, n+1)},
		{name: "missing weights", edit: func(m map[string]any) { delete(m, "weights") }, want: `"weights" has 0 values`},
		{name: "zero std", edit: func(m map[string]any) { v := filled(1, 1); v[1] = 0; m["std"] = v }, want: `"std[1]" must be > 0`},
		{name: "negative std", edit: func(m map[string]any) { v := filled(1, 1); v[2] = -2; m["std"] = v }, want: `"std[2]" must be > 0`},
		{name: "missing trained_at", edit: func(m map[string]any) { delete(m, "trained_at") }, want: `"trained_at" is missing`},
		{name: "unknown field", edit: func(m map[string]any) { m["threshold"] = []float64{0.5} }, want: `unknown field "threshold"`},
		{name: "bias as string", edit: func(m map[string]any) { m["bias"] = "-8.1" }, want: `bias`},
		{name: "overflowing weight", raw: `{"version":"v","kind":"lr","weights":[1e999]}`, want: `weights`},
		{name: "not JSON", raw: `model v1`, want: `invalid model artifact`},
		{name: "empty file", raw: ``, want: `invalid model artifact`},
		{name: "two objects", raw: "{}\n{}", want: `trailing data`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.raw)
			if tt.edit != nil {
				good, err := json.Marshal(validArtifact())
				if err != nil {
					t.Fatal(err)
				}
				var m map[string]any
				if err := json.Unmarshal(good, &m); err != nil {
					t.Fatal(err)
				}
				tt.edit(m)
				if data, err = json.Marshal(m); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(t.TempDir(), "model.json")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load succeeded, want error")
			}
			if !errors.Is(err, ErrInvalidArtifact) {
				t.Errorf("error %q is not ErrInvalidArtifact", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// TestDecodeRejectsBracketsAfterTheObject: a valid artifact followed by stray closing brackets
// (a botched hand edit) is refused like any other trailing data.
func TestDecodeRejectsBracketsAfterTheObject(t *testing.T) {
	good, err := json.Marshal(validArtifact())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decode(good); err != nil {
		t.Fatalf("the valid artifact: %v", err)
	}
	for _, tail := range []string{"\n", "]]}", " ]", "\n}", "null"} {
		_, err := decode(append(slices.Clone(good), tail...))
		if tail == "\n" {
			if err != nil {
				t.Errorf("white space after the object: %v", err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidArtifact) || !strings.Contains(err.Error(), "trailing data") {
			t.Errorf("tail %q: %v, want trailing data", tail, err)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.json"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error = %v, want os.ErrNotExist", err)
	}
}

// FuzzDecodeArtifact: whatever a model file holds, decoding either refuses it with
// ErrInvalidArtifact or gives a model that scores any finite vector with a probability, and
// explains it, without a panic or an endless walk (gbt's children must follow their parent).
func FuzzDecodeArtifact(f *testing.F) {
	lr := validArtifact()
	ffnn := validArtifact()
	ffnn.Kind, ffnn.Weights = KindFFNN, []float64{0.5, -1}
	ffnn.Hidden = &Layer{W: [][]float64{filled(0.1, 0.01), filled(-0.2, 0.02)}, B: []float64{0, 1}}
	gbt := validArtifact()
	gbt.Kind, gbt.Weights = KindGBT, nil
	gbt.Trees = []Tree{{Feature: []int{0, 3, -1, -1, -1}, Threshold: []float64{220, 1.5, 0, 0, 0},
		Left: []int{1, 3, 0, 0, 0}, Right: []int{2, 4, 0, 0, 0}, Value: []float64{0, -0.1, 3, -2, 0.4}}}
	for _, a := range []*Artifact{lr, ffnn, gbt} {
		data, err := json.Marshal(a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"kind":"gbt","trees":[{"feature":[0],"threshold":[0],"left":[0],"right":[0],"value":[0]}]}`))
	n := len(features.Names)
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := decode(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidArtifact) {
				t.Fatalf("error %v is not ErrInvalidArtifact", err)
			}
			return
		}
		m, err := New(a)
		if err != nil {
			t.Fatalf("a valid artifact gave no model: %v", err)
		}
		vs := [][]float64{make([]float64, n), filled(1e9, -1e3), filled(-5, 0.5)}
		scores, err := m.Score(vs)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range scores {
			if !(s >= 0 && s <= 1) {
				t.Fatalf("vector %d scored %v", i, s)
			}
			if _, ok := a.Contributions(vs[i]); ok != (a.Kind != KindFFNN) {
				t.Fatalf("kind %s: contributions ok = %v", a.Kind, ok)
			}
		}
	})
}

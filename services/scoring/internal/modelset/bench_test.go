package modelset

import (
	"fmt"
	"testing"

	"github.com/vigil-fraud/vigil/models/features"
	"github.com/vigil-fraud/vigil/models/model"
)

func benchVectors(n int) [][]float64 {
	vs := make([][]float64, n)
	for i := range vs {
		v := make([]float64, len(features.Names))
		for j := range v {
			v[j] = float64((i*7+j*13)%100) / 10
		}
		vs[i] = v
	}
	return vs
}

// BenchmarkScore reports µs per transaction for the serving scorer (pure Go), the gorgonia
// reference on the same artifact, and the contributions scoring adds for reason codes.
func BenchmarkScore(b *testing.B) {
	a := artifact("bench", features.SchemaVersion)
	pure, err := model.New(a)
	if err != nil {
		b.Fatal(err)
	}
	gorg, err := model.NewGorgonia(a)
	if err != nil {
		b.Fatal(err)
	}
	l := &Loaded{Scorer: pure, Artifact: a}
	for _, batch := range []int{1, 500} {
		vs := benchVectors(batch)
		for name, s := range map[string]Scorer{"pure-go": pure, "gorgonia": gorg} {
			b.Run(fmt.Sprintf("%s/batch=%d", name, batch), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Score(vs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*batch), "µs/tx")
			})
		}
		b.Run(fmt.Sprintf("contributions/batch=%d", batch), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, v := range vs {
					_ = l.Contributions(v)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*batch), "µs/tx")
		})
	}
}

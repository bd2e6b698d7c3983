package main

import (
	"fmt"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/vigil-fraud/vigil/models/model"
)

// writePlots draws the ROC and precision-recall curves of one test window as dir/roc.png
// and dir/pr.png.
func writePlots(dir string, scores, y []float64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	roc, pr := model.Curves(scores, y)
	if roc == nil {
		return fmt.Errorf("the test window has a single class: no curves")
	}
	auc, ap := model.AUC(scores, y), model.AveragePrecision(scores, y)
	for _, c := range []struct {
		file, title, x, y string
		pts               []model.CurvePoint
		diagonal          bool
	}{
		{"roc.png", fmt.Sprintf("ROC (AUC %.3f)", auc), "false positive rate", "true positive rate", roc, true},
		{"pr.png", fmt.Sprintf("Precision-recall (AP %.3f)", ap), "recall", "precision", pr, false},
	} {
		p := plot.New()
		p.Title.Text, p.X.Label.Text, p.Y.Label.Text = c.title, c.x, c.y
		p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
		xys := make(plotter.XYs, len(c.pts))
		for i, pt := range c.pts {
			xys[i].X, xys[i].Y = pt.X, pt.Y
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		p.Add(line, plotter.NewGrid())
		if c.diagonal {
			diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
			if err != nil {
				return err
			}
			diag.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
			p.Add(diag)
		}
		if err := p.Save(5*vg.Inch, 5*vg.Inch, filepath.Join(dir, c.file)); err != nil {
			return err
		}
	}
	return nil
}

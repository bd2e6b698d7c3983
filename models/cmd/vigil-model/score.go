package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/vigil-fraud/vigil/models/dataset"
	"github.com/vigil-fraud/vigil/models/features"
	"github.com/vigil-fraud/vigil/models/model"
)

func cmdScore(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("score", "score the transactions of a date range with an artifact, writing TRANSACTION_ID,SCORE", stderr)
	data := fs.String("data", "", "transactions CSV in the Handbook format; required")
	artifact := fs.String("artifact", "", "trained artifact; required")
	from := fs.String("from", "", "first day YYYY-MM-DD; required")
	to := fs.String("to", "", "last day YYYY-MM-DD (inclusive); required")
	out := fs.String("out", "", "output CSV (- for stdout); required")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *data == "":
		return flagErr("data", "is required")
	case *artifact == "":
		return flagErr("artifact", "is required")
	case *out == "":
		return flagErr("out", "is required")
	}
	f0, err := parseDate("from", *from)
	if err != nil {
		return err
	}
	t0, err := parseDate("to", *to)
	if err != nil {
		return err
	}
	if t0.Before(f0) {
		return flagErr("to", "%s is before --from %s", *to, *from)
	}
	a, err := model.Load(*artifact)
	if err != nil {
		return flagErr("artifact", "%v", err)
	}
	if a.FeatureHash != features.SchemaHash() {
		return flagErr("artifact", "was trained on feature schema %s (%s), this binary computes %s (%s): retrain it",
			a.FeatureSchema, a.FeatureHash, features.SchemaVersion, features.SchemaHash())
	}
	m, err := model.New(a)
	if err != nil {
		return flagErr("artifact", "%v", err)
	}
	rows, err := loadData(*data, stderr)
	if err != nil {
		return err
	}
	days := int(t0.Sub(f0).Hours()/24) + 1
	X, err := cachedFeatures(*data, rows, dataset.Before(rows, f0.AddDate(0, 0, days)), hyperFrom(a).delayDays, stderr)
	if err != nil {
		return err
	}
	idx := dataset.Window(rows, f0, days)
	scores, err := m.Score(dataset.Select(X, idx))
	if err != nil {
		return err
	}
	w := stdout
	if *out != "-" {
		file, err := os.Create(*out)
		if err != nil {
			return flagErr("out", "%v", err)
		}
		defer file.Close()
		w = file
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "TRANSACTION_ID,SCORE")
	for j, i := range idx {
		bw.WriteString(rows[i].TxID)
		bw.WriteByte(',')
		bw.WriteString(strconv.FormatFloat(scores[j], 'f', 6, 64))
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return flagErr("out", "%v", err)
	}
	if c, ok := w.(io.Closer); ok && *out != "-" {
		if err := c.Close(); err != nil {
			return flagErr("out", "%v", err)
		}
	}
	fmt.Fprintf(stderr, "scored %d transactions\n", len(idx))
	return nil
}

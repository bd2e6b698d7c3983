package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vigil-fraud/vigil/models/simulator"
)

type simFlags struct {
	customers, terminals, days int
	start                      string
	seed                       uint64
}

func (s *simFlags) register(fs *flag.FlagSet) {
	d := simulator.Default()
	fs.IntVar(&s.customers, "customers", d.Customers, "number of customers")
	fs.IntVar(&s.terminals, "terminals", d.Terminals, "number of terminals")
	fs.IntVar(&s.days, "days", d.Days, "number of days")
	fs.StringVar(&s.start, "start", d.Start.Format(time.DateOnly), "first day, YYYY-MM-DD")
	fs.Uint64Var(&s.seed, "seed", 0, "random seed; the same seed gives the same data")
}

func (s *simFlags) config() (simulator.Config, error) {
	c := simulator.Default()
	start, err := time.Parse(time.DateOnly, s.start)
	if err != nil {
		return c, flagErr("start", "%q is not a date like 2018-04-01", s.start)
	}
	c.Customers, c.Terminals, c.Days, c.Start, c.Seed = s.customers, s.terminals, s.days, start, s.seed
	switch {
	case c.Customers < 3:
		return c, flagErr("customers", "must be >= 3, got %d", c.Customers)
	case c.Terminals < 2:
		return c, flagErr("terminals", "must be >= 2, got %d", c.Terminals)
	case c.Days < 1:
		return c, flagErr("days", "must be >= 1, got %d", c.Days)
	}
	return c, nil
}

func (s *simFlags) generate(stderr io.Writer) (*simulator.Dataset, error) {
	cfg, err := s.config()
	if err != nil {
		return nil, err
	}
	p := &progress{w: stderr, label: "simulate customers", last: -1}
	d, err := simulator.Generate(cfg, p.update)
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(stderr, "summary:", d.Summary())
	return d, nil
}

func cmdSimulate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("simulate", "generate the Handbook's simulated transactions as CSV", stderr)
	var sf simFlags
	sf.register(fs)
	out := fs.String("out", "", "output CSV path (- for stdout); required")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return flagErr("out", "is required")
	}
	d, err := sf.generate(stderr)
	if err != nil {
		return err
	}
	w := stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return flagErr("out", "%v", err)
		}
		defer f.Close()
		w = f
		if err := d.WriteCSV(w); err != nil {
			return err
		}
		return f.Close()
	}
	return d.WriteCSV(w)
}

func cmdStream(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlags("stream", "post simulated transactions to the ingest API (API key from VIGIL_SIM_API_KEY)", stderr)
	var sf simFlags
	sf.register(fs)
	url := fs.String("url", "http://127.0.0.1:8080/v1/transactions", "ingest endpoint; loopback hosts only")
	count := fs.Int("count", 1000, "transactions to send (the first ones of the simulation), 1..1000000")
	rate := fs.Float64("rate", 50, "requests per second, (0, 5000]")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := simulator.CheckLoopback(*url); err != nil {
		return flagErr("url", "%v", err)
	}
	if *count < 1 || *count > 1_000_000 {
		return flagErr("count", "must be in 1..1000000, got %d", *count)
	}
	if !(*rate > 0 && *rate <= 5000) {
		return flagErr("rate", "must be in (0, 5000], got %v", *rate)
	}
	d, err := sf.generate(stderr)
	if err != nil {
		return err
	}
	n := min(*count, len(d.Transactions))
	p := &progress{w: stderr, label: "stream", last: -1}
	sent, err := simulator.Stream(ctx, d.Transactions, simulator.StreamConfig{
		URL: *url, APIKey: os.Getenv("VIGIL_SIM_API_KEY"), Rate: *rate, Count: n,
		OnSent: func(i int) { p.update(i, n) },
	})
	fmt.Fprintf(stderr, "sent %d of %d transactions\n", sent, n)
	return err
}

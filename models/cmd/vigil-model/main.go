// Command vigil-model simulates Handbook-style transaction data, trains and evaluates fraud
// models on it with the Handbook's protocol, and scores histories with a trained artifact.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `vigil-model: simulate, train, evaluate and score fraud models.

Usage:
  vigil-model simulate --out data.csv [--customers 5000 --terminals 10000 --days 183 --start 2018-04-01 --seed 0]
  vigil-model stream   --url http://127.0.0.1:8080/v1/transactions --count 1000 --rate 50 [simulation flags]
  vigil-model train    --data data.csv --train-start 2018-07-25 [--train-days 7 --delay-days 7 --kind lr|ffnn] --out model.json
  vigil-model evaluate --data data.csv --artifact model.json --test-start 2018-08-08 [--test-days 7 --folds 1 --plots DIR]
  vigil-model score    --data data.csv --artifact model.json --from 2018-08-08 --to 2018-08-14 --out scores.csv

Run "vigil-model <command> --help" for the flags of one command.
`

// errUsage is returned after a flag error has already been printed with the usage text.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "vigil-model:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"simulate": cmdSimulate,
		"stream":   cmdStream,
		"train":    cmdTrain,
		"evaluate": cmdEvaluate,
		"score":    cmdScore,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "vigil-model: unknown command %q\n\n%s", args[0], usage)
		return errUsage
	}
	return cmd(ctx, args[1:], stdout, stderr)
}

// newFlags returns a FlagSet that reports errors (including the bad flag's name) instead of
// exiting, so run stays testable.
func newFlags(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "vigil-model %s: %s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "vigil-model %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

// flagErr names the flag a bad value came from.
func flagErr(name string, format string, a ...any) error {
	return fmt.Errorf("flag --%s: %s", name, fmt.Sprintf(format, a...))
}

// progress prints a single self-overwriting line on stderr.
type progress struct {
	w     io.Writer
	label string
	last  int
}

func (p *progress) update(done, total int) {
	pct := 100 * done / max(total, 1)
	if pct == p.last && done != total {
		return
	}
	p.last = pct
	const width = 30
	bar := make([]byte, width)
	for i := range bar {
		if i < width*pct/100 {
			bar[i] = '#'
		} else {
			bar[i] = '.'
		}
	}
	fmt.Fprintf(p.w, "\r%s [%s] %3d%% (%d/%d)", p.label, bar, pct, done, total)
	if done >= total {
		fmt.Fprintln(p.w)
	}
}

// Command scoring consumes features.v1, scores and decides, produces decisions.v1 exactly once,
// and (the decision sink) persists decisions.v1 to Postgres exactly once.
//
//	scoring                           run the service
//	scoring rules seed [-file F] [-force]   store the rules file in Postgres
//	scoring rules check [-file F]     compile a rules file and report every bad rule
//	scoring explain <transaction_id>  recompute a stored decision and compare it bit for bit
//	scoring lists put -list block|allow -kind K -value V [-reason R] [-ttl 24h]
package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

//go:embed rules.yaml
var defaultRules []byte

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "scoring:", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return run(ctx)
	}
	switch {
	case args[0] == "rules" && len(args) > 1 && args[1] == "seed":
		return rulesSeed(ctx, args[2:], stdout)
	case args[0] == "rules" && len(args) > 1 && args[1] == "check":
		return rulesCheck(args[2:], stdout)
	case args[0] == "lists" && len(args) > 1 && args[1] == "put":
		return listsPut(ctx, args[2:], stdout)
	case args[0] == "explain":
		return explain(ctx, args[1:], stdout)
	}
	return fmt.Errorf("unknown command %q: want no arguments (serve), `rules seed`, `rules check`, `lists put` or `explain <transaction_id>`", args)
}

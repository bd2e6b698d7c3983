package harness

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/libs/testinfra"
)

// The baselines run against the real broker, Redis and Postgres; this keeps them honest
// (they finish, count every record, clean up) without asserting anything about speed.
func TestBaselinesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the broker, Redis and Postgres")
	}
	brokers := testinfra.KafkaBrokers(t)
	redisAddr := testinfra.RedisAddr(t)
	_, dbURL := testinfra.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	name := testinfra.UniqueName("vl-base-")
	rate, h, err := ProduceConsume(ctx, brokers, name+".paced", 3, 1000, 229, 500)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("paced 500 rec/s: %.0f rec/s, latency %+v", rate, h.Summary())
	if h.Count() != 1000 {
		t.Fatalf("consumed %d of 1000", h.Count())
	}
	rate, _, err = ProduceConsume(ctx, brokers, name+".max", 3, 5000, 229, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("produce→consume max: %.0f rec/s", rate)
	relay, err := EOSRelay(ctx, brokers, name, 3, 5000, 229)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("EOS relay: %.0f rec/s", relay)
	ops, err := RedisPipelined(ctx, redisAddr, name+":", 229, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("redis: %.0f commands/s", ops)
	rows, err := PostgresCopy(ctx, dbURL, 5000)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("postgres COPY: %.0f rows/s", rows)
	if rate <= 0 || relay <= 0 || ops <= 0 || rows <= 0 {
		t.Fatal("a baseline measured nothing")
	}
}

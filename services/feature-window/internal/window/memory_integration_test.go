package window

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-fraud/vigil/libs/testinfra"
	"github.com/vigil-fraud/vigil/models/features"
)

// TestMemoryPerEntity measures (MEMORY USAGE) what one account, card, device and terminal cost
// after 30 days of steady traffic; the numbers go in the README. It asserts only a loose bound
// that catches a key that is never pruned.
func TestMemoryPerEntity(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: testinfra.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	prefix := testinfra.UniqueName("mem:") + ":"
	s := New(rdb, prefix)
	t.Cleanup(func() {
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	cfg := features.DefaultConfig()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const perDay, days = 10, 30
	var plans []features.Plan
	for i := range perDay * days {
		at := t0.Add(time.Duration(i) * 24 * time.Hour / perDay)
		ev := features.Event{AccountID: "acct", CardToken: "card", DeviceID: "dev", TerminalID: fmt.Sprint("T", i%5),
			MerchantID: fmt.Sprint("M", i%5), Country: "FR", AmountMinor: 1234, EventTime: at}
		plans = append(plans, WithMark(features.TxPlan(cfg, ev), "p/0", int64(i), time.Hour))
		if len(plans) == 100 {
			if _, err := s.Apply(ctx, plans); err != nil {
				t.Fatal(err)
			}
			plans = plans[:0]
		}
	}
	usage := func(pattern string) (int64, int) {
		var total int64
		n := 0
		iter := rdb.Scan(ctx, 0, prefix+pattern, 1000).Iterator()
		for iter.Next(ctx) {
			b, err := rdb.MemoryUsage(ctx, iter.Val()).Result()
			if err != nil {
				t.Fatal(err)
			}
			total += b
			n++
		}
		return total, n
	}
	acct, nk := usage("fw:a:acct:*")
	card, _ := usage("fw:c:card:*")
	dev, _ := usage("fw:d:dev:*")
	term, _ := usage("fw:t:T0:*")
	t.Logf("after %d days at %d tx/day: account %d B in %d keys, card %d B, device %d B, terminal (%d tx/day) %d B",
		days, perDay, acct, nk, card, dev, perDay/5, term)
	if acct > 16<<10 {
		t.Errorf("account uses %d bytes: a window is not pruned", acct)
	}
}

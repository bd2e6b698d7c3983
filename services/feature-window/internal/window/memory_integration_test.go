package window

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/models/features"
)

// TestMemoryPerEntity measures (MEMORY USAGE) what one account, device and terminal cost after
// 30 days of steady traffic; the numbers go in the README. It asserts only a loose bound that
// catches a window that is never pruned.
func TestMemoryPerEntity(t *testing.T) {
	t.Parallel()
	s, rdb, _ := newStore(t)
	ctx := context.Background()
	cfg := features.DefaultConfig()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const perDay, days = 10, 30
	a := &features.Account{}
	sh := features.NewMemShared()
	ckpt := int64(NoCheckpoint)
	d := Delta{Partition: "p/0", Terminals: map[string]map[int64]TerminalDelta{}, Devices: map[string]map[string]DeviceSeen{}}
	for i := range perDay * days {
		at := t0.Add(time.Duration(i) * 24 * time.Hour / perDay)
		ev := features.Event{AccountID: "acct", CardToken: "card", DeviceID: "dev", TerminalID: fmt.Sprint("T", i%5),
			MerchantID: fmt.Sprint("M", i%5), Country: "FR", AmountMinor: 1234, EventTime: at}
		features.Apply(cfg, a, sh, ev)
		tile := features.TileIndex(at, features.TerminalTile)
		if d.Terminals[ev.TerminalID] == nil {
			d.Terminals[ev.TerminalID] = map[int64]TerminalDelta{}
		}
		td := d.Terminals[ev.TerminalID][tile]
		td.Tx++
		td.PruneBelow = features.TerminalNewestTile(cfg, at) - 60*8
		d.Terminals[ev.TerminalID][tile] = td
		d.Devices["dev"] = map[string]DeviceSeen{"acct": {Ms: at.UnixMilli()}}
		if i%50 == 49 {
			d.From, d.To = ckpt, int64(i+1)
			d.Accounts = encode(t, map[string]*features.Account{"acct": a})
			if errs, err := s.Flush(ctx, []Delta{d}); err != nil || errs[0] != nil {
				t.Fatal(err, errs)
			}
			ckpt = d.To
			d.Terminals = map[string]map[int64]TerminalDelta{}
		}
	}
	usage := func(key string) int64 {
		b, err := rdb.MemoryUsage(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	acct, dev, term := usage(s.accountKey("acct")), usage(s.deviceKey("dev")), usage(s.terminalKey("T0"))
	b, _ := a.MarshalBinary()
	t.Logf("after %d days at %d tx/day: account (with its card) %d B in one key (%d B encoded), device %d B, terminal (%d tx/day) %d B",
		days, perDay, acct, len(b), dev, perDay/5, term)
	if acct > 4<<10 {
		t.Errorf("account uses %d bytes: a window is not pruned", acct)
	}
}

package features

import "time"

// vector returns the feature values in Names order for ev from the reads of the state before
// it; the reads exclude ev's own contribution, which vector adds, so a late event (not applied)
// gets the same kind of values as an applied one.
func vector(r reads, ev Event) []float64 {
	out := make([]float64, 0, len(Names))
	out = append(out, float64(ev.AmountMinor)/100)
	windowsOut := func(i int) {
		c := float64(r.acct[i].C + 1)
		s := float64(r.acct[i].S+ev.AmountMinor) / 100
		out = append(out, c, s, s/c)
	}
	windowsOut(1) // 1h first: account_count_1h keeps its historical position
	windowsOut(0)
	windowsOut(2)
	windowsOut(3)
	windowsOut(4)
	distinct := func(n int64, member string) float64 {
		if member == "" {
			return float64(n)
		}
		return float64(n + 1)
	}
	out = append(out, distinct(r.merchants, ev.MerchantID), distinct(r.terminals, ev.TerminalID), distinct(r.countries, ev.Country))

	gap := noPrev
	if r.hasLast {
		gap = time.Duration(ev.EventTime.UnixMilli()-r.last) * time.Millisecond
		gap = min(max(gap, 0), noPrev)
	}
	out = append(out, gap.Seconds())

	out = append(out, amountRatio(r.acct[ratioWindow], ev.AmountMinor))
	out = append(out, float64(r.anomalies.X)/1000, float64(r.anomalies.A))

	if ev.CardToken != "" {
		out = append(out, float64(r.card[0]+1), float64(r.card[1]+1))
	} else {
		out = append(out, 0, 0)
	}
	if ev.DeviceID != "" {
		out = append(out, distinct(r.device, ev.AccountID))
	} else {
		out = append(out, 0)
	}
	var counts, ratios [3]float64
	if ev.TerminalID != "" {
		for i := range terminalWindows {
			c, f := r.termCount[i], r.termFraud[i]
			counts[i] = float64(c)
			if c > 0 {
				ratios[i] = float64(f) / float64(c)
			}
		}
	}
	out = append(out, counts[:]...)
	out = append(out, ratios[:]...)

	t := ev.EventTime.UTC() // UTC so hosts in different zones agree on the hour and the weekday
	out = append(out, boolToFloat(t.Weekday() == time.Saturday || t.Weekday() == time.Sunday), boolToFloat(t.Hour() <= 6))
	for _, c := range Channels {
		out = append(out, boolToFloat(ev.Channel == c))
	}
	out = append(out, boolToFloat(r.country != "" && ev.Country != "" && r.country != ev.Country))
	return out
}

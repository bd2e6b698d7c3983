package features

import (
	"math"
	"strconv"
	"time"
)

// Vector returns the feature values in Names order for the transaction ev whose plan p (from
// TxPlan(cfg, ev)) read reads. The reads exclude ev's own contribution; Vector adds it, so a
// late event (not applied) gets the same kind of values as an applied one.
func Vector(p Plan, ev Event, reads []string) []float64 {
	r := p.tx
	num := func(i int) int64 {
		if i >= len(reads) {
			return 0
		}
		n, _ := strconv.ParseInt(reads[i], 10, 64)
		return n
	}
	out := make([]float64, 0, len(Names))
	amount := float64(ev.AmountMinor) / 100
	windowsOut := func(i int) {
		c := float64(num(r.acctCount[i]) + 1)
		s := float64(num(r.acctSum[i])+ev.AmountMinor) / 100
		out = append(out, c, s, s/c)
	}
	out = append(out, amount)
	windowsOut(1) // 1h first: account_count_1h keeps its historical position
	windowsOut(0)
	windowsOut(2)
	windowsOut(3)
	windowsOut(4)
	distinct := func(i int, member string) float64 {
		if member == "" {
			return float64(num(i))
		}
		return float64(num(i) + 1)
	}
	out = append(out, distinct(r.merchants, ev.MerchantID), distinct(r.terminals, ev.TerminalID), distinct(r.countries, ev.Country))

	gap := noPrev
	if reads[r.last] != "" {
		gap = time.Duration(ev.EventTime.UnixMilli()-num(r.last)) * time.Millisecond
		gap = min(max(gap, 0), noPrev)
	}
	out = append(out, gap.Seconds())

	z := 0.0
	if c := float64(num(r.zc)); c >= 2 {
		mean := float64(num(r.zm)) / c
		if v := float64(num(r.zq))/c - mean*mean; v > 0 {
			z = (float64(roundMajor(ev.AmountMinor)) - mean) / math.Sqrt(v)
		}
	}
	out = append(out, z)

	if ev.CardToken != "" {
		out = append(out, float64(num(r.card[0])+1), float64(num(r.card[1])+1))
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
			c, f := num(r.termCount[i]), num(r.termFraud[i])
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
	first := reads[r.country]
	out = append(out, boolToFloat(first != "" && ev.Country != "" && first != ev.Country))
	return out
}

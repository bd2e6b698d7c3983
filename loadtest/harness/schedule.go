package harness

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Step is one constant-rate stretch of an arrival plan.
type Step struct {
	Rate     float64       `json:"rate"` // arrivals per second
	Duration time.Duration `json:"duration"`
}

// Plan is a sequence of steps; a single step is a constant rate.
type Plan []Step

// ParsePlan reads "RATE" with a default duration, or "RATE@DUR,RATE@DUR,..." for a stepped
// plan (e.g. "500@10s,1000@10s"). The error names the flag.
func ParsePlan(flag, s string, def time.Duration) (Plan, error) {
	var p Plan
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		rateS, durS, stepped := strings.Cut(part, "@")
		rate, err := strconv.ParseFloat(rateS, 64)
		if err != nil || rate <= 0 || rate > 1e6 {
			return nil, fmt.Errorf("%s: rate %q must be a number in (0, 1000000]", flag, rateS)
		}
		d := def
		if stepped {
			if d, err = time.ParseDuration(durS); err != nil || d <= 0 {
				return nil, fmt.Errorf("%s: duration %q of step %q must be a positive Go duration", flag, durS, part)
			}
		}
		p = append(p, Step{Rate: rate, Duration: d})
	}
	if len(p) == 0 {
		return nil, fmt.Errorf("%s: is empty", flag)
	}
	return p, nil
}

// Duration is the plan's total length.
func (p Plan) Duration() time.Duration {
	var d time.Duration
	for _, s := range p {
		d += s.Duration
	}
	return d
}

// Arrival is one scheduled send.
type Arrival struct {
	At   time.Duration // since the start of the plan
	Step int
}

// Arrivals lists the intended send times of the plan, at most limit of them (limit <= 0:
// no limit). Times are computed from the clock, never from responses, which is what keeps
// the load open-loop: a slow system receives the same arrivals as a fast one.
func (p Plan) Arrivals(limit int) []Arrival {
	var out []Arrival
	var base time.Duration
	for si, s := range p {
		interval := float64(time.Second) / s.Rate
		for k := 0; ; k++ {
			at := time.Duration(float64(k) * interval)
			if at >= s.Duration || (limit > 0 && len(out) >= limit) {
				break
			}
			out = append(out, Arrival{At: base + at, Step: si})
		}
		base += s.Duration
	}
	return out
}

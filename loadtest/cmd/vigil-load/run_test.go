package main

import (
	"strings"
	"testing"
)

func TestParseNamesTheBadFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--keys", "0"}, "--keys"},
		{[]string{"--partitions", "0"}, "--partitions"},
		{[]string{"--count", "-1"}, "--count"},
		{[]string{"--find-max", "--find-factor", "1"}, "--find-factor"},
		{[]string{"--service-env", "PATH=/x"}, "--service-env"},
		{[]string{"--warmup", "-1s"}, "--warmup"},
	} {
		_, err := parse(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to name %s", tc.args, err, tc.want)
		}
	}
	if _, err := parse([]string{"--service-env", "GOMAXPROCS=1", "--service-env", "VIGIL_X=1"}); err != nil {
		t.Errorf("Go runtime and VIGIL_ service settings refused: %v", err)
	}
	o, err := parse([]string{"--rate", "100@2s,200@3s"})
	if err != nil {
		t.Fatal(err)
	}
	plans, err := o.plans()
	if err != nil || len(plans) != 1 || len(plans[0]) != 2 || plans[0].Duration().Seconds() != 5 {
		t.Fatalf("stepped plan: %v %v", plans, err)
	}
	o, _ = parse([]string{"--find-max", "--find-start", "100", "--find-factor", "2", "--find-limit", "800"})
	if plans, _ := o.plans(); len(plans) != 4 || plans[3][0].Rate != 800 {
		t.Fatalf("find-max ladder: %v", plans)
	}
	if _, err := parse([]string{"--rate", "fast"}); err != nil {
		t.Fatal("the rate is parsed by plans(), not parse()")
	}
	o, _ = parse([]string{"--rate", "fast"})
	if _, err := o.plans(); err == nil || !strings.Contains(err.Error(), "--rate") {
		t.Fatalf("bad rate: %v", err)
	}
}

package main

import (
	"strings"
	"testing"
)

func TestParseRejectsBadFlags(t *testing.T) {
	t.Setenv("VIGIL_SEND_API_KEY", "k")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--rate", "0"}, "--rate"},
		{[]string{"--count", "-1"}, "--count"},
		{[]string{"--url", "http://10.0.0.8:8080"}, "not a loopback"},
	}
	for _, tc := range tests {
		if _, err := parse(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parse(%v) = %v, want error naming %s", tc.args, err, tc.want)
		}
	}
	if _, err := parse(nil); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

func TestLuhn(t *testing.T) {
	t.Parallel()
	if got := luhn("7992739871"); got != "79927398713" {
		t.Fatalf("luhn = %s", got)
	}
}

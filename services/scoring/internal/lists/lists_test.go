package lists

import (
	"slices"
	"testing"
	"time"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := NewSnapshot([]Entry{
		{List: Allow, Kind: KindAccount, Value: "a1", Reason: "vip"},
		{List: Block, Kind: KindCard, Value: "tok-stolen", Reason: "stolen"},
		{List: Block, Kind: KindIP, Value: "198.51.100.1", Reason: "botnet", ExpiresAt: now},              // expires exactly now
		{List: Block, Kind: KindCountry, Value: "KP", Reason: "sanctions", ExpiresAt: now.Add(time.Hour)}, // still valid
		{List: Allow, Kind: KindDevice, Value: "d1", ExpiresAt: now.Add(-time.Second)},                    // expired
	})
	tests := []struct {
		name string
		keys Keys
		want []Hit
	}{
		{"no match", Keys{KindAccount: "a2"}, nil},
		{"allow", Keys{KindAccount: "a1"}, []Hit{{Allow, KindAccount, "vip", ValueHash(KindAccount, "a1")}}},
		{"block listed before allow", Keys{KindAccount: "a1", KindCard: "tok-stolen"},
			[]Hit{{Block, KindCard, "stolen", ValueHash(KindCard, "tok-stolen")}, {Allow, KindAccount, "vip", ValueHash(KindAccount, "a1")}}},
		{"expired at its instant", Keys{KindIP: "198.51.100.1"}, nil},
		{"unexpired", Keys{KindCountry: "KP"}, []Hit{{Block, KindCountry, "sanctions", ValueHash(KindCountry, "KP")}}},
		{"expired allow", Keys{KindDevice: "d1"}, nil},
		{"kinds do not cross", Keys{KindTerminal: "a1"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := s.Match(tc.keys, now); !slices.Equal(got, tc.want) {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
	if got := (Hit{Block, KindCard, "", ""}).Code(); got != "LIST_BLOCK_CARD" {
		t.Errorf("code %s", got)
	}
	// The hash is what `SELECT encode(sha256(convert_to('card:tok-stolen', 'UTF8')), 'hex')` gives,
	// so an analyst finds the entry without the decision carrying the token.
	if got := ValueHash(KindCard, "tok-stolen"); got != "29bd03cdd038a8505509766ef8b4e6c273de886d1abcac6ffd16744a5065fc39" {
		t.Errorf("value hash %s", got)
	}
	var nilSnap *Snapshot
	if nilSnap.Match(Keys{KindAccount: "a1"}, now) != nil {
		t.Error("nil snapshot matched")
	}
}

func TestEntryValidate(t *testing.T) {
	t.Parallel()
	for _, e := range []Entry{{List: "deny", Kind: KindIP, Value: "x"}, {List: Block, Kind: "email", Value: "x"}, {List: Block, Kind: KindIP}} {
		if e.Validate() == nil {
			t.Errorf("%+v accepted", e)
		}
	}
}

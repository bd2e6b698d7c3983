package features

import (
	"bytes"
	"reflect"
	"testing"
)

// TestAccountCodecRoundTrip: every account state of the golden history survives an encode and
// decode unchanged, and features computed from the decoded state are the same.
func TestAccountCodecRoundTrip(t *testing.T) {
	t.Parallel()
	events, labels := goldenHistory()
	o := NewOffline()
	for i, ev := range events {
		for _, l := range labels[i] {
			o.AddLabel(l)
		}
		a := o.accounts[ev.AccountID]
		if a != nil && i%7 == 0 {
			b, err := a.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var back Account
			if err := back.UnmarshalBinary(b); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
			if !reflect.DeepEqual(Compute(o.cfg, &back, o.shared, ev), Compute(o.cfg, a, o.shared, ev)) {
				t.Fatalf("event %d: features differ after a round trip", i)
			}
			b2, _ := back.MarshalBinary()
			if !bytes.Equal(b, b2) {
				t.Fatalf("event %d: re-encoding differs", i)
			}
		}
		o.Next(ev)
	}
	for id, a := range o.accounts {
		b, _ := a.MarshalBinary()
		if len(b) > 4096 {
			t.Errorf("%s encodes to %d bytes", id, len(b))
		}
	}
}

func TestAccountCodecRejectsCorruptInput(t *testing.T) {
	t.Parallel()
	a := &Account{HasLast: true, Last: 5, Country: "FR", Merchants: recent{"m": 1}, Cards: map[string]*[2]tiles{"c": {{{I: 3, C: 1}}}}}
	good, _ := a.MarshalBinary()
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"wrong version", append([]byte{9}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(append([]byte{}, good...), 0)},
		{"huge length", []byte{accountCodecVersion, 1, 2, 0xff, 0xff, 0xff, 0xff, 0x0f}},
	} {
		var back Account
		if err := back.UnmarshalBinary(tc.b); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func FuzzAccountCodec(f *testing.F) {
	a := &Account{HasLast: true, Last: 5, Country: "FR", Merchants: recent{"m": 1}}
	good, _ := a.MarshalBinary()
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		var x Account
		if x.UnmarshalBinary(b) != nil {
			return
		}
		if _, err := x.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	})
}

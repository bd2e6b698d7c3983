package features

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
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
	a := &Account{HasLast: true, Last: 5, Country: "FR", Merchants: members{{"m", 1}}, Cards: map[string]*[2]tiles{"c": {{{I: 3, C: 1}}}}}
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
	a := &Account{HasLast: true, Last: 5, Country: "FR", Merchants: members{{"m", 1}}}
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

// TestAccountCodecReadsVersion2: state checkpointed by fs-2, whose 30-day tiles also carried
// two fields for the z-score, loads with those fields dropped.
func TestAccountCodecReadsVersion2(t *testing.T) {
	t.Parallel()
	want := &Account{HasLast: true, Last: 7, Country: "FR"}
	want.Windows[ratioWindow] = tiles{{I: 10, C: 2, S: 300}, {I: 12, C: 1, S: 50}}
	want.Windows[0] = tiles{{I: 4, C: 1, S: 9}}
	// The same state as fs-2 wrote it: version 2, and M, Q after each 30-day tile's sum.
	v2 := []byte{accountCodecVersionMQ, 1}
	v2 = binary.AppendVarint(v2, 7)
	v2 = appendString(v2, "FR")
	for i, ts := range want.Windows {
		v2 = binary.AppendUvarint(v2, uint64(len(ts)))
		prev := int64(0)
		for _, x := range ts {
			v2 = binary.AppendVarint(v2, x.I-prev)
			prev = x.I
			v2 = binary.AppendVarint(v2, x.C)
			v2 = binary.AppendVarint(v2, x.S)
			if i == ratioWindow {
				v2 = binary.AppendVarint(v2, 3)
				v2 = binary.AppendVarint(v2, 5)
			}
		}
	}
	v2 = append(v2, 0, 0, 0, 0, 0) // merchants, terminals, countries and ids empty; no cards
	var got Account
	if err := got.UnmarshalBinary(v2); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("decoded %+v, want %+v", got, *want)
	}
}

// TestMembersEncodeAsRecent: members are written exactly as the map they replaced, so the
// account states already in Redis still decode and re-encode to the same bytes.
func TestMembersEncodeAsRecent(t *testing.T) {
	t.Parallel()
	var m members
	r := recent{}
	for _, x := range []member{{"m-9", 5}, {"m-10", 7}, {"", 1}, {"a", -3}, {"m-9", 6}} {
		m.see(x.key, x.ms, -10)
		r.see(x.key, x.ms, -10)
	}
	got, want := appendMembers(nil, m), appendRecent(nil, r)
	if !bytes.Equal(got, want) {
		t.Fatalf("members encode as %x, the map as %x", got, want)
	}
	if !bytes.Equal(appendMembers(nil, nil), appendRecent(nil, nil)) {
		t.Fatal("empty members and an empty map encode differently")
	}
}

// TestMembersMatchRecent: members behave as the map they replaced (recent) over random
// sequences of sightings, late ones and prunes at the boundary included, and encode as it
// does; a decoded encoding whose keys are out of order or repeated (which no version writes)
// reads as the map read it, so nothing after it diverges. members stay sorted, and the slots
// past their length hold no strings.
func TestMembersMatchRecent(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(11, 11))
	key := func() string {
		if rng.IntN(8) == 0 {
			return ""
		}
		return fmt.Sprint("k", rng.IntN(12))
	}
	for round := range 500 {
		var m members
		r := recent{}
		if round%2 == 1 { // start from an arbitrary encoding: keys in any order, repeated
			n := rng.IntN(8)
			b := binary.AppendUvarint(nil, uint64(n))
			for range n {
				b = appendString(b, key())
				b = binary.AppendVarint(b, rng.Int64N(100))
			}
			dm, dr := &decoder{b: b}, &decoder{b: b}
			m, r = dm.members(), dr.recent()
			if dm.err != nil || dr.err != nil {
				t.Fatalf("round %d: decoding %x: %v, %v", round, b, dm.err, dr.err)
			}
			if r == nil {
				r = recent{}
			}
		}
		now := int64(100)
		for step := range 60 {
			ms := now + rng.Int64N(20)
			if rng.IntN(4) == 0 { // late
				ms = now - rng.Int64N(40)
			}
			now = max(now, ms)
			k, below := key(), ms-25
			m.see(k, ms, below)
			r.see(k, ms, below)
			for i := 1; i < len(m); i++ {
				if m[i-1].key >= m[i].key {
					t.Fatalf("round %d step %d: members out of order: %v", round, step, m)
				}
			}
			for _, x := range m[len(m):cap(m)] {
				if x != (member{}) {
					t.Fatalf("round %d step %d: %v kept past the length of %v", round, step, x, m)
				}
			}
			for range 4 {
				ex, after := key(), now-rng.Int64N(50)
				if got, want := m.count(ex, after), r.count(ex, after); got != want {
					t.Fatalf("round %d step %d: count(%q, %d) = %d, the map gives %d (%v, %v)", round, step, ex, after, got, want, m, r)
				}
			}
			if got, want := appendMembers(nil, m), appendRecent(nil, r); !bytes.Equal(got, want) {
				t.Fatalf("round %d step %d: members encode as %x, the map as %x", round, step, got, want)
			}
		}
	}
}

package features

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// accountCodecVersion is the first byte of an encoded Account; bump it when the layout changes.
// Version 3 keeps A and X in the 30-day tiles. Version 2 (fs-2) kept the sum and sum of squares
// of rounded major units there instead; UnmarshalBinary still reads it (dropping them, A and X
// zero), so state checkpointed by fs-2 loads.
const (
	accountCodecVersion   = 3
	accountCodecVersionMQ = 2
)

// MarshalBinary encodes a compactly (varints, tiles as deltas of their index): the value the
// feature-window service checkpoints to Redis. Map entries are sorted, so equal states encode
// equally.
func (a *Account) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 256)
	b = append(b, accountCodecVersion)
	flags := byte(0)
	if a.HasLast {
		flags = 1
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, a.Last)
	b = appendString(b, a.Country)
	for i := range a.Windows {
		b = appendTiles(b, a.Windows[i], i == ratioWindow)
	}
	for _, r := range []members{a.Merchants, a.Terminals, a.Countries} {
		b = appendMembers(b, r)
	}
	b = appendRecent(b, a.TxIDs)
	cards := make([]string, 0, len(a.Cards))
	for k := range a.Cards {
		cards = append(cards, k)
	}
	slices.Sort(cards)
	b = binary.AppendUvarint(b, uint64(len(cards)))
	for _, k := range cards {
		b = appendString(b, k)
		for i := range a.Cards[k] {
			b = appendTiles(b, a.Cards[k][i], false)
		}
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTiles(b []byte, ts tiles, withAX bool) []byte {
	b = binary.AppendUvarint(b, uint64(len(ts)))
	prev := int64(0)
	for _, t := range ts {
		b = binary.AppendVarint(b, t.I-prev)
		prev = t.I
		b = binary.AppendVarint(b, t.C)
		b = binary.AppendVarint(b, t.S)
		if withAX {
			b = binary.AppendVarint(b, t.A)
			b = binary.AppendVarint(b, t.X)
		}
	}
	return b
}

// appendMembers writes r (in order of key, as members.see keeps it and members decodes it) as
// appendRecent writes the same members in a map.
func appendMembers(b []byte, r members) []byte {
	b = binary.AppendUvarint(b, uint64(len(r)))
	for _, m := range r {
		b = appendString(b, m.key)
		b = binary.AppendVarint(b, m.ms)
	}
	return b
}

func appendRecent(b []byte, r recent) []byte {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = binary.AppendVarint(b, r[k])
	}
	return b
}

// errCorrupt is returned for an encoding that does not parse.
var errCorrupt = errors.New("corrupt account state")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) len() int {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > uint64(len(d.b)) { // every element takes at least a byte
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return int(v)
}

func (d *decoder) string() string {
	n := d.len()
	if d.err != nil || n > len(d.b) {
		d.err = errCorrupt
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// tiles decodes a window: withAX reads A and X after the sum, withMQ skips the two fields
// version 2 kept there.
func (d *decoder) tiles(withAX, withMQ bool) tiles {
	n := d.len()
	if n == 0 {
		return nil
	}
	ts := make(tiles, n)
	prev := int64(0)
	for i := range ts {
		t := &ts[i]
		t.I = prev + d.varint()
		prev = t.I
		t.C, t.S = d.varint(), d.varint()
		switch {
		case withAX:
			t.A, t.X = d.varint(), d.varint()
		case withMQ:
			d.varint()
			d.varint()
		}
	}
	return ts
}

func (d *decoder) members() members {
	n := d.len()
	if n == 0 {
		return nil
	}
	r := make(members, n)
	sorted := true
	for i := range r {
		r[i].key = d.string()
		r[i].ms = d.varint()
		sorted = sorted && (i == 0 || r[i-1].key < r[i].key)
	}
	if !sorted {
		// Never written so (appendMembers writes keys in order, once each): read it as the map
		// members replaced did, the last of a key winning, so that see's binary search and count
		// behave as they did on it.
		slices.SortStableFunc(r, func(x, y member) int { return strings.Compare(x.key, y.key) })
		kept := r[:0]
		for i := range r {
			if i+1 == len(r) || r[i+1].key != r[i].key {
				kept = append(kept, r[i])
			}
		}
		clear(r[len(kept):])
		r = kept
	}
	return r
}

func (d *decoder) recent() recent {
	n := d.len()
	if n == 0 {
		return nil
	}
	r := make(recent, n)
	for range n {
		k := d.string()
		r[k] = d.varint()
	}
	return r
}

// UnmarshalBinary decodes what MarshalBinary encoded.
func (a *Account) UnmarshalBinary(b []byte) error {
	if len(b) < 2 || (b[0] != accountCodecVersion && b[0] != accountCodecVersionMQ) {
		return fmt.Errorf("%w: version %v", errCorrupt, b[:min(1, len(b))])
	}
	d := &decoder{b: b[2:]}
	*a = Account{HasLast: b[1]&1 == 1}
	a.Last = d.varint()
	a.Country = d.string()
	for i := range a.Windows {
		a.Windows[i] = d.tiles(b[0] == accountCodecVersion && i == ratioWindow, b[0] == accountCodecVersionMQ && i == ratioWindow)
	}
	a.Merchants, a.Terminals, a.Countries, a.TxIDs = d.members(), d.members(), d.members(), d.recent()
	if n := d.len(); n > 0 {
		a.Cards = make(map[string]*[2]tiles, n)
		for range n {
			k := d.string()
			cw := &[2]tiles{}
			cw[0], cw[1] = d.tiles(false, false), d.tiles(false, false)
			a.Cards[k] = cw
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
	}
	return d.err
}

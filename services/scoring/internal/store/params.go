package store

import "github.com/jackc/pgx/v5/pgtype"

// pgx reads an array parameter one element at a time through an interface: a []string
// boxes every string (an allocation each, 15 text columns per row), and a []*string goes
// through reflection. texts and nullableTexts hand it pointers instead, which box for free,
// to a type pgx encodes as text through TextValuer: the same bytes on the wire
// (TestParamsEncodeAsBefore).

type textCell string

func (t *textCell) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: string(*t), Valid: true}, nil
}

// texts is a text[] parameter.
type texts []string

func (a texts) Dimensions() []pgtype.ArrayDimension { return dimensions(len(a), a == nil) }
func (a texts) Index(i int) any                     { return (*textCell)(&a[i]) }
func (a texts) IndexType() any                      { return (*textCell)(nil) }

// nullableTexts is a text[] parameter whose nil elements are NULL.
type nullableTexts []*string

func (a nullableTexts) Dimensions() []pgtype.ArrayDimension { return dimensions(len(a), a == nil) }
func (a nullableTexts) Index(i int) any                     { return (*textCell)(a[i]) }
func (a nullableTexts) IndexType() any                      { return (*textCell)(nil) }

func dimensions(n int, null bool) []pgtype.ArrayDimension {
	if null {
		return nil
	}
	return []pgtype.ArrayDimension{{Length: int32(n), LowerBound: 1}}
}

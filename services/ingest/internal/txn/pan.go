package txn

import (
	"fmt"
	"io"
	"log/slog"
)

const redacted = "[card number redacted]"

// PAN is a primary account number as the client sent it. Every way Go has of printing,
// logging or encoding a value prints a placeholder instead, so a PAN that ends up in a log
// line, an error or a span attribute by mistake leaks nothing. Only Tokenize reads the digits.
type PAN string

// String hides the number.
func (PAN) String() string { return redacted }

// GoString hides the number from %#v.
func (PAN) GoString() string { return redacted }

// Format hides the number from every fmt verb, including ones that bypass String.
func (PAN) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue hides the number from slog.
func (PAN) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText hides the number from encoding/json, encoding/xml and friends.
func (PAN) MarshalText() ([]byte, error) { return []byte(redacted), nil }

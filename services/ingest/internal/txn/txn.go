// Package txn validates a transaction as a payment system submits it and tokenizes its card
// number. It is pure: no I/O, no clock (the caller passes now).
package txn

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Channel is how the card was used.
type Channel string

// Channels a transaction can arrive through.
const (
	ChannelCardPresent Channel = "card_present"
	ChannelEcommerce   Channel = "ecommerce"
	ChannelMOTO        Channel = "moto"
	ChannelATM         Channel = "atm"
	ChannelContactless Channel = "contactless"
)

// Channels lists every valid channel, in the order the API documents them.
var Channels = []Channel{ChannelCardPresent, ChannelEcommerce, ChannelMOTO, ChannelATM, ChannelContactless}

// Limits of the request fields.
const (
	MaxIDLen       = 64
	MaxDeviceIDLen = 128
	MinPANDigits   = 12
	MaxPANDigits   = 19
	MaxAmountMinor = 1_000_000_000_000
)

// Input is a transaction as submitted, before any check. AmountMinor is a pointer so a
// missing amount reads "is required" rather than "must be greater than 0".
type Input struct {
	TransactionID string
	AccountID     string
	CardNumber    PAN
	MerchantID    string
	TerminalID    string
	MCC           string
	AmountMinor   *int64
	Currency      string
	Country       string
	Channel       string
	DeviceID      string
	IP            string
	EventTime     string
}

// Transaction is a validated Input. It still holds the PAN: tokenize it before the
// transaction leaves the process.
type Transaction struct {
	TransactionID string
	AccountID     string
	PAN           PAN
	MerchantID    string
	TerminalID    string
	MCC           string
	AmountMinor   int64
	Currency      string
	Country       string
	Channel       Channel
	DeviceID      string
	IP            string // canonical form, or empty
	EventTime     time.Time
}

// Rules bound event_time around the moment of receipt: clocks drift a little into the future;
// very old events would land in windows that have long been closed.
type Rules struct {
	MaxClockSkew time.Duration
	MaxEventAge  time.Duration
}

// FieldError is one bad field, named as in the JSON request.
type FieldError struct {
	Field  string
	Detail string
}

// InvalidError lists every bad field of one Input.
type InvalidError struct {
	Fields []FieldError
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Detail
	}
	return "invalid transaction: " + strings.Join(parts, "; ")
}

// Validate checks every field of in against now and returns the normalised transaction, or an
// *InvalidError naming every bad field. Details never repeat the submitted value, so a card
// number sent in the wrong field cannot leak through an error.
func Validate(in Input, now time.Time, rules Rules) (Transaction, error) {
	var errs []FieldError
	fail := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
	}
	checkID := func(field, v string) {
		if d := idProblem(v); d != "" {
			fail(field, "%s", d)
		}
	}

	checkID("transaction_id", in.TransactionID)
	checkID("account_id", in.AccountID)
	if d := panProblem(string(in.CardNumber)); d != "" {
		fail("card_number", "%s", d)
	}
	checkID("merchant_id", in.MerchantID)
	checkID("terminal_id", in.TerminalID)

	switch {
	case in.MCC == "":
		fail("mcc", "is required")
	case len(in.MCC) != 4 || !allDigits(in.MCC):
		fail("mcc", "must be exactly 4 digits")
	}

	var amount int64
	switch {
	case in.AmountMinor == nil:
		fail("amount_minor", "is required")
	case *in.AmountMinor <= 0:
		fail("amount_minor", "must be greater than 0")
	case *in.AmountMinor > MaxAmountMinor:
		fail("amount_minor", "must be at most %d", int64(MaxAmountMinor))
	default:
		amount = *in.AmountMinor
	}

	switch {
	case in.Currency == "":
		fail("currency", "is required")
	case !IsCurrency(in.Currency):
		fail("currency", "must be an active ISO 4217 alphabetic code in upper case, like EUR")
	}

	switch {
	case in.Country == "":
		fail("country", "is required")
	case !IsCountry(in.Country):
		fail("country", "must be an ISO 3166-1 alpha-2 code in upper case, like DE")
	}

	channel := Channel(in.Channel)
	switch {
	case in.Channel == "":
		fail("channel", "is required")
	case !slices.Contains(Channels, channel):
		fail("channel", "must be one of %s", channelList())
	}

	if in.DeviceID != "" {
		switch {
		case !utf8.ValidString(in.DeviceID):
			fail("device_id", "must be valid UTF-8")
		case utf8.RuneCountInString(in.DeviceID) > MaxDeviceIDLen:
			fail("device_id", "must be at most %d characters", MaxDeviceIDLen)
		case strings.ContainsFunc(in.DeviceID, unicode.IsControl):
			fail("device_id", "must not contain control characters")
		}
	}

	var ip string
	if in.IP != "" {
		addr, err := netip.ParseAddr(in.IP)
		switch {
		case err != nil:
			fail("ip", "must be an IPv4 or IPv6 address")
		case addr.Zone() != "":
			fail("ip", "must not carry an IPv6 zone")
		default:
			ip = addr.String()
		}
	}

	var eventTime time.Time
	if in.EventTime == "" {
		fail("event_time", "is required")
	} else if t, err := time.Parse(time.RFC3339Nano, in.EventTime); err != nil {
		fail("event_time", "must be an RFC 3339 timestamp like 2025-01-31T12:00:00Z")
	} else if t.After(now.Add(rules.MaxClockSkew)) {
		fail("event_time", "must not be more than %s in the future", rules.MaxClockSkew)
	} else if t.Before(now.Add(-rules.MaxEventAge)) {
		fail("event_time", "must not be older than %s", rules.MaxEventAge)
	} else {
		eventTime = t.UTC()
	}

	if len(errs) > 0 {
		return Transaction{}, &InvalidError{Fields: errs}
	}
	return Transaction{
		TransactionID: in.TransactionID,
		AccountID:     in.AccountID,
		PAN:           in.CardNumber,
		MerchantID:    in.MerchantID,
		TerminalID:    in.TerminalID,
		MCC:           in.MCC,
		AmountMinor:   amount,
		Currency:      in.Currency,
		Country:       in.Country,
		Channel:       channel,
		DeviceID:      in.DeviceID,
		IP:            ip,
		EventTime:     eventTime,
	}, nil
}

// idProblem checks an identifier: 1–64 characters of [A-Za-z0-9._:-]. The charset keeps ids
// safe in Kafka keys, Redis keys and URL paths without escaping surprises.
func idProblem(v string) string {
	switch {
	case v == "":
		return "is required"
	case len(v) > MaxIDLen:
		return fmt.Sprintf("must be at most %d characters", MaxIDLen)
	case !IsIDChars(v):
		return "may contain only letters, digits and . _ : -"
	}
	return ""
}

// IsIDChars reports whether s holds only [A-Za-z0-9._:-].
func IsIDChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != ':' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func panProblem(pan string) string {
	switch {
	case pan == "":
		return "is required"
	case !allDigits(pan):
		return "must contain digits only"
	case len(pan) < MinPANDigits || len(pan) > MaxPANDigits:
		return fmt.Sprintf("must be %d to %d digits", MinPANDigits, MaxPANDigits)
	case !LuhnValid(pan):
		return "fails the Luhn check"
	}
	return ""
}

// LuhnValid reports whether a string of digits passes the Luhn (mod 10) check.
func LuhnValid(digits string) bool {
	if digits == "" || !allDigits(digits) {
		return false
	}
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func channelList() string {
	names := make([]string, len(Channels))
	for i, c := range Channels {
		names[i] = string(c)
	}
	return strings.Join(names, ", ")
}

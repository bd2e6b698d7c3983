package httpapi

import (
	"strconv"

	"github.com/vigil-fraud/vigil/services/ingest/internal/txn"
)

// The fast path decodes the bodies well-behaved clients send — a flat object of the known
// fields, with plain ASCII strings, an integer amount and no repeated field — in one pass
// without reflection. Anything else (escapes, non-ASCII, unknown, repeated or differently
// cased names, wrong types, syntax errors, other numbers) makes it give up, and encoding/json
// decodes the body as before, with its exact errors. Whatever the fast path accepts, it
// decodes to the same value encoding/json would (FuzzFastDecodeMatchesEncodingJSON checks
// this): it changes the cost, never the answer. Profiles of the batch endpoint showed
// encoding/json at about half of ingest's CPU.

// scanner walks a body; a method returning false means "give up", never "invalid". Field
// values are substrings of one copy of the body, so decoding allocates one string per body
// rather than one per field.
type scanner struct {
	b string
	i int
}

func (s *scanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) consumeNull() bool {
	if len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

// plainString reads a string of printable ASCII without escapes, which decodes to its bytes.
func (s *scanner) plainString() (string, bool) {
	if !s.consume('"') {
		return "", false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return "", false
		}
		s.i++
	}
	return "", false
}

// integer reads a JSON integer (no fraction, no exponent) that fits int64.
func (s *scanner) integer() (int64, bool) {
	start := s.i
	s.consume('-')
	switch {
	case s.consume('0'):
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
	default:
		return 0, false
	}
	if s.i < len(s.b) {
		if c := s.b[s.i]; c == '.' || c == 'e' || c == 'E' || c >= '0' && c <= '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s.b[start:s.i], 10, 64)
	return n, err == nil
}

const (
	fieldTransactionID = iota
	fieldAccountID
	fieldCardNumber
	fieldMerchantID
	fieldTerminalID
	fieldMCC
	fieldAmountMinor
	fieldCurrency
	fieldCountry
	fieldChannel
	fieldDeviceID
	fieldIP
	fieldEventTime
)

func fieldIndex(name string) int {
	switch name {
	case "transaction_id":
		return fieldTransactionID
	case "account_id":
		return fieldAccountID
	case "card_number":
		return fieldCardNumber
	case "merchant_id":
		return fieldMerchantID
	case "terminal_id":
		return fieldTerminalID
	case "mcc":
		return fieldMCC
	case "amount_minor":
		return fieldAmountMinor
	case "currency":
		return fieldCurrency
	case "country":
		return fieldCountry
	case "channel":
		return fieldChannel
	case "device_id":
		return fieldDeviceID
	case "ip":
		return fieldIP
	case "event_time":
		return fieldEventTime
	}
	return -1
}

func (r *transactionRequest) stringField(i int) *jsonField[string] {
	switch i {
	case fieldTransactionID:
		return &r.TransactionID
	case fieldAccountID:
		return &r.AccountID
	case fieldMerchantID:
		return &r.MerchantID
	case fieldTerminalID:
		return &r.TerminalID
	case fieldMCC:
		return &r.MCC
	case fieldCurrency:
		return &r.Currency
	case fieldCountry:
		return &r.Country
	case fieldChannel:
		return &r.Channel
	case fieldDeviceID:
		return &r.DeviceID
	case fieldIP:
		return &r.IP
	case fieldEventTime:
		return &r.EventTime
	}
	return nil
}

// transaction reads one transaction object at the scanner's position.
func (s *scanner) transaction(req *transactionRequest) bool {
	s.skipSpace()
	if !s.consume('{') {
		return false
	}
	s.skipSpace()
	if s.consume('}') {
		return true
	}
	var seen uint32
	for {
		s.skipSpace()
		name, ok := s.plainString()
		if !ok {
			return false
		}
		f := fieldIndex(name)
		if f < 0 || seen&(1<<f) != 0 {
			return false
		}
		seen |= 1 << f
		s.skipSpace()
		if !s.consume(':') {
			return false
		}
		s.skipSpace()
		if !s.consumeNull() { // null leaves the field absent, as in encoding/json
			switch f {
			case fieldAmountMinor:
				n, ok := s.integer()
				if !ok {
					return false
				}
				req.AmountMinor = jsonField[int64]{value: n, present: true}
			case fieldCardNumber:
				v, ok := s.plainString()
				if !ok {
					return false
				}
				req.CardNumber = jsonField[txn.PAN]{value: txn.PAN(v), present: true}
			default:
				v, ok := s.plainString()
				if !ok {
					return false
				}
				*req.stringField(f) = jsonField[string]{value: v, present: true}
			}
		}
		s.skipSpace()
		if s.consume(',') {
			continue
		}
		return s.consume('}')
	}
}

// fastParseTransaction decodes body when it is a plain transaction object (see above).
func fastParseTransaction(body []byte) (transactionRequest, bool) {
	var req transactionRequest
	s := scanner{b: string(body)}
	if !s.transaction(&req) {
		return transactionRequest{}, false
	}
	s.skipSpace()
	return req, s.i == len(s.b)
}

// fastParseBatch decodes {"transactions":[...]} when every item is a plain transaction.
func fastParseBatch(body []byte) ([]transactionRequest, bool) {
	s := scanner{b: string(body)}
	s.skipSpace()
	if !s.consume('{') {
		return nil, false
	}
	s.skipSpace()
	if name, ok := s.plainString(); !ok || name != "transactions" {
		return nil, false
	}
	s.skipSpace()
	if !s.consume(':') {
		return nil, false
	}
	s.skipSpace()
	if !s.consume('[') {
		return nil, false
	}
	var items []transactionRequest
	s.skipSpace()
	if !s.consume(']') {
		for {
			var req transactionRequest
			if !s.transaction(&req) {
				return nil, false
			}
			items = append(items, req)
			s.skipSpace()
			if s.consume(',') {
				continue
			}
			if s.consume(']') {
				break
			}
			return nil, false
		}
	}
	s.skipSpace()
	if !s.consume('}') {
		return nil, false
	}
	s.skipSpace()
	return items, s.i == len(s.b)
}

package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/vigil-fraud/vigil/services/ingest/internal/txn"
)

// transactionRequest is the JSON body of POST /v1/transactions. Each field records a wrong
// JSON type instead of failing the decode, so one 422 can name every bad field rather than
// only the first type mismatch encoding/json would report.
type transactionRequest struct {
	TransactionID jsonField[string]  `json:"transaction_id"`
	AccountID     jsonField[string]  `json:"account_id"`
	CardNumber    jsonField[txn.PAN] `json:"card_number"`
	MerchantID    jsonField[string]  `json:"merchant_id"`
	TerminalID    jsonField[string]  `json:"terminal_id"`
	MCC           jsonField[string]  `json:"mcc"`
	AmountMinor   jsonField[int64]   `json:"amount_minor"`
	Currency      jsonField[string]  `json:"currency"`
	Country       jsonField[string]  `json:"country"`
	Channel       jsonField[string]  `json:"channel"`
	DeviceID      jsonField[string]  `json:"device_id"`
	IP            jsonField[string]  `json:"ip"`
	EventTime     jsonField[string]  `json:"event_time"`
}

// jsonField holds one request field. null counts as absent.
type jsonField[T any] struct {
	value     T
	present   bool
	wrongType bool
}

func (f *jsonField[T]) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	f.present = true
	if err := json.Unmarshal(b, &f.value); err != nil {
		// Keep decoding the other fields; toInput reports this one.
		f.wrongType = true
	}
	return nil
}

// toInput converts the wire form to the domain input and lists fields of the wrong JSON type.
func (r transactionRequest) toInput() (txn.Input, []txn.FieldError) {
	var typeErrs []txn.FieldError
	str := func(name string, f jsonField[string]) string {
		if f.wrongType {
			typeErrs = append(typeErrs, txn.FieldError{Field: name, Detail: "must be a string"})
		}
		return f.value
	}
	in := txn.Input{
		TransactionID: str("transaction_id", r.TransactionID),
		AccountID:     str("account_id", r.AccountID),
		MerchantID:    str("merchant_id", r.MerchantID),
		TerminalID:    str("terminal_id", r.TerminalID),
		MCC:           str("mcc", r.MCC),
		Currency:      str("currency", r.Currency),
		Country:       str("country", r.Country),
		Channel:       str("channel", r.Channel),
		DeviceID:      str("device_id", r.DeviceID),
		IP:            str("ip", r.IP),
		EventTime:     str("event_time", r.EventTime),
	}
	if r.CardNumber.wrongType {
		typeErrs = append(typeErrs, txn.FieldError{Field: "card_number", Detail: "must be a string of digits"})
	}
	in.CardNumber = r.CardNumber.value
	switch {
	case r.AmountMinor.wrongType:
		typeErrs = append(typeErrs, txn.FieldError{Field: "amount_minor", Detail: "must be an integer number of minor units"})
	case r.AmountMinor.present:
		in.AmountMinor = &r.AmountMinor.value
	}
	return in, typeErrs
}

// requestError is a request rejected before validation, with the status it earns.
type requestError struct {
	status int
	detail string
}

func (e *requestError) Error() string { return e.detail }

// readBody reads the whole body, bounded by maxBytes. Reading it whole first lets a syntax
// error be reported by line and column, and gives the idempotency fingerprint its input.
func readBody(w http.ResponseWriter, r *http.Request, maxBytes int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &requestError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", maxBytes)}
		}
		return nil, &requestError{http.StatusBadRequest, "could not read the request body"}
	}
	return body, nil
}

// parseTransaction decodes one transaction strictly: unknown fields and trailing data fail.
func parseTransaction(body []byte) (transactionRequest, error) {
	if req, ok := fastParseTransaction(body); ok {
		return req, nil
	}
	var req transactionRequest
	return req, strictDecode(body, &req)
}

func strictDecode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(body, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		line, col := position(body, dec.InputOffset())
		return &requestError{http.StatusBadRequest,
			fmt.Sprintf("unexpected data after the JSON object at line %d, column %d", line, col)}
	}
	return nil
}

func decodeError(body []byte, err error) error {
	if syntax, ok := errors.AsType[*json.SyntaxError](err); ok {
		line, col := position(body, syntax.Offset)
		return &requestError{http.StatusBadRequest,
			fmt.Sprintf("malformed JSON at line %d, column %d (byte %d): %s", line, col, syntax.Offset, syntax.Error())}
	}
	if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		// Fields catch their own type errors, so this is the top level.
		return &requestError{http.StatusBadRequest, "request body must be a JSON object"}
	}
	switch {
	case errors.Is(err, io.EOF):
		return &requestError{http.StatusBadRequest, "request body is empty"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &requestError{http.StatusBadRequest, fmt.Sprintf("malformed JSON: body ends early, after %d bytes", len(body))}
	}
	// encoding/json has no typed error for unknown fields; its message is stable since Go 1.10.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if len(name) > 66 {
			name = name[:66] + "…"
		}
		return &requestError{http.StatusBadRequest, "unknown field " + name}
	}
	return &requestError{http.StatusBadRequest, "malformed JSON"}
}

// position turns a byte offset into a 1-based line and column.
func position(body []byte, offset int64) (line, col int) {
	if offset > int64(len(body)) {
		offset = int64(len(body))
	}
	before := body[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vigil-fraud/vigil/services/ingest/internal/txn"
)

// FuzzDecodeValidate feeds arbitrary bodies through decode and validation (the path every
// byte from a payment system takes). It must never panic, must answer a decode failure with a
// 400 or 413-class problem, and must never echo the card number, in errors or in the message.
// The fast decoder must agree with encoding/json on every body it accepts (checkFastDecode).
// Seeds live in testdata/fuzz/FuzzDecodeValidate.
func FuzzDecodeValidate(f *testing.F) {
	tok, err := txn.NewTokenizer("k1", []byte(strings.Repeat("s", 32)))
	if err != nil {
		f.Fatal(err)
	}
	rules := txn.Rules{MaxClockSkew: 5 * time.Minute, MaxEventAge: 30 * 24 * time.Hour}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFastDecode(t, body)
		req, err := parseTransaction(body)
		if err != nil {
			if p := problemOf(err); p.Status != http.StatusBadRequest || p.Detail == "" {
				t.Fatalf("decode error became %+v", p)
			}
			return
		}
		pan := string(req.CardNumber.value)
		in, typeErrs := req.toInput()
		tx, verr := txn.Validate(in, testNow, rules)
		fields := fieldErrors(typeErrs, verr)
		if len(fields) > 0 {
			out, _ := json.Marshal(fields)
			if len(pan) >= 8 && bytes.Contains(out, []byte(pan)) {
				t.Fatalf("field errors echo the card number: %s", out)
			}
			return
		}
		if verr != nil {
			t.Fatalf("validation error %v without field errors", verr)
		}
		msg := toProto("acme", tx, tok.Tokenize(tx.PAN), testNow)
		wire, err := proto.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(wire, []byte(tx.PAN)) {
			t.Fatalf("message carries the card number")
		}
	})
}

package httpapi

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

const plainTx = `{"transaction_id":"t-1","account_id":"acct-1","card_number":"4111111111111111","merchant_id":"m-1",` +
	`"terminal_id":"t-1","mcc":"5411","amount_minor":1999,"currency":"EUR","country":"DE","channel":"ecommerce",` +
	`"device_id":"d-1","ip":"203.0.113.7","event_time":"2025-06-01T11:59:00Z"}`

// slowTransaction is the reference: encoding/json alone.
func slowTransaction(body []byte) (transactionRequest, error) {
	var req transactionRequest
	return req, strictDecode(body, &req)
}

func slowBatch(body []byte) ([]transactionRequest, error) {
	var b batchRequest
	if err := strictDecode(body, &b); err != nil {
		return nil, err
	}
	out := make([]transactionRequest, len(b.Transactions))
	for i, raw := range b.Transactions {
		var err error
		if out[i], err = slowTransaction(raw); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// TestFastDecodeTakesCommonBodies guards the speed-up: the bodies clients normally send must
// not fall back to encoding/json, and the ones it cannot mirror exactly must.
func TestFastDecodeTakesCommonBodies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		fast bool
	}{
		{"compact", plainTx, true},
		{"spaced and indented", strings.ReplaceAll(strings.ReplaceAll(plainTx, ",", ",\n\t"), ":", ": "), true},
		{"nulls", `{"transaction_id":"t","device_id":null,"ip":null,"amount_minor":null}`, true},
		{"empty object", `{}`, true},
		{"negative and zero amounts", `{"amount_minor":-5}`, true},
		{"trailing whitespace", plainTx + "\r\n ", true},
		{"escape", `{"transaction_id":"t\u0031"}`, false},
		{"non-ASCII", `{"merchant_id":"café"}`, false},
		{"unknown field", `{"pan":"4111111111111111"}`, false},
		{"other case", `{"Transaction_ID":"t"}`, false},
		{"repeated field", `{"mcc":"5411","mcc":"5999"}`, false},
		{"string amount", `{"amount_minor":"12"}`, false},
		{"fraction", `{"amount_minor":12.0}`, false},
		{"exponent", `{"amount_minor":1e3}`, false},
		{"leading zero", `{"amount_minor":012}`, false},
		{"overflow", `{"amount_minor":9223372036854775808}`, false},
		{"number as string field", `{"mcc":5411}`, false},
		{"trailing data", plainTx + `{}`, false},
		{"trailing comma", `{"mcc":"5411",}`, false},
		{"not an object", `[1]`, false},
		{"null body", `null`, false},
		{"empty", ``, false},
		{"cut short", plainTx[:40], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := fastParseTransaction([]byte(tc.body))
			if ok != tc.fast {
				t.Fatalf("fast path taken = %v, want %v", ok, tc.fast)
			}
			if !ok {
				return
			}
			want, err := slowTransaction([]byte(tc.body))
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("fast %+v, encoding/json %+v (%v)", got, want, err)
			}
		})
	}

	batch := `{"transactions":[` + plainTx + `, ` + plainTx + "]}\n"
	items, ok := fastParseBatch([]byte(batch))
	if !ok || len(items) != 2 {
		t.Fatalf("batch of two plain items: fast %v, %d items", ok, len(items))
	}
	for _, b := range []string{`{"transactions":[]}`, ` { "transactions" : [ ] } `} {
		if items, ok := fastParseBatch([]byte(b)); !ok || len(items) != 0 {
			t.Errorf("%s: fast %v, %d items", b, ok, len(items))
		}
	}
	for _, b := range []string{`{"transactions":null}`, `{"transactions":[` + plainTx + `,{"x":1}]}`, `{"transactions":[],"transactions":[]}`, `{"Transactions":[]}`} {
		if _, ok := fastParseBatch([]byte(b)); ok {
			t.Errorf("%s: fast path taken", b)
		}
	}
}

// FuzzFastDecodeMatchesEncodingJSON checks that whatever the fast path accepts, encoding/json
// accepts too and decodes to the same value, for single transactions and for batches.
func FuzzFastDecodeMatchesEncodingJSON(f *testing.F) {
	f.Add([]byte(plainTx))
	f.Add([]byte(`{"transactions":[` + plainTx + `,` + plainTx + `]}`))
	f.Add([]byte(`{"amount_minor":-0,"ip":null}`))
	// The decode fuzzer's seeds are good starting points here too.
	seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecodeValidate", "*"))
	for _, path := range seeds {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		// Corpus files are "go test fuzz v1" followed by []byte("...") lines.
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "[]byte("); ok {
				if s, err := strconv.Unquote(strings.TrimSuffix(v, ")")); err == nil {
					f.Add([]byte(s))
				}
			}
		}
	}
	f.Fuzz(checkFastDecode)
}

// checkFastDecode fails when the fast path accepts body and decodes it differently from
// encoding/json (or where encoding/json fails). FuzzDecodeValidate runs it too.
func checkFastDecode(t *testing.T, body []byte) {
	if got, ok := fastParseTransaction(body); ok {
		want, err := slowTransaction(body)
		if err != nil {
			t.Fatalf("fast path accepted what encoding/json rejects (%v): %q", err, body)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fast %+v, encoding/json %+v for %q", got, want, body)
		}
	}
	if got, ok := fastParseBatch(body); ok {
		want, err := slowBatch(body)
		if err != nil {
			t.Fatalf("fast batch accepted what encoding/json rejects (%v): %q", err, body)
		}
		if len(got) != len(want) || len(got) > 0 && !reflect.DeepEqual(got, want) {
			t.Fatalf("fast batch %+v, encoding/json %+v for %q", got, want, body)
		}
	}
}

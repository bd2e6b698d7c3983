package txn

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

var (
	now   = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	rules = Rules{MaxClockSkew: 5 * time.Minute, MaxEventAge: 30 * 24 * time.Hour}
)

const visa = "4111111111111111"

func validInput() Input {
	amount := int64(1999)
	return Input{
		TransactionID: "tx-0001",
		AccountID:     "acct_42",
		CardNumber:    visa,
		MerchantID:    "m.100",
		TerminalID:    "t:7",
		MCC:           "5411",
		AmountMinor:   &amount,
		Currency:      "EUR",
		Country:       "DE",
		Channel:       "ecommerce",
		DeviceID:      "dev-abc",
		IP:            "203.0.113.7",
		EventTime:     "2025-06-01T11:59:00Z",
	}
}

func ptr(n int64) *int64 { return &n }

func TestValidateAcceptsValidInput(t *testing.T) {
	t.Parallel()
	tx, err := Validate(validInput(), now, rules)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if tx.Channel != ChannelEcommerce || tx.AmountMinor != 1999 || tx.IP != "203.0.113.7" {
		t.Errorf("unexpected transaction %+v", tx)
	}
	if want := time.Date(2025, 6, 1, 11, 59, 0, 0, time.UTC); !tx.EventTime.Equal(want) {
		t.Errorf("event time %v, want %v", tx.EventTime, want)
	}
}

func TestValidateFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Input)
		field  string // "" means the input must be accepted
		detail string // substring of the expected detail
	}{
		{"transaction_id missing", func(in *Input) { in.TransactionID = "" }, "transaction_id", "required"},
		{"transaction_id too long", func(in *Input) { in.TransactionID = strings.Repeat("a", 65) }, "transaction_id", "at most 64"},
		{"transaction_id 64 chars", func(in *Input) { in.TransactionID = strings.Repeat("a", 64) }, "", ""},
		{"transaction_id bad char", func(in *Input) { in.TransactionID = "tx 1" }, "transaction_id", "only letters"},
		{"transaction_id slash", func(in *Input) { in.TransactionID = "a/b" }, "transaction_id", "only letters"},
		{"transaction_id all allowed chars", func(in *Input) { in.TransactionID = "aZ09._:-" }, "", ""},
		{"account_id missing", func(in *Input) { in.AccountID = "" }, "account_id", "required"},
		{"account_id unicode", func(in *Input) { in.AccountID = "kontø" }, "account_id", "only letters"},
		{"card_number missing", func(in *Input) { in.CardNumber = "" }, "card_number", "required"},
		{"card_number spaces", func(in *Input) { in.CardNumber = "4111 1111 1111 1111" }, "card_number", "digits only"},
		{"card_number too short", func(in *Input) { in.CardNumber = "42424242426" }, "card_number", "12 to 19"},
		{"card_number too long", func(in *Input) { in.CardNumber = "42424242424242424242" }, "card_number", "12 to 19"},
		{"card_number Luhn", func(in *Input) { in.CardNumber = "4111111111111112" }, "card_number", "Luhn"},
		{"card_number 19 digits", func(in *Input) { in.CardNumber = "6011000990139424009" }, "", ""},
		{"card_number amex", func(in *Input) { in.CardNumber = "378282246310005" }, "", ""},
		{"merchant_id missing", func(in *Input) { in.MerchantID = "" }, "merchant_id", "required"},
		{"terminal_id bad", func(in *Input) { in.TerminalID = "t#1" }, "terminal_id", "only letters"},
		{"mcc missing", func(in *Input) { in.MCC = "" }, "mcc", "required"},
		{"mcc three digits", func(in *Input) { in.MCC = "541" }, "mcc", "4 digits"},
		{"mcc letters", func(in *Input) { in.MCC = "54a1" }, "mcc", "4 digits"},
		{"amount missing", func(in *Input) { in.AmountMinor = nil }, "amount_minor", "required"},
		{"amount zero", func(in *Input) { in.AmountMinor = ptr(0) }, "amount_minor", "greater than 0"},
		{"amount negative", func(in *Input) { in.AmountMinor = ptr(-5) }, "amount_minor", "greater than 0"},
		{"amount max", func(in *Input) { in.AmountMinor = ptr(MaxAmountMinor) }, "", ""},
		{"amount above max", func(in *Input) { in.AmountMinor = ptr(MaxAmountMinor + 1) }, "amount_minor", "at most"},
		{"currency missing", func(in *Input) { in.Currency = "" }, "currency", "required"},
		{"currency lower case", func(in *Input) { in.Currency = "eur" }, "currency", "ISO 4217"},
		{"currency unknown", func(in *Input) { in.Currency = "ABC" }, "currency", "ISO 4217"},
		{"currency withdrawn", func(in *Input) { in.Currency = "HRK" }, "currency", "ISO 4217"},
		{"currency metal", func(in *Input) { in.Currency = "XAU" }, "currency", "ISO 4217"},
		{"currency JPY", func(in *Input) { in.Currency = "JPY" }, "", ""},
		{"country missing", func(in *Input) { in.Country = "" }, "country", "required"},
		{"country lower case", func(in *Input) { in.Country = "de" }, "country", "ISO 3166-1"},
		{"country alpha-3", func(in *Input) { in.Country = "DEU" }, "country", "ISO 3166-1"},
		{"country unassigned", func(in *Input) { in.Country = "ZZ" }, "country", "ISO 3166-1"},
		{"channel missing", func(in *Input) { in.Channel = "" }, "channel", "required"},
		{"channel unknown", func(in *Input) { in.Channel = "phone" }, "channel", "card_present, ecommerce, moto, atm, contactless"},
		{"channel upper case", func(in *Input) { in.Channel = "ATM" }, "channel", "one of"},
		{"channel atm", func(in *Input) { in.Channel = "atm" }, "", ""},
		{"device_id absent", func(in *Input) { in.DeviceID = "" }, "", ""},
		{"device_id 128 runes", func(in *Input) { in.DeviceID = strings.Repeat("é", 128) }, "", ""},
		{"device_id too long", func(in *Input) { in.DeviceID = strings.Repeat("d", 129) }, "device_id", "at most 128"},
		{"device_id control", func(in *Input) { in.DeviceID = "dev\n1" }, "device_id", "control"},
		{"device_id bad UTF-8", func(in *Input) { in.DeviceID = "\xff" }, "device_id", "UTF-8"},
		{"ip absent", func(in *Input) { in.IP = "" }, "", ""},
		{"ip v6", func(in *Input) { in.IP = "2001:db8::1" }, "", ""},
		{"ip garbage", func(in *Input) { in.IP = "300.1.1.1" }, "ip", "IPv4 or IPv6"},
		{"ip hostname", func(in *Input) { in.IP = "example.com" }, "ip", "IPv4 or IPv6"},
		{"ip zone", func(in *Input) { in.IP = "fe80::1%eth0" }, "ip", "zone"},
		{"event_time missing", func(in *Input) { in.EventTime = "" }, "event_time", "required"},
		{"event_time not RFC 3339", func(in *Input) { in.EventTime = "2025-06-01 11:59:00" }, "event_time", "RFC 3339"},
		{"event_time no zone", func(in *Input) { in.EventTime = "2025-06-01T11:59:00" }, "event_time", "RFC 3339"},
		{"event_time offset", func(in *Input) { in.EventTime = "2025-06-01T13:59:00+02:00" }, "", ""},
		{"event_time within skew", func(in *Input) { in.EventTime = "2025-06-01T12:05:00Z" }, "", ""},
		{"event_time beyond skew", func(in *Input) { in.EventTime = "2025-06-01T12:05:01Z" }, "event_time", "future"},
		{"event_time at max age", func(in *Input) { in.EventTime = "2025-05-02T12:00:00Z" }, "", ""},
		{"event_time too old", func(in *Input) { in.EventTime = "2025-05-02T11:59:59Z" }, "event_time", "older than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := validInput()
			tc.mutate(&in)
			_, err := Validate(in, now, rules)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("want accepted, got %v", err)
				}
				return
			}
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("want *InvalidError, got %v", err)
			}
			if len(inv.Fields) != 1 || inv.Fields[0].Field != tc.field || !strings.Contains(inv.Fields[0].Detail, tc.detail) {
				t.Fatalf("want one error on %s containing %q, got %+v", tc.field, tc.detail, inv.Fields)
			}
		})
	}
}

func TestValidateReportsEveryField(t *testing.T) {
	t.Parallel()
	_, err := Validate(Input{}, now, rules)
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("want *InvalidError, got %v", err)
	}
	var got []string
	for _, f := range inv.Fields {
		got = append(got, f.Field)
	}
	want := "transaction_id account_id card_number merchant_id terminal_id mcc amount_minor currency country channel event_time"
	if strings.Join(got, " ") != want {
		t.Errorf("fields %v, want %s", got, want)
	}
}

func TestValidateNeverEchoesCardNumber(t *testing.T) {
	t.Parallel()
	in := validInput()
	in.CardNumber = "4111111111111112" // Luhn-invalid
	in.TransactionID = visa + "!"      // a PAN pasted into the wrong field
	_, err := Validate(in, now, rules)
	if err == nil {
		t.Fatal("want error")
	}
	if msg := err.Error(); strings.Contains(msg, "411111111111111") {
		t.Errorf("error repeats a card number: %s", msg)
	}
}

func TestLuhn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		digits string
		want   bool
	}{
		{"4111111111111111", true},
		{"4111111111111112", false},
		{"5555555555554444", true},
		{"378282246310005", true},
		{"6011111111111117", true},
		{"3530111333300000", true},
		{"6304000000000000", true}, // Maestro, 16 digits
		{"4242424242424241", false},
		{"0", true},
		{"18", true},
		{"", false},
		{"12a4", false},
	}
	for _, tc := range tests {
		if got := LuhnValid(tc.digits); got != tc.want {
			t.Errorf("LuhnValid(%q) = %v, want %v", tc.digits, got, tc.want)
		}
	}
}

func TestCodeLists(t *testing.T) {
	t.Parallel()
	if n := len(countries); n != 249 {
		t.Errorf("%d countries, ISO 3166-1 assigns 249", n)
	}
	for code := range countries {
		if len(code) != 2 || strings.ToUpper(code) != code {
			t.Errorf("country %q is not two upper-case letters", code)
		}
	}
	for code := range currencies {
		if len(code) != 3 || strings.ToUpper(code) != code {
			t.Errorf("currency %q is not three upper-case letters", code)
		}
	}
	for _, c := range []string{"USD", "EUR", "GBP", "JPY", "CHF", "INR", "BRL", "XOF"} {
		if !IsCurrency(c) {
			t.Errorf("IsCurrency(%s) = false", c)
		}
	}
}

func TestPANNeverPrints(t *testing.T) {
	t.Parallel()
	p := PAN(visa)
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "pan", p, "in", Input{CardNumber: p})
	outputs := []string{
		fmt.Sprint(p), fmt.Sprintf("%s %v %q %x %d %#v %+v", p, p, p, p, p, p, Transaction{PAN: p}),
		fmt.Sprintf("%v", Input{CardNumber: p}), logged.String(),
	}
	for _, s := range outputs {
		if strings.Contains(s, visa) {
			t.Errorf("PAN printed: %s", s)
		}
	}
}

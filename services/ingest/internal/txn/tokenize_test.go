package txn

import (
	"strings"
	"testing"
)

func testKey(b byte) []byte { return []byte(strings.Repeat(string(rune(b)), MinCardKeyBytes)) }

func TestTokenize(t *testing.T) {
	t.Parallel()
	tokA, err := NewTokenizer("k1", testKey('a'))
	if err != nil {
		t.Fatal(err)
	}
	tokB, err := NewTokenizer("k2", testKey('b'))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		pan, bin, last4 string
	}{
		{"4111111111111111", "411111", "1111"},
		{"378282246310005", "378282", "0005"},
		{"6304000000000000", "630400", "0000"},
		{"4000056655665556", "400005", "5556"},
	}
	for _, tc := range tests {
		t.Run(tc.pan[:6], func(t *testing.T) {
			t.Parallel()
			c := tokA.Tokenize(PAN(tc.pan))
			if again := tokA.Tokenize(PAN(tc.pan)); again != c {
				t.Errorf("not deterministic: %+v then %+v", c, again)
			}
			if other := tokB.Tokenize(PAN(tc.pan)); other.Token == c.Token {
				t.Error("token does not depend on the key")
			}
			if c.BIN != tc.bin || c.Last4 != tc.last4 || c.KeyID != "k1" {
				t.Errorf("card %+v, want BIN %s last4 %s key k1", c, tc.bin, tc.last4)
			}
			if len(c.Token) != 64 {
				t.Errorf("token %q is not hex SHA-256", c.Token)
			}
			if strings.Contains(c.Token, tc.pan) {
				t.Error("token contains the PAN")
			}
		})
	}

	if tokA.Tokenize("4111111111111111").Token == tokA.Tokenize("5555555555554444").Token {
		t.Error("different PANs share a token")
	}
}

func TestTokenizeKnownVector(t *testing.T) {
	t.Parallel()
	// HMAC-SHA256(key="a"*32, "4111111111111111"), computed independently with openssl, so a
	// change of algorithm or encoding (which would orphan every stored token) fails here.
	tok, err := NewTokenizer("k1", testKey('a'))
	if err != nil {
		t.Fatal(err)
	}
	want := "610a00e3942ecaabf50b305e4232e27efefc82ef7cf2797f4a3d779bc5072aad"
	if got := tok.Tokenize("4111111111111111").Token; got != want {
		t.Errorf("token %s, want %s", got, want)
	}
}

func TestNewTokenizerRejectsShortKey(t *testing.T) {
	t.Parallel()
	if _, err := NewTokenizer("k1", make([]byte, MinCardKeyBytes-1)); err == nil {
		t.Error("accepted a 31-byte key")
	}
	if _, err := NewTokenizer("", testKey('a')); err == nil {
		t.Error("accepted an empty key id")
	}
}

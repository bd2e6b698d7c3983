package kafka

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/libs/config"
)

func TestLoadFetch(t *testing.T) {
	t.Parallel()
	def := PipelineFetch()
	tests := []struct {
		name    string
		env     map[string]string
		want    Fetch
		wantErr []string
	}{
		{name: "defaults", env: map[string]string{}, want: def},
		{name: "set", env: map[string]string{"X_FETCH_MIN_BYTES": "1", "X_FETCH_MAX_WAIT": "5s"}, want: Fetch{MinBytes: 1, MaxWait: 5 * time.Second}},
		// franz-go refuses a max wait under 10 ms when the client starts: caught at load time.
		{name: "too short a wait", env: map[string]string{"X_FETCH_MAX_WAIT": "5ms"}, want: def, wantErr: []string{"X_FETCH_MAX_WAIT"}},
		{name: "bad bytes", env: map[string]string{"X_FETCH_MIN_BYTES": "0"}, want: def, wantErr: []string{"X_FETCH_MIN_BYTES"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := config.FromMap(tt.env)
			got := LoadFetch(e, "X", def)
			if got != tt.want {
				t.Errorf("LoadFetch = %+v, want %+v", got, tt.want)
			}
			err := e.Err()
			if (err != nil) != (len(tt.wantErr) > 0) {
				t.Fatalf("err = %v, want one naming %v", err, tt.wantErr)
			}
			for _, name := range tt.wantErr {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("err %q does not name %s", err, name)
				}
			}
		})
	}
}

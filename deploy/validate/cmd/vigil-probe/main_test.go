package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status  int
		wantErr bool
	}{
		{http.StatusOK, false},
		{http.StatusNoContent, false},
		{http.StatusServiceUnavailable, true},
		{http.StatusNotFound, true},
	}
	for _, tc := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(tc.status) }))
		err := probe(srv.URL+"/readyz", time.Second)
		srv.Close()
		if (err != nil) != tc.wantErr {
			t.Errorf("status %d: err = %v, want error %v", tc.status, err, tc.wantErr)
		}
	}
	if err := probe("http://127.0.0.1:1/readyz", time.Second); err == nil {
		t.Error("closed port: want an error")
	}
}

// Command vigil-probe is the container healthcheck: GET a URL, exit 0 on 2xx, 1 otherwise.
// The distroless images have no shell, curl or wget, so compose healthchecks run this instead.
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: vigil-probe http://127.0.0.1:8080/readyz")
		os.Exit(2)
	}
	if err := probe(os.Args[1], 3*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "vigil-probe:", err)
		os.Exit(1)
	}
}

func probe(url string, timeout time.Duration) error {
	c := http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return nil
}

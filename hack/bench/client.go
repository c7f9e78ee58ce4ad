package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// api is a keep-alive HTTP/1.1 client of one server with a connection per
// worker.
type api struct {
	base string
	c    *http.Client
}

func newAPI(base string, conns int) *api {
	tr := &http.Transport{
		Proxy:               nil, // loopback only, whatever the environment says
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &api{base: base, c: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (a *api) close() { a.c.CloseIdleConnections() }

// call is one request and the status it must get.
type call struct {
	method, path string
	token        string // X-Access-Token
	ifNoneMatch  string
	body         []byte // JSON
	want         int
	keepBody     bool // return the body; otherwise it is discarded
}

// do sends c. An unexpected status is an error quoting the start of the
// body (error bodies never hold secrets).
func (a *api) do(ctx context.Context, c call) ([]byte, http.Header, error) {
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, a.base+c.path, body)
	if err != nil {
		return nil, nil, err
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("X-Access-Token", c.token)
	}
	if c.ifNoneMatch != "" {
		req.Header.Set("If-None-Match", c.ifNoneMatch)
	}
	resp, err := a.c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != c.want || c.keepBody {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s: read body: %w", c.method, c.path, err)
		}
		if resp.StatusCode != c.want {
			return nil, nil, fmt.Errorf("%s %s: status %d, want %d: %.160s", c.method, c.path, resp.StatusCode, c.want, b)
		}
		return b, resp.Header, nil
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return nil, resp.Header, err
}

// load runs next(w) on conns workers back to back for the window.
func (a *api) load(ctx context.Context, conns int, win window, next func(w int) call) loadResult {
	return runClosedLoop(ctx, conns, win, func(ctx context.Context, w int) error {
		_, _, err := a.do(ctx, next(w))
		return err
	})
}

// parallel runs f(0..n-1) on at most width goroutines and returns the first
// error.
func parallel(n, width int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, width)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

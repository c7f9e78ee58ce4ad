package settings

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// DefaultPollInterval is how often File looks at its file.
const DefaultPollInterval = time.Second

// maxFileSize bounds a settings file; it holds a handful of durations.
const maxFileSize = 64 << 10

// File reads settings from a JSON object of strings, with the keys of the
// ConfigMap, and polls it for changes.
type File struct {
	path string
	log  *slog.Logger

	// PollInterval is how often Run reads the file. Default
	// DefaultPollInterval; set before Run.
	PollInterval time.Duration
}

var _ Source = (*File)(nil)

// NewFile returns a source for path; log may be nil.
func NewFile(path string, log *slog.Logger) *File {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &File{path: path, log: log, PollInterval: DefaultPollInterval}
}

// String names the file: "file:PATH".
func (f *File) String() string { return KindFile + ":" + f.path }

// Load reads and decodes the file.
func (f *File) Load(context.Context) (map[string]string, error) {
	_, data, err := f.read()
	return data, err
}

// Run polls the file until ctx ends and calls onChange when its content
// changes. An unreadable or malformed file is logged once per content and
// ignored.
func (f *File) Run(ctx context.Context, onChange func(map[string]string)) error {
	interval := f.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	var last []byte // nil: the first good read is passed on, equal or not
	var lastErr string
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		raw, data, err := f.read()
		if err != nil {
			if err.Error() != lastErr {
				lastErr = err.Error()
				f.log.Error("settings file unreadable, keeping the previous settings", "path", f.path, "error", err)
			}
			continue
		}
		lastErr = ""
		if bytes.Equal(raw, last) {
			continue
		}
		last = raw
		onChange(data)
	}
}

func (f *File) read() ([]byte, map[string]string, error) {
	raw, err := os.ReadFile(f.path)
	if err != nil {
		return nil, nil, fmt.Errorf("read settings: %w", err)
	}
	if len(raw) > maxFileSize {
		return nil, nil, fmt.Errorf("settings file %s: larger than %d bytes", f.path, maxFileSize)
	}
	var data map[string]string
	if err := json.Unmarshal(raw, &data); err != nil {
		return nil, nil, fmt.Errorf("settings file %s: want a JSON object of duration strings: %w", f.path, err)
	}
	return raw, data, nil
}
